"""The simulator's side of a live comparison: the same scenario, step by step, under a
policy, observed in the vocabulary of :mod:`.trace`."""

from __future__ import annotations

from collections.abc import Iterator

from ..engine.context import FLAG_PREFIX
from ..engine.mm import Engine, Event

from ..engine.model import Machine, Process
from ..run import Runner, Session
from ..scenario.model import Scenario
from .trace import Labeller, Observation, PageNames, PageView, classify_write

_FLAG = "anon_exclusive"


def simulate(session: Session, scenario: Scenario) -> list[Observation]:
    """Run ``scenario`` under the session's policy; one observation per step."""
    runner = session.start()
    engine = runner.engine
    exclusive = _declares(engine)
    order: list[str] = []                      # processes, as made
    regions: list[str] = []                    # mapped regions, as made (aliases left out)
    thp: list[str] = []                        # those of them where PMD-sized THPs are allowed
    owned: dict[str, list[str]] = {}           # the regions each process mapped or inherited
    labels: dict[int, str] = {}                # token -> who wrote it
    previous: dict[str, tuple[bool, bool, int]] = {}
    names = PageNames()
    out = []
    for index, step in enumerate(scenario.steps):
        spec = session.registry.operations[step.op]
        obs = Observation(index, step.text)
        writes: list[str] = []
        before: dict[int, tuple[bool, bool, int]] = {}          # vpn -> its PTE just before its write
        listening = False
        if step.op in ("write", "fill") and step.params["region"][0] in runner.bases \
                and step.params["process"] in runner.pids:
            writes = _keys(runner, step, regions)
            pid = runner.pids.get(step.params["process"])
            name, lo, hi = step.params["region"]
            vpns = list(range(runner.bases[name] + lo, runner.bases[name] + hi)) if name in runner.bases else []

            def pte_now(vpn: int) -> tuple[bool, bool, int]:
                pte = machine.processes[pid].mm.ptes.get(vpn)
                return (False, False, -1) if pte is None or not pte.present else (True, pte.writable, pte.pfn)

            def track(event: Event) -> None:
                # a page is written after the one before it: what the next write meets
                if event.kind == "write" and event.pid == pid and event.vpn in following:
                    nxt = following[event.vpn]
                    before[nxt] = pte_now(nxt)

            machine = engine.machine
            following = dict(zip(vpns, vpns[1:]))
            if vpns and pid in machine.processes:
                before[vpns[0]] = pte_now(vpns[0])
                engine.listen(track)
                listening = True
        try:
            rec = runner.step(index, step)
        finally:
            if listening:
                engine.unlisten(track)
        if rec.status == "failed":
            obs.status = "failed " + rec.message.split(":", 1)[0]
        elif rec.status != "ok":
            obs.status = rec.status
        if rec.status == "ok" and step.result:
            if spec.result == "process":
                order.append(step.result)
                parent = step.params.get("process")
                owned[step.result] = list(owned.get(parent, ())) if step.op == "fork" else []
            elif spec.result == "region" and step.op != "alias":
                regions.append(step.result)
                owned.setdefault(step.params["process"], []).append(step.result)
                if (step.op == "mmap_thp" and (step.params.get("folio") or 512) == 512) or \
                        (step.op == "mremap" and step.params["region"][0] in thp):
                    thp.append(step.result)
        if step.op in ("fork_children",):
            order.extend(n for n in runner.pids if n not in order)
        machine = engine.machine
        now = _positions(runner, order, regions, owned, names)
        if rec.status == "ok":
            if step.op in ("write", "fill"):
                for key in writes:
                    pid, vpn = now[key][3], now[key][4]
                    pte = machine.processes[pid].mm.ptes.get(vpn)
                    if pte is not None and pte.present:
                        labels[machine.pages[pte.pfn].content] = (f"w{index} {key}" if step.op == "write"
                                                                   else f"fill {step.params['tag']}")
                    was = before.get(vpn, previous.get(key, (False, False, 0)))
                    after = now[key][2] if now[key][0] else -1
                    obs.faults[key] = classify_write(was[0], was[2], after, not was[1])
            elif step.op == "dma_write":
                name, lo, hi = step.params["ref"]
                ref = machine.refs.get(runner.rids[name])
                if ref is not None:
                    for i in range(lo, hi):
                        labels[machine.pages[ref.pfns[i]].content] = f"d{index} {name}[{i}]"
            elif step.op == "read":
                for key in _keys(runner, step, regions):
                    pid, vpn = now[key][3], now[key][4]
                    obs.data[key] = _label(labels, engine.peek(pid, vpn))
            elif step.op == "dma_read":
                name, lo, hi = step.params["ref"]
                ref = machine.refs[runner.rids[name]]
                for i in range(lo, hi):
                    obs.data[f"{name}[{i}]"] = _label(labels, machine.pages[ref.pfns[i]].content)
        obs.pages = _views(engine, machine, now, exclusive)
        obs.pmd = _pmd_kib(runner, order, thp, owned)
        previous = now
        out.append(obs)
    return out


def _declares(engine: Engine) -> bool:
    """Whether the policy models PageAnonExclusive (5.19 and later do)."""
    return FLAG_PREFIX + _FLAG in engine.defaults["page"]


def _label(labels: dict[int, str], token: int) -> str:
    return "zero" if token == 0 else labels.get(token, f"unknown #{token}")


def _keys(runner: Runner, step, regions: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The page names a step's region argument covers (an alias by the region it is in)."""
    proc = step.params["process"]
    name, lo, hi = step.params["region"]
    base = runner.bases[name]
    for r in regions:
        rb, size = runner.bases[r], runner.sizes[r]
        if rb <= base < rb + size:
            return [f"{proc}:{r}[{base - rb + i}]" for i in range(lo, hi)]
    return [f"{proc}:{name}[{i}]" for i in range(lo, hi)]


def _alive(runner: Runner, order: list[str]) -> Iterator[tuple[str, Process]]:
    """(name, process) of the live processes, in the order they were made."""
    processes = runner.engine.machine.processes
    for name in order:
        pid = runner.pids.get(name)
        proc = processes.get(pid) if pid is not None else None
        if proc is not None and proc.alive:
            yield name, proc


def _pmd_kib(runner: Runner, order: list[str], thp: list[str], owned: dict[str, list[str]]) -> dict[str, int]:
    """``process:region`` -> KiB of that THP region mapped by PMDs of anonymous THPs (what
    smaps's AnonHugePages counts: not the huge zero page)."""
    out = {}
    pages = runner.engine.machine.pages
    for name, proc in _alive(runner, order):
        ptes = proc.mm.ptes
        for r in thp:
            if r in owned.get(name, ()):
                base = runner.bases[r]
                out[f"{name}:{r}"] = 4 * sum(
                    1 for v in range(base, base + runner.sizes[r])
                    if (e := ptes.get(v)) is not None and e.present and e.attrs and e.attrs.get("pmd")
                    and not pages[e.pfn].zero)
    return out


def _positions(runner: Runner, order: list[str], regions: list[str],
               owned: dict[str, list[str]], names: PageNames) -> dict[str, tuple]:
    """page name -> (present, writable, pfn, pid, vpn) of every live process's pages."""
    out = {}
    for name, proc in _alive(runner, order):
        pid = proc.pid
        ptes = proc.mm.ptes
        mine = owned.get(name, ())
        for r in regions:
            if r not in mine:
                continue
            base = runner.bases[r]
            for i, key in enumerate(names(name, r, runner.sizes[r])):
                pte = ptes.get(base + i)
                if pte is None:
                    out[key] = (False, False, -1, pid, base + i)
                else:
                    out[key] = (pte.present, pte.writable, pte.pfn if pte.present else -2, pid, base + i)
    return out


def _views(engine, machine: Machine, now: dict[str, tuple], exclusive: bool) -> dict[str, PageView]:  # type: ignore[no-untyped-def]
    label = Labeller()
    made: dict[tuple, PageView] = {}              # views are immutable: one per distinct value
    seen: dict[int, PageView] = {}                # pfn -> its view (a page every process maps, once)
    default = engine.defaults["page"][FLAG_PREFIX + _FLAG] if exclusive else None
    pages = machine.pages
    out = {}
    for key, (present, _, pfn, _, _) in now.items():
        view = seen.get(pfn)
        if view is not None:
            out[key] = view
            continue
        if not present:
            value: tuple = ("-" if pfn == -1 else "swap", None, None, None)
        else:
            page = pages[pfn]
            if page.zero:
                value = ("zero", None, None, None)
            else:
                excl = bool(page.flags.get(_FLAG, default)) if exclusive and page.anon else None
                attrs = page.attrs
                kind = ("ksm" if attrs.get("ksm") else "hugetlb" if attrs.get("hugetlb") else
                        "thp" if page.folio is not None else "anon" if page.anon else "shmem")
                value = (label(pfn), excl, page.mapcount, kind)
        view = made.get(value)
        if view is None:
            view = made[value] = PageView(*value)
        out[key] = seen[pfn] = view
    return out
