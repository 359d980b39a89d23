"""One way to select scenarios on every command that runs them, and command lines that
make no sense refused."""

from __future__ import annotations

import json

from policykit.cli import ExitCode, main

COW = "policykit/corpus/cow-basic.scn"


def _names(capsys):
    return [r["scenario"] for r in json.loads(capsys.readouterr().out)["results"]]


def test_run_selects_by_pattern_tag_and_variant(capsys):
    assert main(["run", "linux-5.9", "-k", "cow-basic/*", "--variant", "thp", "--format", "json"]) == ExitCode.OK
    assert _names(capsys) == ["cow-basic/thp"]
    assert main(["run", "linux-5.9", "--tag", "vmsplice", "--tag", "cow.c", "--format", "json"]) == ExitCode.OK
    names = _names(capsys)
    assert names and "vmsplice-before-fork/base" in names and "bias-boundary-fork" not in names
    assert main(["run", "linux-5.9", "--tag", "vmsplice", "--format", "json"]) == ExitCode.OK
    assert "bias-boundary-fork" in _names(capsys)       # tagged vmsplice, not cow.c


def test_a_variant_no_scenario_runs_is_refused_with_a_hint(capsys):
    """A sized variant selects its runs; a typo is an input error, not a quiet run of the
    scenarios without variants."""
    assert main(["run", "linux-5.9", "-k", "cow-basic/*", "--variant", "pte-mapped-thp:512k",
                 "--format", "json"]) == ExitCode.OK
    assert _names(capsys) == ["cow-basic/pte-mapped-thp:512k"]
    for argv in (["run", "linux-5.9"], ["compare", "linux-5.9", "linux-6.x"], ["corpus"]):
        assert main([*argv, "--variant", "pte-mapped-thp:521k"]) == ExitCode.USAGE_ERROR
        assert "did you mean 'pte-mapped-thp:512k'?" in capsys.readouterr().err


def test_corpus_option_is_repeatable_and_does_not_swallow_policies(capsys):
    assert main(["compare", "--corpus", COW, "--corpus", "policykit/corpus/cow-basic-mprotect.scn",
                 "linux-5.9", "linux-6.x", "--format", "json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["policies"] == ["linux-5.9", "linux-6.x"]
    assert {r["scenario"].split("/")[0] for r in doc["scenarios"]} == {"cow-basic", "cow-basic-mprotect"}


def test_compare_refuses_one_policy_and_two_of_one_name(tmp_path, capsys):
    assert main(["compare", "linux-5.9"]) == ExitCode.USAGE_ERROR
    assert "compare needs two policies or more" in capsys.readouterr().err
    a, b = tmp_path / "a.pol", tmp_path / "b.pol"
    for f in (a, b):
        f.write_text('policy same\nsummary "x"\nextends linux-5.9\n', encoding="utf-8")
    assert main(["compare", str(a), str(b), "--corpus", COW]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "two policies are named 'same'" in err and str(a) in err and str(b) in err


def test_explain_takes_a_corpus_name_and_a_variant(capsys):
    assert main(["explain", "linux-6.x", "cow-basic", "--variant", "thp"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("cow-basic/thp under linux-6.x")


def test_run_annotates_failures_for_github(tmp_path, capsys):
    scn = tmp_path / "leak.scn"
    scn.write_text("scenario leak\nspawn -> p\nmmap p 1 private -> buf\nwrite p buf\nfork p -> c\n"
                   "write c buf\nread p buf\nexpect never-copy: ok\n", encoding="utf-8")
    assert main(["run", "never-copy", str(scn), "--format", "github"]) == ExitCode.FAILED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"::error file={scn},line=8,col=8,endColumn=9,title=policykit::"
                        "leak under never-copy: expected ok, got leak")
    assert lines[1].startswith(f"::warning file={scn},line=7,col=1,") and "leak under never-copy: p:buf[0] read" in lines[1]
