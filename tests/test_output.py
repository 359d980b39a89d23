"""Quiet by default, details on demand: what `policykit run` prints at each verbosity."""

from __future__ import annotations

from policykit.cli import ExitCode, main
from policykit.report import fold


def test_a_passing_corpus_run_is_one_line_per_scenario(capsys):
    assert main(["run", "linux-5.9"]) == ExitCode.OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 150
    assert lines[-1].endswith("passed, 0 failed")
    # variants together: one row for cow-basic, with their count
    assert sum(ln.startswith("cow-basic ") for ln in lines) == 1 and "cow-basic (54)" in out
    assert "cow-basic/thp" not in out
    # expected violations are not printed when everything passes
    assert "pin-incoherent:" not in out


def test_verbose_shows_every_run_and_every_violation_folded(capsys):
    assert main(["run", "linux-5.9", "-v"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "cow-basic/thp " in out and "ro-pin-shared.scn:12:1: pin-incoherent:" in out
    assert "... and 510 more like it (other pages)" in out
    assert "(x 34)" in out          # one violation, the same in thirty-four variants


def test_quiet_prints_the_summary_only(capsys):
    assert main(["run", "linux-5.9", "-q"]) == ExitCode.OK
    out = capsys.readouterr().out.strip()
    assert "\n" not in out and out.endswith("passed, 0 failed")


def test_failures_are_shown_in_full_by_default(tmp_path, capsys):
    scn = tmp_path / "leak.scn"
    scn.write_text("scenario leak\nspawn -> p\nmmap p 1 private -> buf\nwrite p buf\nfork p -> c\n"
                   "write c buf\nread p buf\nexpect never-copy: ok\n", encoding="utf-8")
    assert main(["run", "never-copy", str(scn)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert f"{scn}:7:1: leak: p:buf[0] read saw data written outside its memory" in out
    assert "!!! Unexpected: leak under never-copy: expected ok, got leak" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_fold_counts_repeats_and_folds_the_pages_of_a_folio():
    lines = ["a.scn:3: leak: 'p'[0] saw #2", "a.scn:3: leak: 'p'[1] saw #3", "a.scn:3: leak: 'p'[2] saw #4",
             "b.scn:4: x", "b.scn:4: x", "b.scn:5: x"]
    assert fold(lines) == ["a.scn:3: leak: 'p'[0] saw #2", "    ... and 2 more like it (other pages)",
                           "b.scn:4: x  (x 2)", "b.scn:5: x"]


def test_explain_shows_a_variants_steps_folds_a_folio_and_reads_before_effects(capsys):
    assert main(["explain", "linux-6.x", "cow-basic", "--variant", "pte-mapped-thp"]) == ExitCode.OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1] == "steps of variant 'pte-mapped-thp', as run:"
    assert any(ln.split() == ["8", "mmap_thp", "parent", "512", "512", "->", "buf_thp"] for ln in lines)
    assert "... x 510 more pages, same decision" in out and len(lines) < 40
    # fork's rule clears anon_exclusive: the state it read is the state before that
    fork = [ln for ln in lines if "fork_pte" in ln]
    assert fork and all("anon_exclusive=False" not in ln for ln in fork)
    write = next(ln for ln in lines if "wp_fault" in ln)
    assert "anon_exclusive=False" in write           # as fork left it


def test_explain_json_keeps_every_decision(capsys):
    assert main(["explain", "linux-6.x", "cow-basic", "--variant", "pte-mapped-thp", "--format", "json"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert sum(d["point"] == "fork_pte" for d in doc["decisions"]) == 512
