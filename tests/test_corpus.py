"""The built-in corpus: one test per (scenario, policy expectation), named after both."""

from __future__ import annotations

import pytest
from conftest import PY_POLICIES, session

from policykit.cli import scenario_paths

POLICIES = {p.stem.replace("_", "-"): p.stem for p in PY_POLICIES.glob("*.py")}


def _cases():
    for path in scenario_paths([]):
        scn = session("never_copy").load(str(path))
        for name in sorted(scn.expectations):
            stem = POLICIES.get(name.removeprefix("py-"))
            if stem is not None:
                yield pytest.param(str(path), stem, id=f"{scn.name}[{name}]")


@pytest.mark.parametrize("path,policy", list(_cases()))
def test_scenario_meets_its_expectation(path, policy):
    s = session(policy)
    r = s.run(s.load(path), invariants=True)
    details = "; ".join(f"line {v.line}: {v.cls}: {v.detail}" for v in r.violations)
    assert r.expectation_met, f"expected {r.scenario.expectations[r.policy].describe()}, got {r.verdict}: {details}"
    assert not r.budget_failures, r.budget_failures


def test_every_scenario_states_its_source_and_expectations():
    for path in scenario_paths([]):
        scn = session("never_copy").load(str(path))
        assert scn.title and scn.source and scn.tags, scn.name
        assert {"py-never-copy", "py-copy-on-wp", "py-anon-exclusive"} <= set(scn.expectations), scn.name
