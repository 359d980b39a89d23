"""policykit show: a policy with its extends chain resolved is one policy file that checks
and runs exactly as the chain does."""

from __future__ import annotations

import pytest

from policykit import Session, load_policy
from policykit.cli import main
from policykit.dsl import builtin_names
from policykit.parallel import run_pairs
from policykit.scenario import load_scenarios
from policykit.corpus import scenario_files


@pytest.fixture(scope="module")
def corpus():
    s = Session(load_policy("linux-6.x"))
    return [scn for path in scenario_files([], s.pm) for scn in load_scenarios(str(path), s.registry)]


@pytest.mark.parametrize("name", builtin_names())
def test_the_resolved_policy_checks_and_runs_as_the_chain(name, corpus, tmp_path, capsys):
    assert main(["show", name]) == 0
    text = capsys.readouterr().out
    assert "extends" not in text.split("\n", 1)[1], "nothing left to extend"
    flat = tmp_path / f"{name}-flat.pol"
    flat.write_text(text)
    assert main(["check", "--strict", str(flat)]) == 0, capsys.readouterr()
    original, resolved = Session(load_policy(name)), Session(load_policy(str(flat)))
    assert resolved.policy.name == name
    a, b = run_pairs([original, resolved], corpus)
    for x, y in zip(a, b):
        assert (x.scenario.name, x.verdict, x.metrics) == (y.scenario.name, y.verdict, y.metrics)


def test_show_refuses_a_policy_that_does_not_check(tmp_path, capsys):
    bad = tmp_path / "bad.pol"
    bad.write_text("policy bad\nextends linux-6.x\non wp_fault {\n    page.refcont > 1 -> copy\n}\n")
    assert main(["show", str(bad)]) == 2
    assert "did you mean 'refcount'" in capsys.readouterr().err
