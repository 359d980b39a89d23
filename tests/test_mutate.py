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
