"""The built-in corpus: one test per (scenario, policy expectation), named after both."""

from __future__ import annotations

import functools

import pytest
from conftest import PY_POLICIES

from policykit import Session, dsl, load_policy
from policykit.cli import scenario_paths

PY = {"py-" + p.stem.replace("_", "-"): str(p) for p in PY_POLICIES.glob("*.py")}
BUILTIN = set(dsl.builtin_names())


@functools.cache
def session(name: str) -> Session:
    return Session(load_policy(PY.get(name, name)))


def _cases():
    for path in scenario_paths([]):
        scn = session("linux-6.x").load(str(path))
        for name in sorted(scn.expectations):
            yield pytest.param(str(path), name, id=f"{scn.name}[{name}]")


@pytest.mark.parametrize("path,policy", list(_cases()))
def test_scenario_meets_its_expectation(path, policy):
    s = session(policy)
    r = s.run(s.load(path), invariants=True)
    details = "; ".join(f"line {v.line}: {v.cls}: {v.detail}" for v in r.violations)
    assert r.expectation_met, f"expected {r.scenario.expectations[r.policy].describe()}, got {r.verdict}: {details}"
    assert not r.budget_failures, r.budget_failures


def test_every_scenario_states_its_source_and_expectations():
    for path in scenario_paths([]):
        scn = session("linux-6.x").load(str(path))
        assert scn.title and scn.source and scn.tags, scn.name
        assert set(PY) | BUILTIN <= set(scn.expectations), (scn.name, sorted(set(PY) | BUILTIN - set(scn.expectations)))
        assert set(scn.expectations) <= set(PY) | BUILTIN, "expectations only for policies that exist"
