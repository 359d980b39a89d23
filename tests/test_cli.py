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


def test_run_defaults_to_the_built_in_corpus_with_the_plugins_scenarios(capsys):
    assert main(["run", "linux-6.x"]) == ExitCode.OK
    out = capsys.readouterr().out
    for scn in CORPUS.glob("*.scn"):
        assert scn.stem in out
    assert "dirty-cow" in out and "thp-fork-write" in out, "plugins add their scenarios"


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
    (["run", "no_such_module_xyz", SIMPLE], ExitCode.USAGE_ERROR, "not a policy file, a policy on the policy path, or a module"),
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
    assert f"{bad}:2:7: error[PK251]: unknown process 'q'" in err
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


# -- the policy language commands -------------------------------------------------------

POLICIES = ROOT / "policies"


def test_run_accepts_built_in_names_and_pol_files(capsys):
    assert main(["run", "linux-6.x", str(CORPUS / "rdma-fork-child-exits.scn")]) == ExitCode.OK
    # the RDMA regression: a violation, and the scenario expects it of this policy
    assert main(["run", str(POLICIES / "linux-5.9-rc4.pol"), str(CORPUS / "rdma-fork-child-exits.scn"),
                 "--trace"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "wp_fault@1: copy [linux-5.9-rc4.pol:" in out and "pin-incoherent" in out


def test_check_reports_ok_and_errors(tmp_path, capsys):
    assert main(["check", str(POLICIES / "linux-5.19.pol"), "linux-5.9"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "linux-5.19.pol: ok, policy linux-5.19 (extends linux-5.18" in out
    bad = tmp_path / "bad.pol"
    bad.write_text("policy bad\nextends linux-5.9\non wp_fault {\n    page.refcnt == 1 -> reuse\n}\n")
    assert main(["check", str(bad)]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    assert f"{bad}:4:5: error[PK214]: page has no attribute 'refcnt'" in captured.err
    assert f"{bad}:4:5: error[PK315]: the rules of wp_fault have no fall-through" in captured.err
    assert "2 errors, 0 warnings" in captured.out


def test_check_strict_fails_on_warnings(tmp_path, capsys):
    warn = tmp_path / "warn.pol"
    warn.write_text("extends linux-5.9\nconst SPARE = 1\n")
    assert main(["check", str(warn)]) == ExitCode.OK
    assert main(["check", "--strict", str(warn)]) == ExitCode.FAILED
    assert "warning[PK404]: constant 'SPARE' is never used" in capsys.readouterr().err


def test_compile_prints_python(capsys):
    assert main(["compile", "linux-5.9"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("# policy linux-5.9: compiled by policykit")
    assert "def policykit_fork_pte(ctx):" in out and "v_page.refcount >= 1024" in out
    compile(out, "generated", "exec")


def test_fmt_check_and_rewrite(tmp_path, capsys):
    f = tmp_path / "x.pol"
    f.write_text("extends linux-5.9\npred   p(page)=page.anon\n")
    assert main(["fmt", "--check", str(f)]) == ExitCode.FAILED
    assert f"would reformat {f}" in capsys.readouterr().out
    assert main(["fmt", str(f)]) == ExitCode.OK
    assert f.read_text() == "extends linux-5.9\n\npred p(page) = page.anon\n"
    assert main(["fmt", "--check", str(f)]) == ExitCode.OK
    assert main(["fmt", "--check", *map(str, POLICIES.glob("*.pol"))]) == ExitCode.OK


def test_fmt_syntax_error_exits_2(tmp_path, capsys):
    f = tmp_path / "x.pol"
    f.write_text("on wp_fault { otherwise copy }\n")
    assert main(["fmt", str(f)]) == ExitCode.USAGE_ERROR
    assert "x.pol:1:25: error[PK101]: unexpected 'copy'" in capsys.readouterr().err


def test_policies_lists_the_built_ins(capsys):
    assert main(["policies"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "linux-5.9-rc4" in out and "the RDMA regression" in out
    assert main(["policies", "--format", "json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "policykit.policies/1"
    by_name = {p["name"]: p for p in doc["policies"]}
    assert by_name["linux-5.19"]["extends"] == "linux-5.18"
    assert "[unrealizable]" in by_name["ideal"]["summary"]


def test_bad_policy_on_run_is_exit_2_with_caret(tmp_path, capsys):
    f = tmp_path / "bad.pol"
    f.write_text("extends linux-5.9\non gup {\n    foll.writ -> write_fault\n    otherwise -> grab\n}\n")
    assert main(["run", str(f), SIMPLE]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert f"{f}:3:5: error[PK214]: foll has no attribute 'writ'" in err and "did you mean 'write'" in err


@pytest.mark.parametrize("command", ["check", "compile", "fmt", "policies", "plugins", "hooks"])
def test_new_commands_have_help(command):
    proc = subprocess.run([sys.executable, "-m", "policykit", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_shell_completion_offers_policy_names(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("argcomplete")
    out = tmp_path / "completions"
    line = "policykit compare linux-5.9 linux-5.1"
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE": "1",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    done = subprocess.run([sys.executable, "-m", "policykit"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(out.read_text().split("\x0b")) == ["linux-5.18", "linux-5.19"]


def test_version_is_printed_without_loading_plugins(capsys, monkeypatch):
    import policykit._manager as manager

    def refuse(*a, **k):
        raise AssertionError("plugins were loaded")

    monkeypatch.setattr(manager, "get_plugin_manager", refuse)
    from policykit import __version__
    assert main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out == f"policykit {__version__}\n"


_CONSOLE = """
import atexit, sys
atexit.register(lambda: print("atexit ran", file=sys.stderr))
sys.argv = ["policykit", *sys.argv[1:]]
from policykit.cli import console
console()
"""


@pytest.mark.parametrize(("args", "code"), [(["--version"], ExitCode.OK),
                                             (["run", policy("never_copy"), SIMPLE], ExitCode.OK),
                                             (["run", "no-such-policy", SIMPLE], ExitCode.USAGE_ERROR)])
def test_the_command_exits_with_mains_status_its_output_written_and_atexit_run(tmp_path, args, code):
    # the command leaves without tearing the interpreter down: nothing of it may be lost
    out = tmp_path / "out.txt"
    with out.open("w") as f:            # a file, block-buffered: flushed before the exit
        proc = subprocess.run([sys.executable, "-c", _CONSOLE, *args], stdout=f, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert proc.returncode == code
    assert proc.stderr.endswith("atexit ran\n")
    text = out.read_text()
    if code == ExitCode.OK:
        assert text.endswith("\n") and ("policykit " in text or "1 passed, 0 failed" in text)
    else:
        assert "error" in proc.stderr and text == ""


def test_the_command_piped_into_a_reader_that_stops_exits_quietly():
    # more than a pipe holds (64 KiB): the command's writes meet the closed pipe
    proc = subprocess.run(f"{sys.executable} -m policykit corpus --format json | head -c 1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert proc.stdout == "{" and proc.stderr == "" and proc.returncode == ExitCode.OK


def test_a_command_alone_parses_as_with_every_command_built():
    """A run builds its own command's parser only: the same options, help and errors."""
    from policykit._manager import get_plugin_manager
    from policykit.cli import COMMANDS, build_parser

    pm = get_plugin_manager()
    full = build_parser(pm)
    subs = next(a for a in full._actions if a.dest == "command").choices
    assert list(subs) == list(COMMANDS)
    for name in COMMANDS:
        alone = build_parser(pm, only=name)
        mine = next(a for a in alone._actions if a.dest == "command").choices
        assert list(mine) == [name]
        assert mine[name].format_help() == subs[name].format_help()
        assert sorted(a.dest for a in mine[name]._actions) == sorted(a.dest for a in subs[name]._actions)


def test_a_mistyped_command_lists_every_command(capsys):
    assert main(["chek", "x.pol"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "invalid choice: 'chek'" in err and "'check'" in err and "'compare'" in err
