"""policykit-lru: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs


SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_lru" / "scenarios"










def test_batched_page_holds_a_reference_until_drained():
    e = engine()
    p = e.spawn("p")
    op(e, "run_on", process=p, cpu=0)
    b = e.mmap(p, 1)
    e.write(p, [b])
    page = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert page.attrs["lru"] is False and page.refcount == 2
    assert check_invariants(e.machine, refs(e)) == []
    op(e, "lru_drain", cpu=1)
    assert page.refcount == 2, "another CPU's drain leaves it"
    op(e, "lru_drain", cpu=0)
    assert "lru" not in page.attrs and page.refcount == 1
    assert check_invariants(e.machine, refs(e)) == []


def test_a_full_batch_drains_itself():
    e = engine()
    p = e.spawn("p")
    op(e, "run_on", process=p, cpu=0)
    b = e.mmap(p, 16)
    e.write(p, range(b, b + 16))
    assert e.metrics["lru_drains"] == 1
    assert len(e.machine.attrs["lru.batch"][0]) == 1


def test_unplaced_processes_do_not_batch():
    e = engine()
    p = e.spawn("p")
    b = e.mmap(p, 1)
    e.write(p, [b])
    assert e.machine.pages[e.process(p).mm.ptes[b].pfn].refcount == 1


def test_an_unmapped_batched_page_is_freed_by_the_drain():
    e = engine()
    p = e.spawn("p")
    op(e, "run_on", process=p, cpu=0)
    b = e.mmap(p, 1)
    e.write(p, [b])
    pfn = e.process(p).mm.ptes[b].pfn
    e.munmap(p, b, b + 1)
    assert pfn in e.machine.pages
    op(e, "lru_drain_all")
    assert pfn not in e.machine.pages


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)
