"""`policykit run`: exit codes, output formats, and clean errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PY_POLICIES, ROOT

from policykit.cli import ExitCode, main

DATA = ROOT / "tests" / "data"
SIMPLE = str(DATA / "simple.scn")
CORPUS = ROOT / "policykit" / "corpus"


def policy(name: str) -> str:
    return str(PY_POLICIES / f"{name}.py")


def test_run_passes_when_expectations_hold(capsys):
    assert main(["run", policy("never_copy"), SIMPLE]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "leak" in out and "1 passed, 0 failed" in out


def test_run_fails_on_a_violation_without_expectation(capsys):
    assert main(["run", policy("copy_on_wp"), str(CORPUS / "rdma-fork-child-exits.scn")]) == ExitCode.OK
    text = (CORPUS / "cow-basic.scn").read_text().replace("expect py-never-copy: leak\n", "")
    path = DATA.parent / "tmp-no-expect.scn"
    try:
        path.write_text(text)
        assert main(["run", policy("never_copy"), str(path)]) == ExitCode.FAILED
    finally:
        path.unlink()
    assert "leak" in capsys.readouterr().out


def test_run_fails_on_an_unmet_expectation(tmp_path, capsys):
    scn = tmp_path / "x.scn"
    scn.write_text((DATA / "simple.scn").read_text().replace("py-never-copy: leak", "py-copy-on-wp: leak"))
    assert main(["run", policy("copy_on_wp"), str(scn)]) == ExitCode.FAILED
    assert "!!! Unexpected: simple under py-copy-on-wp: expected leak, got ok" in capsys.readouterr().out


def test_run_fails_over_budget(tmp_path, capsys):
    scn = tmp_path / "x.scn"
    scn.write_text((DATA / "simple.scn").read_text() + "budget py-copy-on-wp: wp_copies == 0\n")
    assert main(["run", policy("copy_on_wp"), str(scn)]) == ExitCode.FAILED
    assert "!!! Over budget: simple under py-copy-on-wp: wp_copies == 0 (was 1)" in capsys.readouterr().out


def test_run_defaults_to_the_built_in_corpus(capsys):
    assert main(["run", policy("anon_exclusive")]) == ExitCode.OK
    out = capsys.readouterr().out
    for scn in CORPUS.glob("*.scn"):
        assert scn.stem in out


def test_json_output_is_versioned_and_complete(capsys):
    assert main(["run", policy("never_copy"), SIMPLE, "--format", "json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "policykit.run/1"
    [r] = doc["results"]
    assert r["verdict"] == ["leak"] and r["expected"] == ["leak"] and r["expectation_met"] is True
    assert r["violations"][0]["class"] == "leak" and r["violations"][0]["line"] == 7
    assert r["metrics"]["wp_copies"] == 0 and r["trace"] is None


def test_trace_prints_decisions_and_counts(capsys):
    assert main(["run", policy("copy_on_wp"), SIMPLE, "--trace"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "fork_pte@1: share" in out and "wp_fault@1: copy" in out
    assert "1:2/2" in out, "refcount/mapcount after fork"


def test_trace_in_json(capsys):
    main(["run", policy("copy_on_wp"), SIMPLE, "--trace", "--format", "json"])
    trace = json.loads(capsys.readouterr().out)["results"][0]["trace"]
    fork = trace[3]
    assert fork["text"] == "fork p -> c"
    assert fork["decisions"] == [{"point": "fork_pte", "pfn": 1, "action": "share", "rule": None, "warn": None}]
    assert fork["pages"] == [{"pfn": 1, "refcount": 2, "mapcount": 2}]


def test_markdown_output(capsys):
    main(["run", policy("never_copy"), SIMPLE, "--format", "markdown"])
    assert "| scenario" in capsys.readouterr().out


@pytest.mark.parametrize("args,code,message", [
    (["run", str(DATA / "bad_hook_name.py"), SIMPLE], ExitCode.INTERNAL_ERROR,
     "unknown hook 'policykit_wp_faul'; did you mean 'policykit_wp_fault'?"),
    (["run", str(DATA / "bad_signature.py"), SIMPLE], ExitCode.INTERNAL_ERROR, "vmf"),
    (["run", str(DATA / "incomplete.py"), SIMPLE], ExitCode.USAGE_ERROR,
     "decides nothing at: fork_pte, unshare_fault, gup"),
    (["run", str(DATA / "syntax_error.py"), SIMPLE], ExitCode.USAGE_ERROR, "syntax_error.py:1:"),
    (["run", "no/such/policy.py", SIMPLE], ExitCode.USAGE_ERROR, "no such policy file"),
    (["run", "no_such_module_xyz", SIMPLE], ExitCode.USAGE_ERROR, "not a policy file, built-in policy, or module"),
    (["run", policy("never_copy"), "missing.scn"], ExitCode.USAGE_ERROR, "cannot read scenario"),
    (["run", policy("never_copy"), str(DATA / "simple.scn"), "--format", "xml"], ExitCode.USAGE_ERROR,
     "invalid choice: 'xml'"),
    ([], ExitCode.USAGE_ERROR, "usage:"),
])
def test_bad_input_gets_a_message_and_an_exit_code(args, code, message, capsys):
    assert main(args) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_plugin_is_named(capsys):
    main(["run", str(DATA / "bad_hook_name.py"), SIMPLE])
    assert "plugin 'policy:bad-hook-name'" in capsys.readouterr().err


def test_scenario_error_renders_with_caret(tmp_path, capsys):
    bad = tmp_path / "bad.scn"
    bad.write_text("spawn -> p\nwrite q buf\n")
    assert main(["run", policy("never_copy"), str(bad)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert f"{bad}:2:7: error: unknown process 'q'" in err
    assert "^" in err and "hint:" in err


def test_every_command_has_help():
    for args in (["--help"], ["run", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "policykit", *args], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage:" in proc.stdout


def test_no_traceback_from_the_real_entry_point():
    proc = subprocess.run([sys.executable, "-m", "policykit", "run", str(DATA / "incomplete.py"), SIMPLE],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
