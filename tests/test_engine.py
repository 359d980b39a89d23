"""The engine's mechanics: counts balance, flags stick, fork honours VMA flags."""

from __future__ import annotations

import pytest
from conftest import run, session

from policykit import GUP_PIN_COUNTING_BIAS, Engine, OperationFailed
from policykit.engine.invariants import check_invariants


def engine(policy: str = "anon_exclusive") -> Engine:
    s = session(policy)
    return Engine(s.pm, s.registry)


def page_at(e: Engine, pid: int, vpn: int):
    return e.machine.pages[e.machine.processes[pid].mm.ptes[vpn].pfn]


def test_fork_shares_and_write_protects():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 2)
    e.write(p, range(base, base + 2))
    c = e.fork(p, "c")
    for vpn in (base, base + 1):
        page = page_at(e, p, vpn)
        assert (page.refcount, page.mapcount) == (2, 2)
        assert page_at(e, c, vpn) is page
        assert not e.process(p).mm.ptes[vpn].writable
        assert not e.process(c).mm.ptes[vpn].writable
    assert check_invariants(e.machine) == []


def test_cow_copy_moves_one_mapping():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    old = page_at(e, p, base)
    c = e.fork(p, "c")
    e.write(c, [base])
    new = page_at(e, c, base)
    assert new is not old
    assert (old.refcount, old.mapcount) == (1, 1)
    assert (new.refcount, new.mapcount) == (1, 1)
    assert e.metrics["wp_copies"] == 1 and e.metrics["bytes_copied"] == 4096
    # the parent is now alone on its page: anon-exclusive reuses it without a copy
    e.write(p, [base])
    assert page_at(e, p, base) is old and e.metrics["wp_copies"] == 1
    assert check_invariants(e.machine) == []


def test_exit_and_unpin_free_pages():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    pfn = page_at(e, p, base).pfn
    rid = e.gup(p, [base], pin=True, write=True)
    assert e.machine.pages[pfn].refcount == 1 + GUP_PIN_COUNTING_BIAS
    c = e.fork(p, "c")                      # pinned + exclusive: copied for the child
    assert e.metrics["fork_copies"] == 1
    e.exit(c)
    e.munmap(p, base, base + 1)
    page = e.machine.pages[pfn]
    assert (page.refcount, page.mapcount, page.pins) == (GUP_PIN_COUNTING_BIAS, 0, 1)
    e.release(rid)
    assert pfn not in e.machine.pages
    assert check_invariants(e.machine) == []
    # only the zero page is left
    assert list(e.machine.pages) == [e.machine.zero_pfn]


def test_exit_drops_the_process_references():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    e.gup(p, [base], pin=False)
    e.exit(p)
    assert e.machine.refs == {}
    assert list(e.machine.pages) == [e.machine.zero_pfn]
    assert check_invariants(e.machine) == []


def test_has_pinned_is_sticky_and_not_inherited():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    mm = e.process(p).mm
    assert not mm.has_pinned
    e.gup(p, [base], pin=False)
    assert not mm.has_pinned, "FOLL_GET does not set has_pinned"
    rid = e.gup(p, [base], pin=True)
    assert mm.has_pinned
    e.release(rid)
    assert mm.has_pinned, "has_pinned is never cleared"
    c = e.fork(p, "c")
    assert not e.process(c).mm.has_pinned


def test_dontfork_leaves_the_child_without_the_range():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 4)
    e.write(p, range(base, base + 4))
    e.madvise(p, base + 1, base + 3, "dontfork")
    c = e.fork(p, "c")
    child = e.process(c).mm
    assert sorted(child.ptes) == [base, base + 3]
    assert [(v.start - base, v.end - base) for v in child.vmas] == [(0, 1), (3, 4)]
    assert [(v.start - base, v.end - base, v.dontcopy) for v in e.process(p).mm.vmas] == [
        (0, 1, False), (1, 3, True), (3, 4, False)]
    with pytest.raises(OperationFailed):
        e.read(c, [base + 1])
    assert check_invariants(e.machine) == []


def test_wipeonfork_gives_the_child_zero_pages():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 2)
    e.write(p, range(base, base + 2))
    e.madvise(p, base, base + 2, "wipeonfork")
    c = e.fork(p, "c")
    assert e.process(c).mm.ptes == {}
    assert e.read(c, range(base, base + 2)) == [0, 0]
    assert page_at(e, c, base).zero
    assert all(v.wipeonfork for v in e.process(c).mm.vmas), "VM_WIPEONFORK is inherited"
    assert check_invariants(e.machine) == []


def test_read_maps_the_zero_page_and_write_replaces_it():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    assert e.read(p, [base]) == [0]
    pte = e.process(p).mm.ptes[base]
    assert pte.pfn == e.machine.zero_pfn and not pte.writable
    zero = e.machine.pages[e.machine.zero_pfn]
    assert (zero.refcount, zero.mapcount) == (1, 0), "zero page mappings are not counted"
    [tok] = e.write(p, [base])
    assert pte.pfn != e.machine.zero_pfn and pte.writable
    assert e.read(p, [base]) == [tok]
    assert e.metrics["wp_copies"] == 0, "replacing the zero page is not a copy"
    assert check_invariants(e.machine) == []


def test_shared_anon_is_not_cow():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1, shared=True)
    e.write(p, [base])
    c = e.fork(p, "c")
    [tok] = e.write(c, [base])
    assert e.read(p, [base]) == [tok]
    page = page_at(e, p, base)
    assert not page.anon
    assert (page.refcount, page.mapcount) == (3, 2), "two mappings + the shmem object"
    e.madvise(p, base, base + 1, "dontneed")
    assert e.read(p, [base]) == [tok], "shmem keeps content across MADV_DONTNEED"
    assert e.metrics["decisions"] == 0, "no COW decision is asked for shared memory"
    assert check_invariants(e.machine) == []


def test_a_read_fault_on_shared_memory_maps_the_pages_around_it():
    """do_fault_around(): the aligned 16-page window, within the VMA; write faults and
    private memory fault one page at a time."""
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 20, shared=True)
    e.write(p, range(base, base + 20))
    e.madvise(p, base, base + 20, "dontneed")
    e.read(p, [base + 3])
    ptes = e.process(p).mm.ptes
    assert sorted(v - base for v in ptes) == list(range(16)), "the window holding page 3"
    assert all(ptes[v].writable for v in ptes), "a writable shared mapping maps them writable"
    assert page_at(e, p, base).mapcount == 1
    assert e.metrics["faults_shared"] == 21, "one fault: the 20 writes, then the read"
    e.madvise(p, base, base + 20, "dontneed")
    e.write(p, [base + 17])
    assert sorted(v - base for v in ptes) == [17], "a write fault maps its own page only"
    priv = e.mmap(p, 4)
    e.write(p, range(priv, priv + 4))
    e.madvise(p, priv, priv + 4, "dontneed")
    e.read(p, [priv])
    assert sorted(v - priv for v in ptes if priv <= v < priv + 4) == [0]
    assert check_invariants(e.machine) == []


def test_failed_fork_leaves_no_trace():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 3)
    e.write(p, range(base, base + 3))
    e.gup(p, [base + 2], pin=True, write=True)
    def counts():
        return sorted((pg.pfn, pg.refcount, pg.mapcount) for pg in e.machine.pages.values())

    before = counts()
    e.machine.fail_allocs = 1
    with pytest.raises(OperationFailed) as info:
        e.fork(p, "c")
    assert info.value.errno == "ENOMEM"
    assert len(e.machine.processes) == 1
    assert check_invariants(e.machine) == []
    assert counts() == before, "page counts are back where they were"
    # as in the kernel, the PTEs fork got to before failing stay write-protected and the
    # pages it shared stay non-exclusive
    ptes = e.process(p).mm.ptes
    assert [ptes[base + i].writable for i in range(3)] == [False, False, True]


def test_mprotect_ro_write_protects_and_rw_asks_the_policy():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    e.mprotect(p, base, base + 1, write=False)
    assert not e.process(p).mm.ptes[base].writable
    with pytest.raises(OperationFailed):
        e.write(p, [base])
    e.mprotect(p, base, base + 1, write=True)
    assert e.process(p).mm.ptes[base].writable, "anon-exclusive: exclusive page made writable"
    e.fork(p, "c")
    e.mprotect(p, base, base + 1, write=False)
    e.mprotect(p, base, base + 1, write=True)
    assert not e.process(p).mm.ptes[base].writable, "a shared page stays read-only"


def test_mprotect_or_madvise_that_changes_no_flag_does_nothing():
    """mprotect_fixup() and madvise_update_vma() return at once for a VMA whose flags
    would stay as they are: no PTE is made writable, no VMA split, no PMD split."""
    from policykit.testing import engine
    e = engine("linux-6.x")
    p = e.spawn("p")
    base = e.mmap(p, 2)
    e.gup(p, [base], pin=True, longterm=True)       # unshares the zero page: an exclusive
    pte = e.process(p).mm.ptes[base]                # anonymous page, mapped read-only
    assert not pte.writable and e.machine.pages[pte.pfn].anon
    e.mprotect(p, base, base + 2, write=True)       # PROT_WRITE already: nothing to do
    assert not pte.writable, "no PTE upgraded: mprotect_fixup() returned at once"
    faults = e.metrics["faults_wp"]
    e.write(p, [base])
    assert e.metrics["faults_wp"] == faults + 1     # the write faults (and reuses the page)
    e.mprotect(p, base + 1, base + 2, write=False)
    e.mprotect(p, base, base + 2, write=True)       # the second VMA changes, the first not
    assert [(v.start, v.end, v.write) for v in e.process(p).mm.vmas] == [(base, base + 2, True)]
    e.madvise(p, base + 1, base + 2, "dofork")      # not MADV_DONTFORK: nothing to undo
    assert [(v.start, v.end) for v in e.process(p).mm.vmas] == [(base, base + 2)]
    shared = e.mmap(p, 1, shared=True)
    e.madvise(p, shared, shared + 1, "keeponfork")  # refused for MADV_WIPEONFORK only
    with pytest.raises(OperationFailed, match="EINVAL|shared"):
        e.madvise(p, shared, shared + 1, "wipeonfork")


def test_a_madvise_that_changes_no_flag_leaves_a_pmd_mapped_thp_whole():
    from policykit.testing import apply, engine
    e = engine("linux-6.x")
    p = e.spawn("p")
    base = apply(e, "mmap_thp", process=p, pages=512).result
    e.write(p, [base])
    ptes = e.process(p).mm.ptes
    assert (ptes[base].attrs or {}).get("pmd")
    e.madvise(p, base + 1, base + 2, "dofork")
    e.madvise(p, base + 1, base + 2, "keeponfork")
    assert (ptes[base].attrs or {}).get("pmd") and len(e.process(p).mm.vmas) == 1
    e.madvise(p, base + 1, base + 2, "dontfork")   # a change: the VMA splits, and the PMD with it
    assert not (e.process(p).mm.ptes[base].attrs or {}).get("pmd")


def test_munmap_splits_vmas():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 5)
    e.write(p, range(base, base + 5))
    e.munmap(p, base + 1, base + 2)
    mm = e.process(p).mm
    assert [(v.start - base, v.end - base) for v in mm.vmas] == [(0, 1), (2, 5)]
    assert sorted(mm.ptes) == [base, base + 2, base + 3, base + 4]
    assert check_invariants(e.machine) == []


def test_snapshot_restore_and_canonical_hash():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 2)
    e.write(p, range(base, base + 2))
    snap = e.machine.copy()
    e.fork(p, "c")
    assert e.machine.canonical() != snap.canonical()
    e.machine = snap
    assert len(e.machine.processes) == 1

    # the same history with other pfns and tokens gives the same canonical state
    def build(skip: int):
        x = engine()
        x.machine.next_pfn += skip
        x.machine.next_token += skip
        q = x.spawn("p")
        b = x.mmap(q, 2)
        x.write(q, [b + 1, b])
        x.fork(q, "c")
        return x.machine

    assert build(0).state_hash() == build(7).state_hash()
    assert build(0).canonical(rename_tokens=False) != build(7).canonical(rename_tokens=False)


def test_gup_write_breaks_cow_first():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    e.fork(p, "c")
    shared = page_at(e, p, base)
    e.gup(p, [base], pin=False, write=True)
    mine = page_at(e, p, base)
    assert mine is not shared and mine.gets == 1 and shared.gets == 0
    assert e.process(p).mm.ptes[base].writable


def test_ro_pin_unshares_a_shared_page():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    c = e.fork(p, "c")
    e.gup(p, [base], pin=True, longterm=True)
    assert e.metrics["unshare_copies"] == 1 and e.metrics["faults_unshare"] == 1
    mine, theirs = page_at(e, p, base), page_at(e, c, base)
    assert mine is not theirs and mine.pins == 1
    assert not e.process(p).mm.ptes[base].writable, "unshare keeps the PTE read-only"


def test_invariant_checker_catches_imbalance():
    e = engine()
    p = e.spawn("p")
    base = e.mmap(p, 1)
    e.write(p, [base])
    page_at(e, p, base).refcount += 1
    assert any("refcount" in msg for msg in check_invariants(e.machine))


def test_every_step_keeps_invariants_on_the_corpus():
    from policykit.cli import scenario_paths
    for policy in ("never_copy", "copy_on_wp", "anon_exclusive"):
        s = session(policy)
        for path in scenario_paths([]):
            for scn in s.load_all(str(path)):
                if scn.variant in ("", "base"):      # the Python policies decide core points only
                    s.run(scn, invariants=True)      # raises on a broken invariant


def test_trace_records_decisions_and_counts():
    r = run("copy_on_wp", """
spawn -> p
mmap p 1 private -> buf
write p buf
fork p -> c
write p buf
""", trace=True)
    last = r.steps[-1]
    decisions = [(e.info, e.decision.action) for e in last.events if e.decision]
    assert decisions == [("wp_fault", "copy")]
    assert sorted(last.pages) == [(1, 1, 1), (2, 1, 1)]


class _DirectedCow:
    """A yardstick's rules, in Python: keep a page this process pins, copy for the others."""

    @staticmethod
    def policykit_fork_pte(ctx):
        return "share"

    @staticmethod
    def policykit_wp_fault(ctx):
        if ctx.page.mapcount == 1:
            return "reuse"
        return "directed_copy" if ctx.page.pins else "copy"

    @staticmethod
    def policykit_dma_write(ctx):
        return "directed_copy"


def _directed_session():
    from policykit import Policy, Session, load_policy
    base = load_policy("linux-6.x")
    return Session(Policy("directed", _DirectedCow(), "test"), plugins=[base.plugin])


def test_directed_copy_keeps_the_pinned_page_and_copies_for_the_others():
    s = _directed_session()
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\npin p b write longterm -> mr\n"
                      "fork p -> c\nfork p -> d\nwrite p b\ndma_write mr\nread p b\nread c b\nread d b\n"),
              trace=True, invariants=True)
    assert r.verdict == "ok"
    assert (r.metrics["fork_copies"], r.metrics["wp_copies"]) == (0, 2)      # c and d moved
    copies = [e.info for rec in r.steps for e in rec.events if e.kind == "copy"]
    assert len(copies) == 2 and all(c.startswith("directed:") for c in copies)


def test_a_device_write_to_a_shared_page_asks_dma_write_first():
    s = _directed_session()
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\npin p b write longterm -> mr\n"
                      "fork p -> c\ndma_write mr\nread p b\nread c b\n"), invariants=True)
    assert r.verdict == "ok" and r.metrics["wp_copies"] == 1
    plain = session("never_copy")             # default: the device writes the shared page
    r = plain.run(plain.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\npin p b write longterm -> mr\n"
                              "fork p -> c\ndma_write mr\nread c b\n"), invariants=True)
    assert r.verdict == "leak"


def test_snapshot_copies_take_every_field():
    """Snapshots copy VMAs, mms, processes and machines without their ``__init__`` (explore
    and compare make many): a field added to one of them must be copied too, or the copy
    would lack it."""
    import dataclasses

    from policykit.testing import session as builtin_session
    s = builtin_session("linux-6.x")
    scn = s.parse("spawn -> p\nmmap p 2 private -> b\nwrite p b\npin p b write -> r\nfork p -> c\n", "t.scn")
    runner = s.start()
    for i, step in enumerate(scn.steps):
        runner.step(i, step)
    machine = runner.engine.machine
    proc = next(iter(machine.processes.values()))
    assert machine.refs and proc.mm.ptes and proc.mm.vmas
    for obj in (machine, proc, proc.mm, proc.mm.vmas[0]):
        new = obj.copy()
        for f in dataclasses.fields(obj):
            if f.name != "pages":       # Page objects compare by identity: copied, not shared
                assert getattr(new, f.name) == getattr(obj, f.name), (type(obj).__name__, f.name)
    assert machine.copy().pages.keys() == machine.pages.keys()
    # the oracle's references, likewise (their cells are copies: compared by content)
    oracle = runner.oracle
    copied = oracle.copy(runner.engine)
    for rid, ref in oracle.refs.items():
        twin = copied.refs[rid]
        for f in dataclasses.fields(ref):
            mine, theirs = getattr(ref, f.name), getattr(twin, f.name)
            if f.name == "cells":
                mine, theirs = [c.tokens for c in mine], [c.tokens for c in theirs]
            assert mine == theirs, ("_Ref", f.name)


@pytest.mark.parametrize("policy", ["linux-5.9", "linux-6.x"])
def test_rules_called_without_a_context_decide_as_the_hook_does(policy):
    """Alone and unwatched, the engine calls a compiled policy's rules with views it
    makes itself (Views.direct); watched (a trace) it goes through the hook and its
    context: every decision, rule and count is the same."""
    from policykit import load_policy
    from policykit.corpus import corpus_dirs, scenario_files
    from policykit.run import Session

    s = Session(load_policy(policy))
    assert s.dispatch.direct["wp_fault"] is not None
    files = scenario_files([str(d) for d in corpus_dirs(s.pm)], s.pm)
    runs = [sc for f in files if f.name in ("cow-basic.scn", "ro-pin-shared.scn", "vmsplice-before-fork.scn",
                                      "cow-basic-mprotect.scn", "force-write-soft-dirty.scn")
            for sc in s.load_all(str(f))]
    assert len(runs) > 40
    for sc in runs:
        plain, traced = s.run(sc), s.run(sc, trace=True)
        assert (plain.verdict, plain.metrics, plain.rules) == (traced.verdict, traced.metrics, traced.rules), sc.name
        decisions = [e.decision.rule for rec in traced.steps for e in rec.events if e.decision]
        assert sum(plain.rules.values()) == len([r for r in decisions if r is not None]) > 0, sc.name
