"""policykit-thp: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import Engine, check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs

SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_thp" / "scenarios"
NR = 512


def thp(e: Engine, pages: int = NR):
    p = e.spawn("p")
    b = op(e, "mmap_thp", process=p, pages=pages).result
    return p, b


def pmd_mapped(e: Engine, pid: int, b: int) -> bool:
    ptes = e.process(pid).mm.ptes
    return all(v in ptes and (ptes[v].attrs or {}).get("pmd") for v in range(b, b + NR))


def test_a_write_fault_maps_a_thp_by_pmd():
    e = engine()
    p, b = thp(e)
    assert b % NR == 0
    e.write(p, [b + 3])
    assert pmd_mapped(e, p, b) and e.metrics["thp_faults"] == 1
    head = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert head.attrs["entire_mapcount"] == 1
    from policykit.engine.folio import folio_ref_count
    assert folio_ref_count(e.machine, e.machine.pages[head.pfn + 3]) == 1, "one PMD mapping: one reference"
    assert check_invariants(e.machine, refs(e)) == []


def test_partial_munmap_splits_the_pmd_and_keeps_the_rest():
    e = engine()
    p, b = thp(e)
    e.write(p, [b])
    e.munmap(p, b + 10, b + 20)
    assert not pmd_mapped(e, p, b) and e.metrics["thp_splits"] == 1
    ptes = e.process(p).mm.ptes
    assert len(ptes) == NR - 10 and not any((x.attrs or {}).get("pmd") for x in ptes.values())
    assert check_invariants(e.machine, refs(e)) == []


def test_fork_shares_the_pmd_and_page_count_is_the_folios():
    e = engine()
    p, b = thp(e)
    e.write(p, [b])
    c = e.fork(p, "c")
    assert pmd_mapped(e, c, b)
    assert not any(e.process(p).mm.ptes[v].writable for v in range(b, b + NR))
    from policykit.engine.folio import folio_ref_count
    assert folio_ref_count(e.machine, e.machine.pages[e.process(p).mm.ptes[b].pfn]) == 2
    e.write(c, [b + 5])                              # 6.x: split, then copy 4 KiB
    assert e.metrics["wp_copies"] == 1 and e.metrics["thp_splits"] == 1
    assert pmd_mapped(e, p, b), "only the child's PMD was split"
    assert check_invariants(e.machine, refs(e)) == []


def test_pins_on_a_large_folio_are_counted_exactly():
    e = engine()
    p, b = thp(e)
    e.write(p, [b])
    e.gup(p, [b + 1, b + 2], pin=True)
    from policykit.engine.context import make_context
    page = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    ctx = make_context("x", e.defaults, page, None, None, None, machine=e.machine)
    assert ctx.page.compound and ctx.page.pincount == 2
    assert ctx.page.refcount == 1 + 2, "a PMD mapping and one reference per pin"


def test_collapse_refuses_a_page_with_io_in_flight():
    e = engine("linux-6.11")
    p = e.spawn("p")
    b = op(e, "mmap_thp", process=p, pages=NR).result
    e.read(p, [b])                                   # the huge zero page: no THP yet
    e.write(p, range(b, b + NR))                     # 6.11 splits it: small pages
    assert e.metrics["thp_faults"] == 0
    e.gup(p, [b + 9], pin=False)
    op(e, "collapse", process=p, region=range(b, b + NR))
    assert e.metrics["thp_collapses"] == 0
    e.release(next(iter(e.machine.refs)))
    op(e, "collapse", process=p, region=range(b, b + NR))
    assert e.metrics["thp_collapses"] == 1 and pmd_mapped(e, p, b)
    assert check_invariants(e.machine, refs(e)) == []


def test_reusing_one_page_of_a_large_folio_makes_that_page_exclusive_only():
    """6.15: a write to a page of a large folio this mm alone maps reuses it and sets
    PageAnonExclusive on that page (do_wp_page()); the folio's other pages keep theirs,
    as the live kernel shows for the folio's head (validate found the difference)."""
    e, p, b = _filled_mthps(32)
    c = e.fork(p, "c")
    op(e, "munmap", process=p, region=list(range(b, b + 32)))
    e.write(c, [b + 21])
    pages = e.machine.pages
    ptes = e.process(c).mm.ptes
    assert e.metrics["wp_copies"] == 0, "reused, not copied"
    assert e.flag(pages[ptes[b + 21].pfn], "anon_exclusive") is True
    assert [e.flag(pages[ptes[v].pfn], "anon_exclusive") for v in (b + 16, b + 20, b + 22)] == [False] * 3
    assert check_invariants(e.machine, refs(e)) == []


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)


def _filled_mthps(pages: int = 16):
    """linux-6.15, a process ``p`` with ``pages`` pages of 16-page mTHPs, written."""
    e = engine("linux-6.15")
    p = e.spawn("p")
    b = op(e, "mmap_thp", process=p, pages=pages, folio=16).result
    e.write(p, range(b, b + pages))
    return e, p, b


def _folio_left_to_its_third_mm():
    """A 16-page folio mapped by three mms (two slots: the third untracked), then left
    to the third alone."""
    e, p, b = _filled_mthps()
    c1 = e.fork(p, "c1")
    c2 = e.fork(c1, "c2")
    op(e, "munmap", process=p, region=list(range(b, b + 16)))
    e.exit(c1)
    return e, c2, b


def test_a_folio_a_third_mm_mapped_stays_maybe_shared_when_the_others_leave():
    """6.15's two mm slots: the mm that mapped the folio while both were taken is never
    tracked, so the folio stays "maybe mapped shared" and its write copies -- what this
    kernel does (validate --random found it)."""
    e, c2, b = _folio_left_to_its_third_mm()
    folio = e.machine.pages[e.process(c2).mm.ptes[b].pfn].folio
    assert folio.shared and folio.mm_ids == [0, 0] and folio.maps == 16
    e.write(c2, [b + 5])
    assert e.metrics["wp_copies"] == 1
    # a folio two mms shared and one left is this mm's again: reused
    e2, p, b2 = _filled_mthps()
    c = e2.fork(p, "c")
    e2.exit(p)
    e2.write(c, [b2 + 5])
    assert e2.metrics["wp_copies"] == 0


def test_pageout_leaves_a_large_folio_mapped_elsewhere_or_maybe_shared():
    e, c2, b = _folio_left_to_its_third_mm()
    e.write(c2, [b])                             # copied: the folio is now mapped in part
    op(e, "pageout", process=c2, region=list(range(b, b + 16)))
    ptes = e.process(c2).mm.ptes
    assert not ptes[b].present, "the small copy went to swap"
    assert all(ptes[v].present for v in range(b + 1, b + 16)), "the maybe-shared folio stayed"
    e2, p, b2 = _filled_mthps()
    c = e2.fork(p, "c")
    op(e2, "pageout", process=c, region=list(range(b2, b2 + 16)))
    assert all(e2.process(c).mm.ptes[v].present for v in range(b2, b2 + 16)), "mapped whole, twice: kept"
    e2.exit(p)
    op(e2, "pageout", process=c, region=list(range(b2, b2 + 16)))
    assert not any(e2.process(c).mm.ptes[v].present for v in range(b2, b2 + 16)), "this mm's alone: out"


def _huge_zero_mapped(policy: str):
    e = engine(policy)
    p, b = thp(e)
    assert e.read(p, [b + 7]) == [0]
    zero = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    return e, p, b, zero


def test_a_read_fault_maps_the_huge_zero_page_which_no_mapping_counts():
    e, p, b, zero = _huge_zero_mapped("linux-6.x")
    assert pmd_mapped(e, p, b) and zero.zero and not zero.anon and zero.folio.nr == NR
    assert not any(e.process(p).mm.ptes[v].writable for v in range(b, b + NR))
    c = e.fork(p, "c")                                # shared as it is, nothing asked
    assert pmd_mapped(e, c, b) and e.process(c).mm.ptes[b].pfn == zero.pfn
    q, b2 = thp(e)
    e.read(q, [b2])
    assert e.process(q).mm.ptes[b2].pfn == zero.pfn, "one huge zero page for every mm"
    assert zero.mapcount == 0 and e.metrics["decisions"] == 0
    e.munmap(p, b + 10, b + 20)                      # a split: PTEs of the small zero page
    ptes = e.process(p).mm.ptes
    assert len(ptes) == NR - 10 and all(x.pfn == e.machine.zero_pfn for x in ptes.values())
    assert check_invariants(e.machine, refs(e)) == []


@pytest.mark.parametrize("policy, thp_faults, splits", [("linux-6.15", 1, 0), ("linux-6.11", 0, 1),
                                                         ("linux-5.7", 1, 0)])
def test_a_write_on_the_huge_zero_page_maps_a_thp_or_splits_by_era(policy, thp_faults, splits):
    e, p, b, zero = _huge_zero_mapped(policy)
    e.write(p, [b + 3])
    pte = e.process(p).mm.ptes[b + 3]
    page = e.machine.pages[pte.pfn]
    assert pte.writable and page.anon and not page.zero
    assert (e.metrics["thp_faults"], e.metrics["thp_splits"], e.metrics["wp_copies"]) == (thp_faults, splits, 0)
    assert pmd_mapped(e, p, b) == bool(thp_faults)
    if splits:                                       # the others still read zeros, read-only
        assert e.process(p).mm.ptes[b + 4].pfn == e.machine.zero_pfn
    assert check_invariants(e.machine, refs(e)) == []


def test_a_read_only_longterm_pin_unshares_the_huge_zero_page_from_6_2():
    for policy, kept in (("linux-6.x", False), ("linux-5.19", True)):
        e, p, b, zero = _huge_zero_mapped(policy)
        rid = e.gup(p, [b], pin=True, longterm=True)
        pinned = e.machine.pages[e.machine.refs[rid].pfns[0]]
        assert pinned.zero is kept, policy
        assert check_invariants(e.machine, refs(e)) == []
