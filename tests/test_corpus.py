"""The built-in corpus (the core's scenarios and those the plugins add): one test per
(scenario, policy expectation), named after both."""

from __future__ import annotations

import pytest
from conftest import PY_POLICIES, ROOT

from policykit import dsl
from policykit.corpus import corpus_dirs, scenario_files
from policykit.testing import assert_passes, session

PY = {"py-" + p.stem.replace("_", "-"): str(p) for p in PY_POLICIES.glob("*.py")}
BUILTIN = set(dsl.builtin_names())
CORE = ROOT / "policykit" / "corpus"
PATHS = scenario_files([], session("linux-6.x").pm)
VARIANTS = session("linux-6.x").registry.variants


SCENARIOS = [(path, scn) for path in PATHS for scn in session("linux-6.x").load_all(str(path))]


def _cases():
    for path, scn in SCENARIOS:
        for name in sorted(scn.expectations):
            yield pytest.param(str(path), PY.get(name, name), scn.variant or None, id=f"{scn.name}[{name}]")


@pytest.mark.parametrize("path,policy,variant", list(_cases()))
def test_scenario_meets_its_expectation(path, policy, variant):
    assert_passes(path, policy, variant)


def test_the_corpus_gathers_the_plugins_scenarios():
    dirs = corpus_dirs(session("linux-6.x").pm)
    assert dirs[0] == CORE
    assert {d.parent.name for d in dirs[1:]} >= {"policykit_swap", "policykit_ksm", "policykit_lru",
                                                  "policykit_thp", "policykit_hugetlb", "policykit_file"}


def test_every_scenario_states_its_source_and_every_policys_expectation():
    names = set()
    for path, scn in SCENARIOS:
        assert scn.name not in names, f"two scenarios named {scn.name}"
        names.add(scn.name)
        assert scn.title and scn.source and scn.tags, scn.name
        core = not scn.variant or VARIANTS[scn.variant.partition(":")[0]].provider == "policykit"
        wanted = BUILTIN | (set(PY) if path.parent == CORE and core else set())
        assert wanted <= set(scn.expectations), (scn.name, sorted(wanted - set(scn.expectations)))
        assert set(scn.expectations) <= BUILTIN | set(PY), "expectations only for policies that exist"


def test_ideal_is_correct_and_no_realizable_policy_copies_less():
    from policykit._manager import load_policy
    from policykit.run import Session
    sessions = {name: Session(load_policy(name)) for name in BUILTIN}
    realizable = [n for n, s in sessions.items() if s.policy.unrealizable is None]
    wrong, beaten, fork_copies = [], [], {n: 0 for n in BUILTIN}
    for _, scn in SCENARIOS:
        results = {n: s.run(scn) for n, s in sessions.items()}
        for n, r in results.items():
            fork_copies[n] += r.metrics["fork_copies"]
        ideal = results["ideal"]
        if ideal.violations:
            wrong.append(scn.name)
            continue
        beaten += [(scn.name, n) for n in realizable
                   if not results[n].violations and results[n].copies < ideal.copies]
    assert wrong == []
    assert beaten == []
    assert max(fork_copies, key=fork_copies.get) == "copy-at-fork", "correct, and the costliest at fork"
