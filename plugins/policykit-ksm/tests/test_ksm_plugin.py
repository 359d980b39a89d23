"""policykit-ksm: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import Engine, check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params


SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_ksm" / "scenarios"








def two_equal_pages(e: Engine):
    a, b = e.spawn("a"), e.spawn("b")
    x, y = e.mmap(a, 1), e.mmap(b, 1)
    op(e, "fill", process=a, region=[x], tag="a")
    op(e, "fill", process=b, region=[y], tag="a")
    op(e, "ksm_enable", process=a, region=[x])
    op(e, "ksm_enable", process=b, region=[y])
    return a, b, x, y


def test_merge_maps_one_write_protected_ksm_page():
    e = engine()
    a, b, x, y = two_equal_pages(e)
    assert e.process(a).mm.ptes[x].pfn != e.process(b).mm.ptes[y].pfn
    op(e, "ksm_merge")
    pa, pb = e.process(a).mm.ptes[x], e.process(b).mm.ptes[y]
    assert pa.pfn == pb.pfn and not pa.writable and not pb.writable
    page = e.machine.pages[pa.pfn]
    assert page.attrs["ksm"] and (page.refcount, page.mapcount) == (2, 2)
    assert e.flag(page, "anon_exclusive") is False, "KSM pages are never exclusive (5.19)"
    assert e.metrics["ksm_merged"] == 1
    assert check_invariants(e.machine) == []


def test_pages_of_other_content_or_not_mergeable_stay():
    e = engine()
    a, b, x, y = two_equal_pages(e)
    op(e, "fill", process=b, region=[y], tag="b")
    op(e, "ksm_merge")
    assert e.metrics["ksm_merged"] == 0
    c = e.spawn("c")
    z = e.mmap(c, 1)
    op(e, "fill", process=c, region=[z], tag="a")       # equal content, but not MADV_MERGEABLE
    op(e, "ksm_merge")
    assert e.metrics["ksm_merged"] == 0


def test_reused_ksm_page_stops_being_one():
    e = engine("linux-5.7")
    a, b, x, y = two_equal_pages(e)
    op(e, "ksm_merge")
    e.exit(b)
    e.write(a, [x])                                       # refcount 1: reuse_ksm_page()
    page = e.machine.pages[e.process(a).mm.ptes[x].pfn]
    assert e.metrics["wp_copies"] == 0 and "ksm" not in page.attrs


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)
