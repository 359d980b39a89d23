"""Fuzzed policies and scenarios (hypothesis, a few hundred cases; bench/fuzz.py runs for
minutes): no traceback, exit codes 0/1/2 only, fmt round-trips and is idempotent, and
whatever checks runs without an error verdict."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from policykit import fuzz

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def workdir():
    with fuzz.workdir() as d:
        yield Path(d)


@SETTINGS
@given(text=fuzz.policy_texts())
def test_fuzzed_policies_check_cleanly_and_what_checks_runs(text, workdir):
    fuzz.check_policy_text(text, workdir)


@SETTINGS
@given(text=fuzz.scenario_texts())
def test_fuzzed_scenarios_check_cleanly_and_what_checks_runs(text, workdir):
    fuzz.check_scenario_text(text, workdir)


@pytest.mark.parametrize("seed", range(40))
def test_random_valid_runs_get_no_error_under_any_builtin_policy(seed):
    fuzz.check_random_run(fuzz.random_scenario(random.Random(seed), length=14))


def test_the_properties_catch_a_broken_fmt(monkeypatch, workdir):
    """The fuzz test can fail: an fmt that drops a rule is caught."""
    from policykit.dsl import fmt
    monkeypatch.setattr(fuzz, "format_policy", lambda t, f: fmt.format_policy(t, f).replace("otherwise -> copy", ""))
    with pytest.raises(fuzz.Broken, match="fmt changed"):
        fuzz.check_policy_text("policy x\nextends linux-6.x\non wp_fault {\n    otherwise -> copy\n}\n", workdir)


def test_the_properties_catch_an_error_verdict(monkeypatch, workdir):
    """... and so is a policy that checks but whose runs end in error (here: every
    decision breaks as a plugin's would)."""
    import policykit.engine.mm as mm
    from policykit.errors import PluginError

    def decide(self, point, *args, **kwargs):
        raise PluginError("broken on purpose", hook=f"policykit_{point}")
    monkeypatch.setattr(mm.Engine, "decide", decide)
    with pytest.raises(fuzz.Broken, match="error verdict"):
        fuzz.check_policy_text("policy x\nextends linux-6.x\n", workdir)


def test_a_policy_that_makes_gup_ask_for_faults_for_ever_runs_without_error(workdir):
    """Found by bench/fuzz.py: an unshare fault that reuses without marking the page
    exclusive makes linux-6.x's gup ask again for ever; GUP fails (gup-failed), the run
    ends normally."""
    looping = "policy x\nextends linux-6.x\non unshare_fault {\n    otherwise -> reuse\n}\n"
    assert fuzz.check_policy_text(looping, workdir) == "run"
