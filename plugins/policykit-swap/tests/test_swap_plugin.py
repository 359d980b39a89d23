"""policykit-swap: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import Engine, Session, check_invariants, load_policy
from policykit.testing import apply, assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs


SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_swap" / "scenarios"








def pageout(e: Engine, pid: int, vpns) -> None:
    apply(e, "pageout", process=pid, region=vpns)


def test_pageout_frees_a_page_nothing_else_holds_and_swapin_brings_it_back():
    e = engine()
    p = e.spawn("p")
    b = e.mmap(p, 1)
    [tok] = e.write(p, [b])
    pfn = e.process(p).mm.ptes[b].pfn
    pageout(e, p, [b])
    pte = e.process(p).mm.ptes[b]
    assert not pte.present and pte.attrs["swap"] and pte.attrs["swp_exclusive"]
    assert pfn not in e.machine.pages, "reclaimed"
    assert e.peek(p, b) == tok
    assert e.read(p, [b]) == [tok]
    page = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert page.attrs["swapcache"] and page.refcount == 2 and page.mapcount == 1
    assert e.flag(page, "anon_exclusive") is True, "swp_exclusive came back (5.19 part 3)"
    assert check_invariants(e.machine, refs(e)) == []


def test_a_referenced_page_stays_in_the_swapcache():
    e = engine("linux-5.9")
    p = e.spawn("p")
    b = e.mmap(p, 1)
    e.write(p, [b])
    e.gup(p, [b], pin=False)
    pfn = e.process(p).mm.ptes[b].pfn
    pageout(e, p, [b])
    page = e.machine.pages[pfn]
    assert page.attrs["swapcache"] and page.attrs["swapcount"] == 1 and page.mapcount == 0
    assert page.refcount == 2, "the GUP reference + the swapcache"
    assert check_invariants(e.machine, refs(e)) == []


def test_fork_duplicates_swap_entries_and_clears_exclusive():
    e = engine()
    p = e.spawn("p")
    b = e.mmap(p, 1)
    [tok] = e.write(p, [b])
    pageout(e, p, [b])
    c = e.fork(p, "c")
    for pid in (p, c):
        pte = e.process(pid).mm.ptes[b]
        assert not pte.present and pte.attrs["swp_exclusive"] is False
    slot = e.process(p).mm.ptes[b].attrs["swap"]
    assert e.machine.attrs["swap"][slot]["count"] == 2
    assert e.read(c, [b]) == [tok]
    [mine] = e.write(p, [b])
    assert e.read(c, [b]) == [tok] and e.read(p, [b]) == [mine]
    e.exit(c)
    e.exit(p)
    assert e.machine.attrs["swap"] == {}, "every slot freed"
    assert list(e.machine.pages) == [e.machine.zero_pfn]


def test_5_11_keeps_pinned_pages_out_of_swap():
    for policy, swapped in (("linux-5.9", True), ("linux-5.18", False)):
        e = engine(policy)
        p = e.spawn("p")
        b = e.mmap(p, 1)
        e.write(p, [b])
        e.gup(p, [b], pin=True)
        pageout(e, p, [b])
        assert (not e.process(p).mm.ptes[b].present) is swapped, policy
        assert check_invariants(e.machine, refs(e)) == []


def test_policies_that_predate_the_plugin_still_run():
    # the Python policies know nothing of swap: the plugin's defaults decide
    py = Path(__file__).resolve().parents[3] / "policies" / "python" / "anon_exclusive.py"
    s = Session(load_policy(str(py)))
    r = s.run(s.load(str(SCENARIOS / "swapcache-needless-copy.scn")), invariants=True)
    assert r.violations == []


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)


def _shared_thp(policy: str = "linux-6.x"):
    """A PMD-mapped THP, filled, whose PMD a child shares after fork."""
    e = engine(policy)
    p = e.spawn("p")
    b = apply(e, "mmap_thp", process=p, pages=512).result
    toks = e.write(p, range(b, b + 512))
    c = e.fork(p, "c")
    return e, p, c, b, toks


def test_pageout_leaves_a_thp_another_mm_maps_and_splits_and_swaps_out_one_it_alone_maps():
    e, p, c, b, toks = _shared_thp()
    head = e.process(p).mm.ptes[b].pfn
    pageout(e, p, range(b, b + 512))
    assert e.metrics["thp_swpout_fallback"] == 0 and e.metrics["swapouts"] == 0, "MADV_PAGEOUT: mapped twice"
    e.exit(c)
    pageout(e, p, range(b, b + 512))
    assert e.metrics["thp_swpout_fallback"] == 1
    ptes = e.process(p).mm.ptes
    assert all(not ptes[v].present and "swap" in ptes[v].attrs for v in range(b, b + 512))
    assert head not in e.machine.pages, "every page went to swap and was freed"
    assert [e.peek(p, v) for v in (b, b + 511)] == [toks[0], toks[511]]
    assert e.read(p, [b + 7]) == [toks[7]]
    page = e.machine.pages[ptes[b + 7].pfn]
    assert page.folio is None and "folio" not in page.attrs, "it comes back a small page"
    assert check_invariants(e.machine, refs(e)) == []


def test_split_folio_leaves_small_pages_with_their_flags_and_maps():
    e, p, c, b, _ = _shared_thp()
    page = e.machine.pages[e.process(p).mm.ptes[b + 3].pfn]
    assert e.split_folio(page)
    for pid in (p, c):
        ptes = e.process(pid).mm.ptes
        assert not any((ptes[v].attrs or {}).get("pmd") for v in range(b, b + 512)), "PMDs split"
    assert page.folio is None and page.mapcount == 2 and page.refcount == 2
    assert e.flag(page, "anon_exclusive") is False, "the head's flag, as fork left it"
    assert check_invariants(e.machine, refs(e)) == []


def test_a_pinned_thp_cannot_be_split_and_stays():
    e, p, c, b, _ = _shared_thp("linux-5.9")
    e.exit(c)
    e.gup(p, [b + 1], pin=True, write=True, longterm=True)
    head = e.process(p).mm.ptes[b].pfn
    pageout(e, p, range(b, b + 512))
    assert e.metrics["thp_swpout_fallback"] == 0 and e.metrics["swapouts"] == 0
    assert all(e.process(p).mm.ptes[v].present for v in range(b, b + 512)) and head in e.machine.pages


def test_a_variant_needing_another_plugins_operation_is_skipped_without_it():
    import policykit_swap
    from policykit import Session, load_policy
    from policykit.scenario import scenarios_from_text

    # the swap plugin alone: no THP plugin, so no mmap_thp (and a policy that needs neither)
    policy = Path(__file__).resolve().parents[3] / "policies" / "python" / "anon_exclusive.py"
    s = Session(load_policy(str(policy)), plugins=[policykit_swap], autoload=False)
    skipped: list = []
    text = "variants swapped swapped-thp\nspawn -> p\nmmap_variant p -> buf\nwrite p buf\n"
    assert [x.variant for x in scenarios_from_text(text, "t.scn", s.registry, skipped)] == ["swapped"]
    assert skipped == [("t/swapped-thp", "variant 'swapped-thp' needs the operation 'mmap_thp', "
                                         "which no installed plugin declares")]


def test_exclusivity_moves_to_the_swap_entry_and_a_page_kept_in_the_swapcache_loses_it():
    """try_to_unmap() moves PageAnonExclusive into the swap entry; fork then clears the
    entries, so a write fault on the page still in the swapcache (a pipe holds it) may
    not reuse it (validate --random found the simulator reusing it)."""
    e = engine()
    p = e.spawn("p")
    b = e.mmap(p, 1)
    e.write(p, [b])
    page = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    e.gup(p, [b], pin=False)                        # vmsplice: the page outlives its swap-out
    pageout(e, p, [b])
    assert page.attrs.get("swapcache") and e.flag(page, "anon_exclusive") is False
    assert e.process(p).mm.ptes[b].attrs["swp_exclusive"] is True
    e.fork(p, "c")
    e.write(p, [b])
    assert e.process(p).mm.ptes[b].pfn != page.pfn, "copied, not reused"
    assert check_invariants(e.machine, refs(e)) == []
