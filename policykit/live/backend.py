"""Run a scenario on this machine's kernel, one step at a time, and observe each step.

Each scenario process is an :class:`~.agent.Agent`; regions are mapped at fixed,
2 MiB-aligned addresses (the same in every process, as after fork); after each step
the controller reads every live process's pagemap and the flags and map counts of the
pages, and turns them into an :class:`~.trace.Observation`.  A :class:`LiveSession`
owns everything a run makes -- agents, and the system settings it changed (a hugetlb
pool, a swapfile) -- and gives it all back on the way out, however that is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..scenario.model import Scenario, Step
from . import libc
from .agent import Agent, AgentError, Failed, Zygote
from .observe import Entry, PageTable, anon_huge_kb, pagemap
from .system import Capabilities, Settings
from .trace import NO_FAULT, Labeller, Observation, PageNames, PageView, classify_write

REGION_BASE = 0x5A00_0000_0000
_ALIGN = libc.HPAGE_PMD_SIZE
_MADVICE = {"dontfork": libc.MADV_DONTFORK, "dofork": libc.MADV_DOFORK,
            "wipeonfork": libc.MADV_WIPEONFORK, "keeponfork": libc.MADV_KEEPONFORK,
            "dontneed": libc.MADV_DONTNEED}


class NotRunnable(Exception):
    """The scenario has a step the live kernel cannot run here: why."""


@dataclass(slots=True)
class Region:
    addr: int
    pages: int                   # scenario pages
    page_bytes: int              # bytes of one scenario page (2 MiB for a hugetlb page)
    alias: bool = False
    thp: bool = False            # PMD-sized THPs allowed: its PMD mappings are observed

    def addrs(self, lo: int, hi: int) -> list[int]:
        return [self.addr + i * self.page_bytes for i in range(lo, hi)]


@dataclass(slots=True)
class Ref:
    owner: str
    region: Region
    lo: int
    hi: int
    kind: str                    # ring | pipe


@dataclass
class LiveRun:
    """A scenario run live: its observations, or why it could not run."""

    scenario: Scenario
    observations: list[Observation] = field(default_factory=list)
    not_runnable: str = ""
    elapsed: float = 0.0
    #: why the run stopped before its last step ("" when it did not)
    ended: str = ""


_EXCLUSIVE_BIT_CHECKED: bool | None = None


def check_exclusive_bit(caps: Capabilities, timeout: float = 20.0) -> None:
    """Make sure /proc/kpageflags bit 34 is PageAnonExclusive on this kernel: set on a
    page a process just wrote, clear on it once a child shares it after fork.  Raises
    :class:`NotRunnable` if not (once per process; later calls say the same)."""
    global _EXCLUSIVE_BIT_CHECKED
    if not caps.pfns or _EXCLUSIVE_BIT_CHECKED:
        return
    if _EXCLUSIVE_BIT_CHECKED is None:
        seen = []
        with Settings() as settings, LiveSession(caps, settings, timeout) as live:
            parent = Agent.spawn(timeout)
            live._all.append(parent)
            region = live._region(1, libc.PAGE_SIZE)
            parent.call("mmap", region.addr, libc.PAGE_SIZE, False, True, "base")
            parent.call("write", [region.addr], [_value(0, 0)], libc.PAGE_SIZE)
            for _ in range(2):
                entry = pagemap(parent.pid, region.addr, 1)[0]
                info = live._table.info({entry.pfn})[entry.pfn] if live._table and entry.present else None
                seen.append(info is not None and info.anon and info.exclusive)
                if len(seen) == 1:
                    live._all.append(parent.fork())
        _EXCLUSIVE_BIT_CHECKED = seen == [True, False]
    if not _EXCLUSIVE_BIT_CHECKED:
        raise NotRunnable("/proc/kpageflags bit 34 does not behave as PageAnonExclusive on this kernel "
                          "(set on a page just written, clear once fork shares it): cannot compare the flag")


def why_not_runnable(scenario: Scenario, caps: Capabilities) -> str:
    """Why this kernel cannot run ``scenario`` live ("" when it can)."""
    for step in scenario.steps:
        why = _step_reason(step, caps)
        if why:
            return f"line {step.line}: '{step.text}': {why}"
    return ""


def _step_reason(step: Step, caps: Capabilities) -> str:
    op, p = step.op, step.params
    if op not in _OPS:
        return f"no live counterpart of operation {op!r}"
    if op in ("pin", "gup"):
        flags = p.get("flags", frozenset())
        kind = "pin" if op == "pin" else p.get("kind")
        if kind == "get" and not flags:
            return ""                            # a vmsplice()'s reference
        if kind == "pin" and {"write", "longterm"} <= flags and not flags & {"force", "zap_race"}:
            return caps.io_uring_reason
        return ("only R/W long-term pins (io_uring fixed buffers) and R/O FOLL_GET references "
                "(vmsplice) last beyond one system call; other GUP needs gup_test")
    if op == "clear_refs" and not caps.soft_dirty:
        return "clear_refs soft-dirty needs CONFIG_MEM_SOFT_DIRTY"
    if op == "mmap_thp":
        why = caps.mthp_reason((step.params.get("folio") or 512) * libc.PAGE_SIZE // 1024)
        if why:
            return why
    if op in ("mmap_hugetlb", "hugetlb_pool") and not caps.hugetlb:
        return caps.hugetlb_reason
    if op in ("mmap_hugetlb", "hugetlb_pool") and p.get("size", "2M") == "1G" and caps.hugetlb_1g_reason:
        return caps.hugetlb_1g_reason
    if op == "pageout" and not caps.swap:
        return caps.swap_reason
    if op == "ksm_merge" and not caps.ksm:
        return caps.ksm_reason
    if op == "mmap" and p.get("pages", 1) > 4096:
        return "more than 4096 pages"
    return ""


class LiveSession:
    """The agents of one scenario and the settings changed for it; a context manager
    that kills and reaps every agent and restores every setting on the way out."""

    def __init__(self, caps: Capabilities, settings: Settings, timeout: float = 20.0,
                 zygote: Zygote | None = None) -> None:
        self.caps = caps
        self.settings = settings
        self.timeout = timeout
        #: what forks the scenario's first processes (None: this process)
        self.zygote = zygote
        self.agents: dict[str, Agent] = {}
        self.order: list[str] = []                 # process names, as made
        self.regions: dict[str, Region] = {}
        #: the regions each process mapped or inherited: the pages it is observed at
        self.owned: dict[str, list[str]] = {}
        self.refs: dict[str, Ref] = {}
        self._next = REGION_BASE
        self._all: list[Agent] = []
        self._subreaper = 0
        self._table: PageTable | None = None
        self.labels: dict[int, str] = {}           # written value -> who wrote it
        self._previous: dict[str, tuple[bool, int]] = {}     # page -> (present, pfn) after the last step
        self._names = PageNames()
        #: why the run stopped before its last step ("" when it did not)
        self.ended = ""

    def __enter__(self) -> LiveSession:
        # Agents whose parent agent exits come back to us, to be reaped.
        self._subreaper = libc.set_child_subreaper(1)
        if self.caps.pfns:
            self._table = PageTable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pids = [a.pid for a in self._all]
        # Asked to exit, an agent unregisters its io_uring buffers first: the pins go at
        # once, not later from the ring's teardown work (a huge page still pinned then
        # would outlive the pool's restore as a surplus page).  Those that do not answer
        # are killed.
        for a in self._all:
            if a.alive:
                a.sock.settimeout(min(2.0, self.timeout))
                a.exit()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5.0
        pending = set(pids)
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:       # not ours yet (its parent agent is dying) or gone
                    done = pid if not _exists(pid) else 0
                if done:
                    pending.discard(pid)
            if pending:
                time.sleep(0.002)
        self._all = []
        if self._table is not None:
            self._table.close()
            self._table = None
        libc.set_child_subreaper(self._subreaper)

    # -- running ----------------------------------------------------------------------

    def run(self, scenario: Scenario) -> list[Observation]:
        out = []
        gone: set[str] = set()                     # names a failed step did not make
        for index, step in enumerate(scenario.steps):
            obs = Observation(index, step.text)
            if gone & _names(step):
                obs.status = "skipped"
                if step.result:
                    gone.add(step.result)
            else:
                try:
                    _OPS[step.op](self, step, index, obs)
                except Failed as exc:
                    obs.status = f"failed {exc.errno}"
                    if step.result:
                        gone.add(step.result)
                except AgentError:
                    signal_name = self._killed_by(step)
                    if signal_name is None:
                        raise
                    # The kernel killed the process (a hugetlb fault with no page left:
                    # SIGBUS); the simulator fails the step and lets the process go on,
                    # so nothing after this step can be compared.
                    obs.status = f"failed {signal_name}"
                    self.observe(obs)
                    out.append(obs)
                    self.ended = f"step {index}: {step.params['process']} was killed by {signal_name}"
                    break
            self.observe(obs)
            out.append(obs)
        return out

    def _killed_by(self, step: Step) -> str | None:
        """The signal that killed the agent of the step's process, if one did."""
        name = step.params.get("process")
        agent = self.agents.get(name) if isinstance(name, str) else None
        if agent is None:
            return None
        code = _exit_code(agent.pid)
        agent.close()
        if code is None or not os.WIFSIGNALED(code):
            return None
        return signal.Signals(os.WTERMSIG(code)).name

    def _region(self, pages: int, page_bytes: int) -> Region:
        """Room for ``pages`` pages, aligned to their size (2 MiB at least, for a THP)
        and a gap after them."""
        size = pages * page_bytes
        align = max(_ALIGN, page_bytes)
        addr = -(-self._next // align) * align
        self._next = addr + (size + 2 * _ALIGN - 1) // _ALIGN * _ALIGN
        return Region(addr, pages, page_bytes)

    def observe(self, obs: Observation) -> None:
        """Fill ``obs.pages`` (and the outcome of each write) from the kernel's view."""
        regions = [(n, r) for n, r in self.regions.items() if not r.alias]
        raw: list[tuple[str, Entry]] = []
        for name in self.order:
            agent = self.agents.get(name)
            if agent is None or not agent.alive:
                continue
            mine = self.owned.get(name, ())
            for rname, r in regions:
                if rname not in mine:
                    continue
                entries = pagemap(agent.pid, r.addr, r.pages, r.page_bytes // libc.PAGE_SIZE)
                raw += zip(self._names(name, rname, len(entries)), entries)
        pfns = {e.pfn for _, e in raw if e.present}
        info = self._table.info(pfns) if self._table is not None and pfns else {}
        for name in self.order:
            agent = self.agents.get(name)
            thp = [(n, r) for n, r in regions if r.thp and n in self.owned.get(name, ())]
            if thp and agent is not None and agent.alive:
                kbs = anon_huge_kb(agent.pid, [(r.addr, r.addr + r.pages * r.page_bytes) for _, r in thp])
                for (rname, _), kb in zip(thp, kbs):
                    obs.pmd[f"{name}:{rname}"] = kb
        views: dict[str, PageView] = {}
        now: dict[str, tuple[bool, int]] = {}
        label = Labeller()
        made: dict[tuple[Any, ...], PageView] = {}  # views are immutable: one per distinct value
        for key, e in raw:
            now[key] = (e.present, e.pfn)
            if not e.present:
                value: tuple[Any, ...] = ("swap" if e.swapped else "-", None, None)
            elif (pi := info.get(e.pfn)) is None:   # PFNs hidden: present is all we know
                value = ("present", None, None)
            elif pi.zero:
                value = ("zero", None, None)
            else:
                kind = ("ksm" if pi.ksm else "hugetlb" if pi.hugetlb else "thp" if pi.thp
                        else "anon" if pi.anon else "shmem")
                value = (label(e.pfn), pi.exclusive if pi.anon else None, pi.mapcount, kind)
            view = made.get(value)
            if view is None:
                view = made[value] = PageView(*value)
            views[key] = view
        obs.pages = views
        for key, faulted in obs.faults.items():
            before = self._previous.get(key, (False, 0))
            if not self.caps.pfns and before[0]:          # no PFNs: a copy looks like a reuse
                obs.faults[key] = "fault" if faulted == "fault" else NO_FAULT
                continue
            obs.faults[key] = classify_write(before[0], before[1], now.get(key, (False, 0))[1], faulted == "fault")
        self._previous = now

    # -- operations -------------------------------------------------------------------

    def _agent(self, name: str) -> Agent:
        return self.agents[name]

    def _spawn(self, step: Step, index: int, obs: Observation) -> None:
        agent = Agent.spawn(self.timeout, self.zygote)
        self._all.append(agent)
        self.agents[step.result or f"p{index}"] = agent
        self.order.append(step.result or f"p{index}")

    def _mmap_kind(self, step: Step, kind: str, page_bytes: int) -> None:
        p = step.params
        region = self._region(p["pages"], page_bytes)
        region.thp = kind == "thp"
        self._agent(p["process"]).call("mmap", region.addr, region.pages * page_bytes,
                                       p.get("sharing") == "shared", p.get("prot", "rw") == "rw", kind)
        if step.result:
            self.regions[step.result] = region
            self.owned.setdefault(p["process"], []).append(step.result)

    def _mmap(self, step: Step, index: int, obs: Observation) -> None:
        self._mmap_kind(step, "base", libc.PAGE_SIZE)

    def _mmap_thp(self, step: Step, index: int, obs: Observation) -> None:
        folio = step.params.get("folio") or 512
        if folio != 512:
            self.settings.mthp(folio * libc.PAGE_SIZE // 1024)
        self._mmap_kind(step, "thp", libc.PAGE_SIZE)
        if folio != 512 and step.result:           # mTHPs: never PMD-mapped, smaps not read
            self.regions[step.result].thp = False

    def _mmap_hugetlb(self, step: Step, index: int, obs: Observation) -> None:
        if step.params.get("size", "2M") == "1G":
            self._mmap_kind(step, "hugetlb-1g", libc.HPAGE_PUD_SIZE)
        else:
            self._mmap_kind(step, "hugetlb", libc.HPAGE_PMD_SIZE)

    def _hugetlb_pool(self, step: Step, index: int, obs: Observation) -> None:
        self.settings.hugetlb_free(step.params["pages"], step.params.get("size", "2M"))

    def _range(self, step: Step, key: str = "region") -> tuple[str, Region, int, int]:
        name, lo, hi = step.params[key]
        return name, self.regions[name], lo, hi

    def _pages(self, step: Step) -> tuple[Agent, str, list[str], list[int], int]:
        proc = step.params["process"]
        name, r, lo, hi = self._range(step)
        base = _base_name(self.regions, name)
        offset = (r.addr - self.regions[base].addr) // r.page_bytes
        keys = [f"{proc}:{base}[{offset + i}]" for i in range(lo, hi)]
        return self._agent(proc), proc, keys, r.addrs(lo, hi), r.page_bytes

    def _write(self, step: Step, index: int, obs: Observation) -> None:
        agent, proc, keys, addrs, size = self._pages(step)
        values = [_value(index, i) for i in range(len(addrs))]
        for v, k in zip(values, keys):
            self.labels[v] = f"w{index} {k}"
        faulted = agent.call("write", addrs, values, min(size, libc.PAGE_SIZE))
        for k, f in zip(keys, faulted):
            obs.faults[k] = "fault" if f else "none"

    def _read(self, step: Step, index: int, obs: Observation) -> None:
        agent, proc, keys, addrs, size = self._pages(step)
        values, _ = agent.call("read", addrs, min(size, libc.PAGE_SIZE))
        for k, v in zip(keys, values):
            obs.data[k] = self.data_label(v)

    def data_label(self, value: int) -> str:
        return "zero" if value == 0 else self.labels.get(value, f"unknown {value:#x}")

    def _fork(self, step: Step, index: int, obs: Observation) -> None:
        child = self._agent(step.params["process"]).fork()
        self._all.append(child)
        name = step.result or f"p{index}"
        self.agents[name] = child
        self.order.append(name)
        self.owned[name] = list(self.owned.get(step.params["process"], ()))

    def _exit(self, step: Step, index: int, obs: Observation) -> None:
        name = step.params["process"]
        self._agent(name).exit()
        for rname in [n for n, r in self.refs.items() if r.owner == name]:
            del self.refs[rname]

    def _munmap(self, step: Step, index: int, obs: Observation) -> None:
        agent, _, _, addrs, size = self._pages(step)
        agent.call("munmap", addrs[0], len(addrs) * size)

    def _mremap(self, step: Step, index: int, obs: Observation) -> None:
        agent, proc, _, addrs, size = self._pages(step)
        base = self.regions[_base_name(self.regions, step.params["region"][0])]
        region = self._region(len(addrs), size)
        region.thp = base.thp
        agent.call("mremap", addrs[0], len(addrs) * size, region.addr)
        if step.result:
            self.regions[step.result] = region
            self.owned.setdefault(proc, []).append(step.result)

    def _mprotect(self, step: Step, index: int, obs: Observation) -> None:
        agent, _, _, addrs, size = self._pages(step)
        agent.call("mprotect", addrs[0], len(addrs) * size, step.params["prot"] == "rw")

    def _madvise(self, step: Step, index: int, obs: Observation) -> None:
        agent, _, _, addrs, size = self._pages(step)
        agent.call("madvise", addrs[0], len(addrs) * size, _MADVICE[step.params["advice"]])

    def _pageout(self, step: Step, index: int, obs: Observation) -> None:
        self.settings.swap()
        agent, _, _, addrs, size = self._pages(step)
        agent.call("madvise", addrs[0], len(addrs) * size, libc.MADV_PAGEOUT)
        # MADV_PAGEOUT leaves a page other processes map too, where the simulator's
        # pageout (reclaim) swaps it out: the scenario's state cannot be made here.  (A
        # page it keeps for another reason -- a pin -- is compared as usual.)
        left = [e for e in pagemap(agent.pid, addrs[0], len(addrs) * size // libc.PAGE_SIZE) if e.present]
        if left and self._table is not None:
            shared = [p for p in self._table.info({e.pfn for e in left}).values() if p.mapcount > 1]
            if shared:
                raise NotRunnable(f"line {step.line}: '{step.text}': MADV_PAGEOUT does not swap out a page "
                                  "that more than one process maps (only reclaim would)")


    def _ksm_enable(self, step: Step, index: int, obs: Observation) -> None:
        agent, _, _, addrs, size = self._pages(step)
        agent.call("madvise", addrs[0], len(addrs) * size, libc.MADV_MERGEABLE)

    def _fill(self, step: Step, index: int, obs: Observation) -> None:
        """Pages of one content per tag (the same 8 bytes, zeros after them)."""
        agent, proc, keys, addrs, size = self._pages(step)
        tag = step.params["tag"]
        value = 0xF111_0000_0000_0000 | ord(tag[0])
        self.labels[value] = f"fill {tag}"
        faulted = agent.call("write", addrs, [value] * len(addrs), min(size, libc.PAGE_SIZE))
        for k, f in zip(keys, faulted):
            obs.faults[k] = "fault" if f else "none"

    def _ksm_merge(self, step: Step, index: int, obs: Observation) -> None:
        self.settings.ksm_scan()

    def _collapse(self, step: Step, index: int, obs: Observation) -> None:
        agent, _, _, addrs, size = self._pages(step)
        agent.call("madvise", addrs[0], len(addrs) * size, libc.MADV_COLLAPSE)

    def _clear_refs(self, step: Step, index: int, obs: Observation) -> None:
        with open(f"/proc/{self._agent(step.params['process']).pid}/clear_refs", "w") as f:
            f.write("4")

    def _gup(self, step: Step, index: int, obs: Observation) -> None:
        kind = "pin" if step.op == "pin" else step.params["kind"]
        if kind == "get":
            self._splice(step, index, 1)
            return
        agent, proc, _, addrs, size = self._pages(step)
        agent.call("pin", step.result or f"r{index}", addrs[0], len(addrs) * size)
        self._ref(step, proc, "ring", index)

    def _ref(self, step: Step, proc: str, kind: str, index: int) -> None:
        name, r, lo, hi = self._range(step)
        self.refs[step.result or f"r{index}"] = Ref(proc, r, lo, hi, kind)

    def _splice(self, step: Step, index: int, times: int) -> None:
        """vmsplice() the first 4 KiB of each page (a reference to its folio either way)."""
        agent, proc, _, addrs, size = self._pages(step)
        agent.call("vmsplice", step.result or f"r{index}", addrs, min(size, libc.PAGE_SIZE), times)
        self._ref(step, proc, "pipe", index)

    def _vmsplice(self, step: Step, index: int, obs: Observation) -> None:
        self._splice(step, index, step.params.get("times", 1))

    def _release(self, step: Step, index: int, obs: Observation) -> None:
        name = step.params["ref"][0]
        ref = self.refs.pop(name)
        self._agent(ref.owner).call("release", name)

    def _dma(self, step: Step) -> tuple[str, Ref, list[int], list[int]]:
        name, lo, hi = step.params["ref"]
        ref = self.refs[name]
        return name, ref, list(range(lo, hi)), ref.region.addrs(ref.lo + lo, ref.lo + hi)

    def _dma_write(self, step: Step, index: int, obs: Observation) -> None:
        name, ref, indexes, addrs = self._dma(step)
        values = [_value(index, i) for i in indexes]
        for v, i in zip(values, indexes):
            self.labels[v] = f"d{index} {name}[{i}]"
        self._agent(ref.owner).call("dma_write", name, addrs, values, min(ref.region.page_bytes, libc.PAGE_SIZE))

    def _dma_read(self, step: Step, index: int, obs: Observation) -> None:
        name, ref, indexes, addrs = self._dma(step)
        size = min(ref.region.page_bytes, libc.PAGE_SIZE)
        values = self._agent(ref.owner).call("dma_read", name, addrs, indexes, size)
        for i, v in zip(indexes, values):
            obs.data[f"{name}[{i}]"] = self.data_label(v)

    def _alias(self, step: Step, index: int, obs: Observation) -> None:
        name, r, lo, hi = self._range(step)
        if step.result:
            self.regions[step.result] = Region(r.addr + lo * r.page_bytes, hi - lo, r.page_bytes, alias=True)


def _names(step: Step) -> set[str]:
    """The names (processes, regions, references) a step uses."""
    out = set()
    for value in step.params.values():
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], str):
            out.add(value[0])
    return out


def _base_name(regions: dict[str, Region], name: str) -> str:
    """The mapped region an alias lies in (itself for a mapped region)."""
    r = regions[name]
    if not r.alias:
        return name
    for n, other in regions.items():
        if not other.alias and other.addr <= r.addr < other.addr + other.pages * other.page_bytes:
            return n
    return name


def _value(step: int, page: int) -> int:
    """The value step ``step`` writes into its ``page``-th page: never 0, never reused."""
    return 0x5EED_0000_0000_0000 | step << 20 | page


def _exit_code(pid: int) -> int | None:
    """The wait status of an exited, not yet reaped process (field 52 of its stat), or
    None; waits a little for the exit to finish."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if fields[0] in "ZX" and len(fields) >= 50:
            return int(fields[49])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_OPS: dict[str, Callable[[LiveSession, Step, int, Observation], None]] = {
    "spawn": LiveSession._spawn, "mmap": LiveSession._mmap, "mmap_thp": LiveSession._mmap_thp,
    "mmap_hugetlb": LiveSession._mmap_hugetlb, "hugetlb_pool": LiveSession._hugetlb_pool,
    "write": LiveSession._write, "read": LiveSession._read, "fork": LiveSession._fork,
    "exit": LiveSession._exit, "munmap": LiveSession._munmap, "mprotect": LiveSession._mprotect,
    "mremap": LiveSession._mremap,
    "madvise": LiveSession._madvise, "pageout": LiveSession._pageout, "clear_refs": LiveSession._clear_refs,
    "collapse": LiveSession._collapse, "ksm_enable": LiveSession._ksm_enable, "fill": LiveSession._fill,
    "ksm_merge": LiveSession._ksm_merge,
    "gup": LiveSession._gup, "pin": LiveSession._gup, "vmsplice": LiveSession._vmsplice,
    "unpin": LiveSession._release, "put": LiveSession._release, "dma_write": LiveSession._dma_write,
    "dma_read": LiveSession._dma_read, "alias": LiveSession._alias,
}
