"""`policykit check` for CI: JSON, SARIF 2.1.0, GitHub annotations, stable codes, --ignore,
and scenario files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policykit import codes
from policykit.cli import ExitCode, main

ROOT = Path(__file__).resolve().parent.parent
BAD = """\
policy bad
summary "a typo and a spare constant"
extends linux-5.9
const SPARE = 1
on wp_fault {
    page.refcnt == 1 -> reuse
    otherwise -> copy
}
"""


@pytest.fixture
def bad(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad.pol").write_text(BAD, encoding="utf-8")
    return Path("bad.pol")


def test_sarif_has_the_structure_of_a_sarif_2_1_0_log(bad, capsys):
    assert main(["check", str(bad), "--format", "sarif"]) == ExitCode.USAGE_ERROR
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "policykit" and isinstance(driver["version"], str)
    rules = driver["rules"]
    assert [r["id"] for r in rules] == sorted(codes.CODES)
    for r in rules:
        assert set(r) >= {"id", "shortDescription"} and r["shortDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning")
    levels = {}
    for result in run["results"]:
        assert result["level"] in ("error", "warning", "note", "none")
        assert result["message"]["text"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        (loc,) = result["locations"]
        region = loc["physicalLocation"]["region"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "bad.pol"
        assert all(isinstance(region[k], int) and region[k] >= 1 for k in ("startLine", "startColumn", "endColumn"))
        levels[result["ruleId"]] = (result["level"], region["startLine"], region["startColumn"])
    assert levels == {"PK214": ("error", 6, 5), "PK404": ("warning", 4, 7)}


def test_github_prints_workflow_commands(bad, capsys):
    assert main(["check", str(bad), "--format", "github"]) == ExitCode.USAGE_ERROR
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("::error file=bad.pol,line=6,col=5,endColumn=16,title=policykit PK214::"
                               "page has no attribute 'refcnt'")
    assert lines[1].startswith("::warning file=bad.pol,line=4,col=7,")
    assert all(re.fullmatch(r"::(error|warning) [^:]*::[^\n]*", ln) for ln in lines)


def test_json_lists_files_and_findings(bad, capsys):
    assert main(["check", str(bad), "linux-6.x", "--format", "json"]) == ExitCode.USAGE_ERROR
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "policykit.check/1"
    assert [(f["file"], f["ok"]) for f in doc["files"]] == [("bad.pol", False), ("linux-6.x", True)]
    assert {(f["code"], f["severity"], f["line"]) for f in doc["findings"]} == {("PK214", "error", 6),
                                                                               ("PK404", "warning", 4)}


def test_ignore_hides_a_warning_and_refuses_an_error_code(bad, capsys):
    fixed = bad.with_name("warn.pol")
    fixed.write_text(BAD.replace("refcnt", "refcount"), encoding="utf-8")
    assert main(["check", str(fixed), "--strict"]) == ExitCode.FAILED
    assert "warning[PK404]" in capsys.readouterr().err
    assert main(["check", str(fixed), "--strict", "--ignore", "PK404"]) == ExitCode.OK
    assert "PK404" not in capsys.readouterr().err
    assert main(["check", str(fixed), "--ignore", "PK214"]) == ExitCode.USAGE_ERROR
    assert "only warnings (PK4xx) can be ignored" in capsys.readouterr().err
    assert main(["check", str(fixed), "--ignore", "PK4O4"]) == ExitCode.USAGE_ERROR
    assert "did you mean 'PK404'?" in capsys.readouterr().err


def test_check_of_a_scenario_file_checks_it_as_a_scenario(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("ok.scn").write_text("scenario s\nspawn -> p\nmmap p 1 private -> buf\nwrite p buf\n"
                              "expect linux-6.y: ok\n", encoding="utf-8")
    Path("bad.scn").write_text("scenario s\nspawn -> p\nwrite p nowhere\n", encoding="utf-8")
    assert main(["check", "ok.scn"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert "ok.scn: ok, scenario s, 1 warning" in captured.out
    assert "ok.scn:5:8: warning[PK451]" in captured.err and "did you mean 'linux-6.x'?" in captured.err
    assert main(["check", "bad.scn", "--format", "github"]) == ExitCode.USAGE_ERROR
    assert capsys.readouterr().out.startswith("::error file=bad.scn,line=3,col=9,")


def test_every_code_is_used_and_documented():
    source = "\n".join(p.read_text() for p in (ROOT / "policykit").rglob("*.py") if p.name != "codes.py")
    unused = [c for c in codes.CODES if f'"{c}"' not in source]
    assert not unused, f"codes no checker gives: {unused}"
    doc = (ROOT / "docs" / "codes.md").read_text()
    assert codes.markdown() in doc, "docs/codes.md is out of date: paste policykit.codes.markdown() into it"
