"""policykit mutate: mutants of a policy, killed by the corpus or not; survivors searched
by diverge, which writes the scenario the corpus lacks or finds the mutant equivalent."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from policykit import dsl
from policykit._manager import plugin_registry
from policykit.cli import main
from policykit.mutate import OPERATORS, mutants

POLICY = """policy mut-test
extends copy-at-fork

# page.zero never reaches clear_refs_pte, and both rules say the same: an equivalent mutant
on clear_refs_pte {
    page.zero -> wrprotect
    otherwise -> wrprotect
}
"""
FORK_ONLY = "scenario fork-only\nspawn -> p\nmmap p 1 private -> buf\nwrite p buf\nfork p -> c\nwrite c buf\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mut-test.pol").write_text(POLICY)
    (tmp_path / "fork.scn").write_text(FORK_ONLY)
    return tmp_path


def test_every_operator_makes_mutants_of_the_resolved_policy():
    checked, _ = dsl.check_file("linux-6.x", plugin_registry(None))
    ms = mutants(checked, plugin_registry(None))
    ops = Counter(m.operator for m in ms)
    assert set(ops) == set(OPERATORS)
    # a parent's rule is mutated as this policy's, and the bias gets its three neighbours
    assert any(m.rule.startswith("linux-5.9.pol") for m in ms)
    assert {"1024 -> 1023", "1024 -> 1025", "1024 -> 512"} <= {m.description.split(": ")[-1] for m in ms}
    assert len({m.index for m in ms}) == len(ms)


def test_an_unexercised_rule_survives_and_diverge_writes_the_scenario_that_kills_it(files, capsys):
    out = files / "gaps"
    code = main(["mutate", str(files / "mut-test.pol"), "--corpus", str(files / "fork.scn"), "--operators",
                 "drop-rule", "--diverge-depth", "3", "--out", str(out), "--format", "json", "-j", "1"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "policykit.mutate/1" and doc["counts"]["survived"] == 5
    by_rule = {m["rule"]: m for m in doc["mutants"]}
    gup = by_rule["copy-at-fork.pol:44"]
    assert gup["diverge"] == "gap" and gup["file"]
    assert by_rule["mut-test.pol:6"]["diverge"] == "equivalent", "the same action either way"
    # the written scenario passes under the policy, and with it the corpus kills the mutant
    assert main(["run", str(files / "mut-test.pol"), gup["file"]]) == 0
    capsys.readouterr()
    assert main(["mutate", str(files / "mut-test.pol"), "--corpus", str(files / "fork.scn"), "--corpus", str(out),
                 "--operators", "drop-rule", "--format", "json", "-j", "1"]) == 0
    again = {m["rule"]: m for m in json.loads(capsys.readouterr().out)["mutants"]}
    assert again["copy-at-fork.pol:44"]["status"] in ("killed", "cost")
    assert again["mut-test.pol:6"]["status"] == "survived"


def test_mutants_are_killed_by_verdict_and_by_cost(files, capsys):
    assert main(["mutate", "linux-5.9", "--tag", "rdma", "--operators", "negate,action", "--format", "json",
                 "--fail-under", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    statuses = Counter(m["status"] for m in doc["mutants"])
    assert statuses["killed"] and doc["score"] == pytest.approx(
        (statuses["killed"] + statuses["cost"]) / (statuses["killed"] + statuses["cost"] + statuses["survived"]))
    killed = next(m for m in doc["mutants"] if m["status"] == "killed")
    assert killed["killed_by"] and "->" in killed["difference"]
    assert {p["point"] for p in doc["points"]} >= {"fork_pte", "wp_fault"}
    rules = {r["rule"]: r for r in doc["rules"]}
    assert sum(sum(r["counts"].values()) for r in rules.values()) == len(doc["mutants"])
    for mutant in doc["mutants"]:
        assert mutant["rule"] in rules


def test_fail_under_and_bad_operators(files, capsys):
    assert main(["mutate", str(files / "mut-test.pol"), "--corpus", str(files / "fork.scn"),
                 "--operators", "drop-rule", "--fail-under", "50"]) == 1
    assert main(["mutate", "linux-6.x", "--operators", "negat"]) == 2
    assert "did you mean 'negate'" in capsys.readouterr().err


def test_mutants_riding_along_the_original_are_judged_as_if_each_ran_alone(monkeypatch):
    from policykit.corpus import scenario_files
    from policykit.engine import riders
    from policykit.mutate import mutate
    from policykit.testing import session

    s = session("linux-6.x")
    checked, _ = dsl.check_file("linux-6.x", plugin_registry(None))
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))]
    ridden = mutate(checked, s, scenarios, sample=40, jobs=1)
    monkeypatch.setattr(riders, "why_not", lambda *args: "told not to")
    alone = mutate(checked, s, scenarios, sample=40, jobs=1)
    assert [(r.mutant.index, r.status, r.by, r.detail) for r in ridden.results] == \
        [(r.mutant.index, r.status, r.by, r.detail) for r in alone.results]
    assert {"killed", "survived"} <= {r.status for r in ridden.results}
    # a survivor runs alone on no scenario, where alone it ran on every one
    survivor = next(n for n, r in enumerate(alone.results) if r.status == "survived")
    assert alone.results[survivor].runs == len(scenarios)
    assert ridden.results[survivor].runs < len(scenarios) // 10
    assert sum(r.runs for r in ridden.results) * 5 < sum(r.runs for r in alone.results)


def test_hooks_compiled_alike_are_known_to_answer_alike():
    from policykit._manager import policy_from_checked
    from policykit.dsl import check_policy, resolver
    from policykit.engine.riders import same_code
    from policykit.mutate import mutant_file

    checked, _ = dsl.check_file("linux-6.x", plugin_registry(None))
    one, two = (policy_from_checked(checked).plugin for _ in range(2))
    hooks = [spec.hook_name for spec in plugin_registry(None).decision_points.values() if hasattr(one, spec.hook_name)]
    assert len(hooks) > 10 and all(same_code(getattr(one, n), getattr(two, n)) for n in hooks)
    assert getattr(one, hooks[0]) is not getattr(two, hooks[0])
    # a mutant of a predicate only wp_fault and unshare_fault call differs there alone
    m = next(m for m in mutants(checked, plugin_registry(None))
             if m.rule == "linux-6.15.pol:21" and m.operator == "andor")
    mutated, _ = check_policy(mutant_file(checked, m), plugin_registry(None), resolver())
    three = policy_from_checked(mutated).plugin
    assert {n for n in hooks if not same_code(getattr(one, n), getattr(three, n))} == \
        {"policykit_wp_fault", "policykit_unshare_fault"}
