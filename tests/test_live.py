"""The live backend on this machine's kernel: the same scenario run for real and in the
simulator, step by step.  Skipped, with the reason, where the kernel does not give what
it needs (PFNs in pagemap, perf page-fault sampling, io_uring)."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from types import SimpleNamespace

import pytest
from conftest import bench

from policykit import load_policy
from policykit.cli import main
from policykit.run import Session

live = pytest.importorskip("policykit.live.system")
Capabilities = live.Capabilities


def _capabilities() -> Capabilities | None:
    try:
        return Capabilities.probe()
    except OSError:
        return None


CAPS = _capabilities()
_WHY = ("no capability probe" if CAPS is None else CAPS.reason or CAPS.perf_reason or CAPS.io_uring_reason
        or ("" if CAPS.pfns else "no PFNs in /proc/PID/pagemap (needs root)"))
pytestmark = pytest.mark.skipif(bool(_WHY), reason=f"live backend unavailable: {_WHY}")


def _system_state() -> tuple[str, ...]:
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""
    ksm = tuple(read(f"/sys/kernel/mm/ksm/{n}") for n in ("run", "sleep_millisecs", "pages_to_scan", "smart_scan"))
    thp = "/sys/kernel/mm/transparent_hugepage"
    mthp = tuple(read(f"{thp}/{d}/enabled") for d in sorted(os.listdir(thp)) if d.startswith("hugepages-")) \
        if os.path.isdir(thp) else ()
    return (read("/proc/swaps"), read("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            read("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"),
            read("/proc/sys/vm/nr_hugepages"), *ksm, *mthp)


@pytest.fixture(autouse=True)
def leaves_nothing_behind():
    """Every test: no setting changed, no agent left, however the test ends."""
    before = _system_state()
    children = _children()
    yield
    assert _system_state() == before
    assert _children() <= children


def _children() -> set[int]:
    """Live processes whose parent is this one (agents that were not reaped)."""
    me, out = str(os.getpid()), set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                out.add(int(pid))
    return out


def _scenario(session: Session, text: str, name: str = "t.scn", variant: str | None = None):
    return session.parse(textwrap.dedent(text), name, variant)


def _session(policy: str = "linux-6.x") -> Session:
    return Session(load_policy(policy))


COW = """\
    scenario cow
    spawn -> parent
    mmap parent 1 private -> buf
    write parent buf
    fork parent -> child
    write parent buf
    read child buf
    write child buf
"""


def test_basic_cow_as_the_kernel_does_it():
    from policykit.live.validate import validate

    s = _session()
    v = validate(s, [_scenario(s, COW)], CAPS)[0]
    assert v.agrees, v.disagreements
    steps = v.live
    assert steps[2].faults == {"parent:buf[0]": "populate"}
    # fork shares the page: one label for both, mapcount 2, neither exclusive
    shared = steps[3].pages
    assert shared["parent:buf[0]"].label == shared["child:buf[0]"].label
    assert shared["parent:buf[0]"].mapcount == 2 and shared["parent:buf[0]"].exclusive is False
    assert steps[4].faults == {"parent:buf[0]": "copy"}
    assert steps[5].data == {"child:buf[0]": "w2 parent:buf[0]"}
    # the child's page is its own by then: the kernel reuses it (5.8+ by refcount)
    assert steps[6].faults == {"child:buf[0]": "reuse"}
    assert steps[6].pages["child:buf[0]"].exclusive is True


def test_rdma_pin_and_device_io_through_io_uring():
    from policykit.live.validate import validate

    s = _session()
    text = """\
        scenario rdma
        spawn -> parent
        mmap parent 1 private -> buf
        write parent buf
        pin parent buf write longterm -> mr
        fork parent -> child
        write parent buf
        dma_write mr
        read parent buf
        read child buf
        dma_read mr
        unpin mr
    """
    v = validate(s, [_scenario(s, text)], CAPS)[0]
    assert v.agrees, v.disagreements
    # 5.9+: fork copied the pinned page for the child; the parent writes in place
    assert v.live[5].faults == {"parent:buf[0]": "no fault"}
    assert v.live[7].data == {"parent:buf[0]": "d6 mr[0]"}
    assert v.live[8].data == {"child:buf[0]": "w2 parent:buf[0]"}
    assert v.live[9].data == {"mr[0]": "d6 mr[0]"}


def test_vmsplice_pipe_sees_what_the_kernel_lets_it():
    from policykit.live.validate import validate

    s = _session()
    [sc] = [x for x in s.load_all("policykit/corpus/vmsplice-child-unmap.scn") if x.variant == "base"]
    v = validate(s, [sc], CAPS)[0]
    assert v.agrees, v.disagreements
    # the pipe keeps the data of fork time: the parent's write copied away from it
    assert v.live[-1].data == {"pipe[0]": "w2 parent:buf[0]"}


def test_validate_reports_the_large_folio_reuse_as_a_disagreement_for_5_19():
    """Linux 6.15+ reuses a PTE-mapped THP only this process maps; 5.19 copied it."""
    from policykit.live.validate import kernel_release, validate

    if kernel_release() < (6, 15):
        pytest.skip("the running kernel predates large-folio reuse (6.15)")
    if not CAPS.thp:
        pytest.skip(CAPS.thp_reason)
    s = _session("linux-5.19")
    [sc] = [x for x in s.load_all("policykit/corpus/cow-reuse-after-child-exit.scn") if x.variant == "pte-mapped-thp"]
    v = validate(s, [sc], CAPS)[0]
    first = v.disagreements[0]
    assert (first.aspect, first.live, first.simulated) == ("fault", "reuse", "copy")
    assert first.text == "write parent buf[0]"


def test_steps_the_kernel_cannot_run_make_the_scenario_not_runnable():
    from policykit.live.validate import run_live

    s = _session()
    text = """\
        scenario ro
        spawn -> p
        mmap p 1 private -> buf
        pin p buf longterm -> ro
    """
    run = run_live(_scenario(s, text), CAPS)
    assert run.not_runnable.startswith("line 4: 'pin p buf longterm -> ro':")
    assert "gup_test" in run.not_runnable and not run.observations


def test_hugetlb_and_swap_are_set_up_and_given_back():
    from policykit.live.validate import validate

    if not (CAPS.hugetlb and CAPS.swap):
        pytest.skip(CAPS.hugetlb_reason or CAPS.swap_reason)
    s = _session()
    scenarios = [x for x in s.load_all("policykit/corpus/cow-basic.scn") if x.variant in ("hugetlb", "swapped")]
    results = validate(s, scenarios, CAPS)
    assert [v.agrees for v in results] == [True, True], [v.disagreements for v in results]
    swapped = next(v for v in results if v.scenario.variant == "swapped")
    assert any(p.label == "swap" for o in swapped.live for p in o.pages.values())


def test_each_mthp_size_is_made_for_real_and_the_sizes_given_back():
    from policykit.live.validate import validate

    sizes = {"16k": 16, "64k": 64, "1m": 1024}
    missing = [CAPS.mthp_reason(kb) for kb in sizes.values() if CAPS.mthp_reason(kb)]
    if missing:
        pytest.skip(missing[0])
    s = _session()
    text = """\
        scenario mthp
        variants pte-mapped-thp:16k pte-mapped-thp:64k pte-mapped-thp:1m
        spawn -> parent
        mmap_variant parent -> buf
        fork parent -> child
        write parent buf
        read child buf
    """
    scenarios = [_scenario(s, text, variant=f"pte-mapped-thp:{z}") for z in sizes]
    results = validate(s, scenarios, CAPS)
    assert len(results) == 3 and all(v.agrees for v in results), [v.disagreements for v in results]
    for v in results:       # the kernel made a large folio: its pages read as THP
        assert any(p.kind == "thp" for o in v.live for p in o.pages.values()), v.scenario.name


def test_a_swapped_out_thp_is_split_and_swapped_page_by_page_as_the_kernel_does():
    from policykit.live.validate import validate

    if not CAPS.swap or CAPS.mthp_reason(64):
        pytest.skip(CAPS.swap_reason or CAPS.mthp_reason(64))
    s = _session()
    text = """\
        scenario thp-swap
        variants swapped-thp swapped-pte-mapped-thp:64k single-pte-swapped-thp:64k
        spawn -> parent
        mmap_variant parent -> buf
        fork parent -> child
        write parent buf
        read child buf
    """
    scenarios = [_scenario(s, text, variant=v) for v in
                 ("swapped-thp", "swapped-pte-mapped-thp:64k", "single-pte-swapped-thp:64k")]
    results = validate(s, scenarios, CAPS)
    assert all(v.agrees for v in results), [v.disagreements for v in results]
    whole = results[0]
    assert any(p.label == "swap" for o in whole.live for k, p in o.pages.items() if k.endswith("[511]"))


@pytest.mark.parametrize("how", ["error", "interrupt", "timeout"])
def test_everything_is_given_back_when_a_run_breaks(monkeypatch, how):
    """A step that raises, a Ctrl-C, an agent that stops answering: agents killed and
    reaped, the hugetlb pool and swap restored (checked by the autouse fixture)."""
    from policykit.live import backend
    from policykit.live.agent import AgentError
    from policykit.live.validate import run_live

    if not (CAPS.hugetlb and CAPS.swap) or CAPS.mthp_reason(64):
        pytest.skip(CAPS.hugetlb_reason or CAPS.swap_reason or CAPS.mthp_reason(64))
    s = _session()
    text = """\
        scenario broken
        spawn -> p
        hugetlb_pool 1
        mmap_hugetlb p 1 private -> huge
        write p huge
        mmap_thp p 16 16 -> small
        write p small[0]
        mmap p 1 private -> buf
        write p buf
        pageout p buf
        fork p -> c
        read c buf
    """
    real_read = backend.LiveSession._read

    def broken_read(self, step, index, obs):
        if how == "error":
            raise RuntimeError("a bug")
        if how == "interrupt":
            raise KeyboardInterrupt
        os.kill(self.agents["c"].pid, signal.SIGSTOP)        # it will never answer
        return real_read(self, step, index, obs)

    monkeypatch.setattr(backend.LiveSession, "_read", broken_read)
    monkeypatch.setitem(backend._OPS, "read", broken_read)
    expected = {"error": RuntimeError, "interrupt": KeyboardInterrupt, "timeout": AgentError}[how]
    with pytest.raises(expected):
        run_live(_scenario(s, text), CAPS, timeout=1.0)


def test_validate_command_picks_this_kernels_era(capsys):
    assert main(["validate", "auto", "-k", "cow-basic", "--variant", "base"]) == 0
    out, err = capsys.readouterr()
    assert "auto: Linux" in err
    assert "2 scenarios run live: 2 agree on every step" in out


def test_live_command_json(capsys, tmp_path):
    path = tmp_path / "cow.scn"
    path.write_text(textwrap.dedent(COW))
    assert main(["live", str(path), "--format", "json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["scenario"] == "cow"
    assert [st["faults"] for st in run["steps"] if st["faults"]] == [
        {"parent:buf[0]": "populate"}, {"parent:buf[0]": "copy"}, {"child:buf[0]": "reuse"}]


def test_validate_exits_1_on_a_disagreement(capsys):
    from policykit.live.validate import kernel_release

    if kernel_release() < (6, 15) or not CAPS.thp:
        pytest.skip("needs large-folio reuse (6.15+) and THP")
    code = main(["validate", "linux-5.19", "-k", "cow-reuse-after-child-exit", "--variant", "pte-mapped-thp"])
    out = capsys.readouterr().out
    assert code == 1
    assert "first disagreement at step 8 ('write parent buf[0]'): fault of parent:buf_thp[0]: live reuse, " \
           "simulated copy" in out


def test_the_newest_era_agrees_where_older_ones_do_not():
    """6.15's large-folio reuse and 6.11's writable read swap-in, as this kernel does them."""
    from policykit.live.validate import kernel_release, validate

    if kernel_release() < (6, 15) or not (CAPS.thp and CAPS.swap):
        pytest.skip("needs Linux 6.15+, THP and swap")
    s = _session("linux-6.15")
    reuse = [x for x in s.load_all("policykit/corpus/cow-reuse-after-child-exit.scn") if x.variant == "pte-mapped-thp"]
    swapin = s.load_all("plugins/policykit-swap/policykit_swap/scenarios/swapcache-needless-copy.scn")
    results = validate(s, reuse + swapin, CAPS)
    assert [v.disagreements for v in results] == [[], []]
    assert results[0].live[8].faults == {"parent:buf_thp[0]": "reuse"}
    assert results[1].live[5].faults == {"p:buf[0]": "no fault"}


def test_random_sequences_agree_step_by_step():
    """>= 200 random sequences of every operation the backend runs, on base pages, THPs,
    hugetlb pages and swap: the newest era agrees with this kernel on every step."""
    from policykit.live.sequences import KINDS, random_scenarios
    from policykit.live.validate import kernel_release, validate

    if kernel_release() < (6, 15) or not (CAPS.thp and CAPS.swap and CAPS.hugetlb):
        pytest.skip("needs Linux 6.15+, THP, swap and hugetlb")
    s = _session("linux-6.15")
    texts = random_scenarios(240, seed=2026, kinds=KINDS)
    ops = {line.split()[0] for t in texts for line in t.splitlines()[4:] if line}
    assert ops >= {"spawn", "mmap", "mmap_thp", "mmap_hugetlb", "hugetlb_pool", "write", "read", "fork", "exit",
                   "munmap", "mprotect", "vmsplice", "pin", "unpin", "put", "dma_read", "dma_write", "pageout"}
    results = validate(s, [s.parse(t, f"random-{i}.scn") for i, t in enumerate(texts)], CAPS)
    ran = [v for v in results if not v.not_runnable]
    assert len(ran) >= 200
    assert all("more than one process maps" in v.not_runnable for v in results if v.not_runnable)
    # The kernel is not a pure function of the steps (reclaim, compaction and khugepaged
    # run beside it): a sequence that disagrees is run again, and must agree then; only
    # a few may need it.
    once = [v for v in ran if v.disagreements]
    again = validate(s, [v.scenario for v in once], CAPS) if once else []
    bad = [(v.scenario.name, v.disagreements[0]) for v in again if v.disagreements]
    assert not bad, bad[:3]
    assert len(once) <= 3, [(v.scenario.name, v.disagreements[0]) for v in once]


def test_without_pfns_only_fault_outcomes_data_and_pmds_are_compared():
    """As a user without root sees it: pagemap shows no PFNs, so a write is seen to
    fault or not (a copy and a reuse look alike), and no page identity is compared."""
    import dataclasses

    from policykit.live.validate import validate

    s = _session()
    v = validate(s, [_scenario(s, COW)], dataclasses.replace(CAPS, pfns=False))[0]
    assert v.agrees, v.disagreements
    assert set(v.compared) == {"status", "fault", "data", "pmd"}
    assert v.live[4].faults == v.simulated[4].faults == {"parent:buf[0]": "fault"}
    assert v.live[6].faults == {"child:buf[0]": "fault"}
    assert all(p.label in ("present", "-") for o in v.live for p in o.pages.values())


def test_ksm_merges_for_real_and_ksmd_is_put_back():
    from policykit.live.validate import validate

    if not CAPS.ksm:
        pytest.skip(CAPS.ksm_reason)
    s = _session()
    [sc] = s.load_all("plugins/policykit-ksm/policykit_ksm/scenarios/ksm-write-copies.scn")
    v = validate(s, [sc], CAPS)[0]
    assert v.agrees, v.disagreements
    merged = v.live[8].pages                       # after ksm_merge: one page, mapped by both
    assert merged["a:x[0]"].label == merged["b:y[0]"].label and merged["a:x[0]"].mapcount == 2
    assert v.live[10].data == {"b:y[0]": "fill a"}


def test_a_killed_validate_gives_everything_back():
    """SIGTERM in the middle of a run that makes swap and hugetlb pages: the command
    still restores them and reaps its agents (the autouse fixture checks)."""
    import subprocess
    import sys
    import time

    if not (CAPS.hugetlb and CAPS.swap):
        pytest.skip(CAPS.hugetlb_reason or CAPS.swap_reason)
    proc = subprocess.Popen([sys.executable, "-m", "policykit", "validate", "linux-6.15", "--random", "400",
                             "--kinds", "hugetlb,swap"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted" in err, (proc.returncode, err[-500:])
    assert not [f for f in os.listdir("/var/tmp") if f.startswith("policykit-swap-")]


def test_a_pool_that_grows_short_is_asked_again(monkeypatch, tmp_path):
    """Growing a hugetlb pool may stop short (a pending signal, compaction not done):
    the pool is asked again while each try gets more, and given back afterwards."""
    from policykit.live import system

    for name, value in (("nr_hugepages", 0), ("free_hugepages", 0), ("surplus_hugepages", 0)):
        (tmp_path / name).write_text(str(value))
    monkeypatch.setitem(system._HUGETLB, "1G", str(tmp_path))
    writes = []

    def one_page_a_try(path: str, value: int) -> None:   # this "kernel" finds one page per call
        writes.append(value)
        now = int((tmp_path / "nr_hugepages").read_text())
        got = min(value, now + 1) if value > now else value
        (tmp_path / "nr_hugepages").write_text(str(got))
        (tmp_path / "free_hugepages").write_text(str(got))
    monkeypatch.setattr(system, "_write", one_page_a_try)
    with system.Settings() as settings:
        settings.hugetlb_free(3, "1G")
        assert (tmp_path / "free_hugepages").read_text() == "3" and writes == [3, 3, 3]
    assert (tmp_path / "nr_hugepages").read_text() == "0"


def test_a_pool_given_back_waits_for_the_pages_a_killed_ring_still_pins(monkeypatch, tmp_path):
    """A killed agent's io_uring ring unpins its huge page from a workqueue, seconds later
    on a loaded machine: until then the page is a surplus one, and the pool's restore
    waits for it to go rather than leave nr_hugepages one too high."""
    from policykit.live import system

    now = [0.0]
    monkeypatch.setattr(system.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(system.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    for name in ("nr_hugepages", "free_hugepages"):
        (tmp_path / name).write_text("0")
    surplus = tmp_path / "surplus_hugepages"
    real_read = system._read_int

    def read(path: str) -> int:
        if path == str(surplus):                # the ring lets the page go after 5 s
            return 1 if now[0] < 5.0 else 0
        return real_read(path)
    monkeypatch.setattr(system, "_read_int", read)
    system._settle_surplus(str(tmp_path))
    assert 5.0 <= now[0] < 5.1


def test_pools_kept_across_runs_are_reserved_once_and_given_back_at_the_end(monkeypatch, tmp_path):
    """validate keeps one Settings for the huge page pools of all its scenarios: a
    1 GiB page is reserved for the first and reused by the next, and the pool goes
    back to its size when the session ends, not after each run."""
    from policykit.live import system

    for name, value in (("nr_hugepages", 0), ("free_hugepages", 0), ("surplus_hugepages", 0)):
        (tmp_path / name).write_text(str(value))
    monkeypatch.setitem(system._HUGETLB, "1G", str(tmp_path))
    writes = []

    def kernel(path: str, value: int) -> None:
        writes.append(value)
        (tmp_path / "nr_hugepages").write_text(str(value))
        (tmp_path / "free_hugepages").write_text(str(value))
    monkeypatch.setattr(system, "_write", kernel)
    with system.Settings() as pools:
        for _ in range(3):
            with system.Settings(pools) as run:
                run.hugetlb_free(2, "1G")
            assert (tmp_path / "nr_hugepages").read_text() == "2"
    assert writes == [2, 0] and (tmp_path / "nr_hugepages").read_text() == "0"


def test_swap_kept_across_runs_is_made_once_and_given_back_at_the_end(monkeypatch):
    """validate's longer-lived Settings makes the swapfile for the first run that swaps
    and keeps it for the next: one swapon, and one swapoff when the session ends."""
    from policykit.live import system

    calls, active = [], []
    monkeypatch.setattr(system, "_swap_active", lambda: bool(active))
    monkeypatch.setattr(system, "_make_swapfile", lambda fd, size: calls.append("mkswap"))

    def swapon(path: bytes, flags: int) -> int:
        calls.append("swapon")
        active.append(path)
        return 0

    def swapoff(path: bytes) -> int:
        calls.append("swapoff")
        active.remove(path)
        return 0
    monkeypatch.setattr(system.libc, "_libc", SimpleNamespace(swapon=swapon, swapoff=swapoff))
    with system.Settings() as pools:
        for _ in range(3):
            with system.Settings(pools) as run:
                run.swap()
            assert active, "still on between runs"
    assert calls == ["mkswap", "swapon", "swapoff"] and not active
    assert not [f for f in os.listdir("/var/tmp") if f.startswith("policykit-swap-")]


def test_a_pool_that_cannot_grow_is_an_error_and_is_given_back(monkeypatch, tmp_path):
    from policykit.live import system

    for name, value in (("nr_hugepages", 1), ("free_hugepages", 1), ("surplus_hugepages", 0)):
        (tmp_path / name).write_text(str(value))
    monkeypatch.setitem(system._HUGETLB, "1G", str(tmp_path))
    writes = []
    monkeypatch.setattr(system, "_write", lambda path, value: writes.append(value))   # no page to be had
    with pytest.raises(OSError, match="could not make the pool 2 free huge page"):
        with system.Settings() as settings:
            settings.hugetlb_free(2, "1G")
    assert writes[:-1] == [2, 2] and writes[-1] == 1, "asked twice, then given back its size"


def test_pagemap_reads_one_entry_per_huge_page():
    """The observer reads the first base page of each huge page, not all of them (a
    1 GiB page has 262,144): the same entries as reading them all and keeping every nth."""
    from policykit.live import libc
    from policykit.live.observe import pagemap

    length = 64 * libc.PAGE_SIZE
    addr = libc.mmap(0, length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        for i in range(0, 64, 3):                   # every third page present
            libc.store(addr + i * libc.PAGE_SIZE, b"x")
        every = pagemap(os.getpid(), addr, 64)
        assert pagemap(os.getpid(), addr, 16, 4) == every[::4]
        assert pagemap(os.getpid(), addr, 8, 8) == every[::8]
        assert {e.present for e in every[::4]} == {True, False}
    finally:
        libc.munmap(addr, length)


def test_pmd_mappings_are_read_from_the_page_tables_as_smaps_counts_them():
    """AnonHugePages of a range, asked of its page tables (PAGEMAP_SCAN) rather than of
    smaps: the same KiB for a VMA with nothing mapped, the huge zero page, a PMD-mapped
    THP, a THP beside it, and one split into PTEs; and only the range's own for part of
    a VMA (which smaps cannot tell)."""
    from policykit.live import libc, observe

    if not CAPS.thp:
        pytest.skip(CAPS.thp_reason)
    size = 2 * libc.HPAGE_PMD_SIZE
    raw = libc.mmap(0, size + libc.HPAGE_PMD_SIZE, libc.PROT_READ | libc.PROT_WRITE,
                    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    addr = -(-raw // libc.HPAGE_PMD_SIZE) * libc.HPAGE_PMD_SIZE
    second = addr + libc.HPAGE_PMD_SIZE
    try:
        libc.madvise(addr, size, libc.MADV_HUGEPAGE)
        seen = []

        def both() -> int:
            whole, part = observe._scan_huge_kb(os.getpid(), [(addr, addr + size), (second, addr + size)])
            assert [whole] == observe._smaps_huge_kb(os.getpid(), [(addr, addr + size)])
            seen.append((whole, part))
            return whole

        try:
            both()
        except OSError as exc:
            pytest.skip(f"no PAGEMAP_SCAN ioctl on this kernel: {exc}")
        libc.load(addr, 8)                          # the huge zero page: not anonymous
        both()
        libc.store(second, b"x")
        if both() != 2048:
            pytest.skip("the kernel had no THP to give")
        libc.store(addr, b"y")                      # the zero page replaced by a THP
        both()
        libc.mprotect(second, libc.PAGE_SIZE, libc.PROT_READ)     # split into PTEs
        both()
        assert seen == [(0, 0), (0, 0), (2048, 2048), (4096, 2048), (2048, 0)]
    finally:
        libc.munmap(raw, size + libc.HPAGE_PMD_SIZE)


def test_a_write_is_seen_to_fault_at_an_address_only_if_a_fault_fell_in_its_page():
    """The agent matches the faults perf sampled to the pages written (hundreds of each
    for a THP): a fault counts for the page it fell in, its first and last byte included."""
    from policykit.live import agent

    class Sampled:
        def take(self) -> list[int]:
            return [0x5003, 0x1000, 0x3fff, 0x9000]
    state = SimpleNamespace(faults=Sampled())
    pages = [0x0, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x8000, 0x9000, 0xa000]
    assert agent._faulted(state, pages, 0x1000) == [False, True, False, True, False, True, False, True, False]


def test_agents_forked_by_the_zygote_are_this_process_s_children_and_nothing_outlives_it():
    """The zygote forks each agent twice over: the agent is the controller's child, so
    its end can be read and it can be reaped; the zygote goes with its ``with`` block,
    an exception in it included."""
    from policykit.live.agent import Zygote
    from policykit.live.backend import _exit_code

    with pytest.raises(RuntimeError, match="on purpose"):
        with Zygote() as zygote:
            agent = zygote.spawn()
            with open(f"/proc/{agent.pid}/stat") as f:
                assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
            assert agent.call("hello") == agent.pid
            os.kill(agent.pid, signal.SIGBUS)
            assert os.WTERMSIG(_exit_code(agent.pid)) == signal.SIGBUS
            os.waitpid(agent.pid, 0)
            agent.close()
            raise RuntimeError("on purpose")
    assert zygote._proc is None


def test_the_zygote_runs_the_controller_s_agent_whatever_the_directory_and_pythonpath(monkeypatch, tmp_path):
    """A checkout of another version in the current directory (or on PYTHONPATH) is not
    what the zygote runs: it takes the agent from where the controller has it."""
    from policykit.live.agent import Zygote

    (tmp_path / "policykit").mkdir()
    (tmp_path / "policykit" / "__init__.py").write_text("raise ImportError('not this policykit')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with Zygote() as zygote:
        agent = zygote.spawn()
        assert agent.call("hello") == agent.pid
        agent.exit()
        os.waitpid(agent.pid, 0)


def test_a_kernel_without_pagemap_scan_has_pmd_mappings_read_from_smaps(monkeypatch):
    """Before 6.7 the ioctl is unknown (ENOTTY): the observer reads smaps instead, and
    keeps doing so; an agent gone is an error either way, not a reason to switch."""
    import errno

    from policykit.live import observe

    def unknown(fd: int, request: int, arg: object) -> int:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
    monkeypatch.setattr(observe, "_scan_works", None)
    monkeypatch.setattr(observe.fcntl, "ioctl", unknown)
    smaps = []
    monkeypatch.setattr(observe, "_smaps_huge_kb", lambda pid, ranges: smaps.append(pid) or [7] * len(ranges))
    me = os.getpid()
    assert observe.anon_huge_kb(me, [(0, 4096)]) == [7] and observe._scan_works is False
    assert observe.anon_huge_kb(me, [(0, 4096), (4096, 8192)]) == [7, 7] and smaps == [me, me]

    monkeypatch.setattr(observe, "_scan_works", None)
    with pytest.raises(OSError):
        observe.anon_huge_kb(2 ** 22 + 1, [(0, 4096)])     # no such process
    assert observe._scan_works is None


def test_bench_live_runs():
    """bench/bench_live.py runs (small, once; its figures are not judged here) and, as
    every test here, gives back all it changed.  Here rather than with the other
    benchmarks: what changes swap, hugetlb pools or ksmd runs with these tests, alone,
    not beside the rest of the suite on other CPUs (see the README)."""
    done = bench("bench_live.py")
    assert done.returncode == 0, done.stderr
    assert "live" in done.stdout
