"""The policy search path and the project's [tool.policykit] settings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from policykit import config
from policykit.cli import ExitCode, main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user directory: policies in pol/ (my-linus extends linux-6.x), scenarios in scn/."""
    (tmp_path / "pol").mkdir()
    (tmp_path / "scn").mkdir()
    (tmp_path / "pol" / "my-linus.pol").write_text(
        'policy my-linus\nsummary "6.x, renamed"\nextends linux-6.x\n', encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.policykit]\npolicy-path = ["pol"]\ncorpus = ["scn"]\n', encoding="utf-8")
    (tmp_path / "scn" / "cow.scn").write_text(textwrap.dedent("""\
        scenario cow-basic
        spawn -> p
        mmap p 1 private -> buf
        write p buf
        fork p -> c
        write c buf
        read p buf
        expect my-linus: ok
        expect linux-6.y: ok
        """), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "scn")         # found upward, as pytest and ruff do
    monkeypatch.delenv(config.PATH_ENV, raising=False)
    config.use()
    yield tmp_path
    config.use()


def test_the_project_is_found_upward_and_names_its_policies(project):
    p = config.project()
    assert p.file == project / "pyproject.toml"
    assert p.policy_path == (project / "pol",) and p.corpus == (project / "scn",)
    assert config.find_policy("my-linus") == project / "pol" / "my-linus.pol"
    assert config.find_policy("linux-6.x").name == "linux-6.x.pol"
    assert config.find_policy("py-never-copy").name == "never_copy.py"     # POLICY_NAME, read statically
    assert "my-linus" in config.policy_names()


def test_run_uses_the_project_corpus_and_warns_of_an_unknown_expect_policy(project, capsys):
    assert main(["run", "my-linus"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert "cow-basic" in captured.out and "1 passed" in captured.out
    assert "cow.scn:9:8: warning[PK451]: 'expect linux-6.y' names no known policy" in captured.err
    assert "did you mean 'linux-6.x'?" in captured.err


def test_policy_path_option_and_environment(project, tmp_path_factory, monkeypatch, capsys):
    other = tmp_path_factory.mktemp("other")
    (other / "mine.pol").write_text('policy mine\nsummary "x"\nextends linux-5.9\n', encoding="utf-8")
    assert main(["check", "mine"]) == ExitCode.USAGE_ERROR
    assert main(["check", "mine", "--policy-path", str(other)]) == ExitCode.OK
    monkeypatch.setenv(config.PATH_ENV, str(other))
    assert main(["check", "mine"]) == ExitCode.OK
    capsys.readouterr()
    assert main(["policies", "--format", "json"]) == ExitCode.OK
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["policies"]}
    assert rows["mine"]["extends"] == "linux-5.9" and rows["mine"]["file"].endswith("mine.pol")


def test_policies_lists_where_each_comes_from(project, capsys):
    assert main(["policies", "--format", "json"]) == ExitCode.OK
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["policies"]}
    assert rows["my-linus"]["file"].endswith("pol/my-linus.pol") and rows["my-linus"]["extends"] == "linux-6.x"
    assert rows["linux-6.x"]["file"] == "built-in" and rows["py-copy-on-wp"]["era"] == "python"


def test_one_name_for_two_policies_is_an_error_naming_both(project, capsys):
    (project / "pol" / "linux-5.9.pol").write_text('policy linux-5.9\nsummary "mine"\nextends linux-5.8\n',
                                                   encoding="utf-8")
    config.use()
    assert main(["run", "linux-5.9"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "two policies are named 'linux-5.9'" in err
    assert "pol/linux-5.9.pol" in err and "policies/linux-5.9.pol" in err


def test_a_bad_project_table_is_a_clear_error(project, capsys):
    (project / "pyproject.toml").write_text('[tool.policykit]\npolicy_path = ["pol"]\n', encoding="utf-8")
    config.use()
    assert main(["policies"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "unknown key 'policy_path' in [tool.policykit]" in err and "did you mean 'policy-path'?" in err
    (project / "pyproject.toml").write_text('[tool.policykit]\ncorpus = "scn"\n', encoding="utf-8")
    config.use()
    assert main(["policies"]) == ExitCode.USAGE_ERROR
    assert "corpus must be a list of strings" in capsys.readouterr().err
