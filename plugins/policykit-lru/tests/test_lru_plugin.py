"""policykit-lru: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from policykit import Engine, Session, check_invariants, load_policy

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@functools.cache
def session(policy: str) -> Session:
    return Session(load_policy(policy))


def engine(policy: str = "linux-6.x") -> Engine:
    s = session(policy)
    return Engine(s.pm, s.registry)


def op(e: Engine, name: str, **args):
    return e.registry.operations[name].apply(e, args)


def refs(e: Engine):
    hook = e.pm.hook.policykit_page_refs
    return lambda page: sum(hook(machine=e.machine, page=page))


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


def _cases():
    for path in sorted(SCENARIOS.glob("*.scn")):
        for policy in session("linux-6.x").load(str(path)).expectations:
            yield pytest.param(str(path), policy, id=f"{path.stem}[{policy}]")


@pytest.mark.parametrize("path,policy", list(_cases()))
def test_scenario(path, policy):
    s = session(policy)
    r = s.run(s.load(path), invariants=True)
    assert r.passed, (r.verdict, r.budget_failures, [v.detail for v in r.violations])
