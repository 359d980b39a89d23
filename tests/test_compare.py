"""`policykit compare`, `score`, `corpus`, `explain`: what reviews and CI rely on."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from policykit.cli import ExitCode, main

CORPUS = ROOT / "policykit" / "corpus"


def test_compare_summarizes_relates_and_lists_differences_first(capsys):
    assert main(["compare", "linux-5.9", "linux-5.19"]) == ExitCode.OK
    out = capsys.readouterr().out
    summary, rest = out.split("\n\n", 1)
    assert "linux-5.9" in summary and "linux-5.19" in summary and "excess vs ideal" in summary
    assert "linux-5.19 vs linux-5.9: stricter; correct only under linux-5.19: " in rest
    relation = rest.split("\n\n")[0]
    # the variants of one scenario go together: ro-pin-previously-shared/{base,...}
    # (a shape at every size the variant offers is written :*)
    assert ("ro-pin-previously-shared/{base,partially-mremapped-thp:*,partially-shared-thp:*,"
            "pte-mapped-thp:*,single-pte-swapped-thp:*,single-pte-thp:*,swapped,"
            "swapped-pte-mapped-thp:*,swapped-thp}") in relation
    assert "o-direct-clear-refs," in relation
    table = rest.split("\n\n")[1].splitlines()
    marks = [line[:2].strip() for line in table[2:]]
    assert marks == sorted(marks, key=lambda m: {"≠": 0, "$": 1, "": 2}[m]), "differences first"
    assert "ro-pin-previously-shared/base under linux-5.9: policykit/corpus/ro-pin-previously-shared.scn:13:1: pin-incoherent" in out


def test_compare_exit_1_on_a_regression(capsys):
    assert main(["compare", "linux-5.8", "linux-5.9-rc4"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "regressions (linux-5.9-rc4 wrong where linux-5.8 is right): " in out
    assert "rdma-fork-child-exits" in out.splitlines()[-1]


def test_compare_only_diff_tag_and_pattern(capsys):
    assert main(["compare", "linux-5.18", "linux-5.19", "--tag", "swap", "--only-diff"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "o-direct-swap-wrong-cow" in out and "cow-basic" not in out
    assert main(["compare", "linux-5.9", "linux-5.19", "-k", "rdma-*"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "rdma-fork-child-exits" in out and "cow-basic" not in out
    assert main(["compare", "linux-5.9", "linux-5.19", "--tag", "no-such-tag"]) == ExitCode.USAGE_ERROR
    assert "no scenario matches" in capsys.readouterr().err


def test_compare_json_is_versioned(capsys):
    assert main(["compare", "linux-5.9", "linux-5.19", "--format", "json", "--corpus", str(CORPUS)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "policykit.compare/1" and doc["policies"] == ["linux-5.9", "linux-5.19"]
    [rel] = doc["relations"]
    assert rel["kind"] == "stricter" and "ro-pin-shared/base" in rel["correct_only_under_b"]
    by_name = {s["scenario"]: s for s in doc["scenarios"]}
    row = by_name["ro-pin-previously-shared/base"]
    assert row["verdicts_differ"] and row["results"][0]["first_violation"]["class"] == "pin-incoherent"
    assert row["ideal_copies"] == 0 and row["variant"] == "base"
    under_59 = row["results"][0]
    # the 8th step run (the variant's two lines stand for mmap_variant): dma_read
    assert under_59["first_violation"]["step"] == 7 and under_59["excess_copies"] is None    # wrong: no excess
    assert under_59["copies_by"] == {"fork": 0, "wp": 1, "unshare": 0} and under_59["faults"]["wp"] == 1
    under_519 = row["results"][1]
    assert under_519["excess_copies"] == under_519["copies"] - row["ideal_copies"]
    s59 = doc["summaries"][0]
    assert s59["classes"]["pin-incoherent"] >= 3 and s59["copies"]["wp"] > 0 and s59["never_fired"]


def test_compare_markdown_pastes_into_a_review(capsys):
    assert main(["compare", "linux-5.9", "linux-5.19", "--format", "markdown", "--only-diff"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| policy") and "\n- linux-5.19 vs linux-5.9: stricter" in out


def test_ideal_is_correct_and_fewest_copies_where_others_are_correct(capsys):
    main(["compare", "linux-5.19", "copy-at-fork", "never-copy", "ideal", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    summaries = {s["policy"]: s for s in doc["summaries"]}
    assert summaries["ideal"]["unrealizable"] and summaries["ideal"]["excess_copies"] == 0
    assert summaries["never-copy"]["classes"].get("leak", 0) > 0
    assert summaries["copy-at-fork"]["copies"]["fork"] > summaries["linux-5.19"]["copies"]["fork"]


def test_score_checks_expectations(capsys):
    assert main(["score", "linux-6.x"]) == ExitCode.OK
    assert main(["score", "policies/python/never_copy.py"]) == ExitCode.FAILED
    assert "!!! dirty-cow: expected ok, got" not in capsys.readouterr().err


def test_corpus_lists_scenarios(capsys):
    assert main(["corpus", "--tag", "cow.c", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = {s["scenario"] for s in doc["scenarios"]}
    assert {"vmsplice-child-unmap/base", "thp-collapse-after-fork", "non-anon-cow/file",
            "non-anon-ro-pin-fast/zeropage"} <= names
    assert all("cow.c" in s["tags"] for s in doc["scenarios"])
    assert doc["skipped"] == []


def test_corpus_runs_each_cow_c_anon_test_on_every_variant(capsys):
    assert main(["corpus", "-k", "cow-basic/*", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # each PTE-mapped shape at every mTHP size cow.c runs (16 KiB to 1 MiB) and the PMD
    # size (the bare name), and the swapped-out shapes alike (and the PMD-mapped THP)
    sizes = ("16k", "32k", "64k", "128k", "256k", "512k", "1m", "2m")
    shapes = ("pte-mapped-thp", "partially-mremapped-thp", "single-pte-thp", "partially-shared-thp")
    sized = [f"{shape}:{size}" if size != "2m" else shape for shape in shapes for size in sizes]
    swapped = [f"swapped-pte-mapped-thp:{size}" if size != "2m" else "swapped-pte-mapped-thp" for size in sizes] + \
        ["swapped-thp"] + \
        [f"single-pte-swapped-thp:{size}" if size != "2m" else "single-pte-swapped-thp" for size in sizes]
    assert [s["variant"] for s in doc["scenarios"]] == ["base", "swapped", "thp", *sized, *swapped, "hugetlb",
                                                        "hugetlb-1g"]
    thp = doc["scenarios"][2]
    assert thp["title"].endswith("(PMD-mapped THP)") and {"thp", "cow.c"} <= set(thp["tags"].split())


def test_explain_shows_each_decision_with_its_rule_and_state(capsys):
    assert main(["explain", "linux-5.9-rc4", "rdma-fork-child-exits"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rdma-fork-child-exits under linux-5.9-rc4: pin-incoherent")
    line = next(ln for ln in out.splitlines() if "wp_fault" in ln)
    assert "copy" in line and "linux-5.9-rc4.pol:" in line and "refcount=1025 mapcount=1" in line
    assert "first violation: policykit/corpus/rdma-fork-child-exits.scn:13:1: pin-incoherent" in out


def test_explain_unknown_scenario_suggests(capsys):
    assert main(["explain", "linux-5.9", "rdma-fork-child-exit"]) == ExitCode.USAGE_ERROR
    assert "did you mean 'rdma-fork-child-exits'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare", "score", "corpus", "explain"])
def test_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("metric", ["faults_wp", "swapins", "thp_splits", "fork_copies"])
def test_costs_differ_on_faults_and_plugin_metrics_too(metric):
    """compare (and mutate) tell policies apart by copies by kind, faults by kind and
    plugin metrics, not only by the total of copies."""
    from policykit.compare import Row
    from policykit.run import RunResult
    from policykit.scenario.model import Scenario

    scn = Scenario("s", (), "s.scn")
    base = {"fork_copies": 1, "wp_copies": 0, "unshare_copies": 0, "bytes_copied": 4096, "faults_wp": 0,
            "swapins": 0, "thp_splits": 0, "decisions": 3, "warnings": 0, "peak_pages": 2}
    a = RunResult(scn, "a", [], dict(base), [])
    b = RunResult(scn, "b", [], {**base, metric: base[metric] + 1}, [])
    noise = RunResult(scn, "c", [], {**base, "decisions": 9, "peak_pages": 7}, [])
    assert Row(scn, [a, b]).costs_differ
    assert not Row(scn, [a, noise]).costs_differ
    assert b.plugin_metrics == {"swapins": int(metric == "swapins"), "thp_splits": int(metric == "thp_splits")}


def test_compare_json_has_plugin_metrics(capsys):
    assert main(["compare", "linux-5.18", "linux-5.19", "--tag", "swap", "--format", "json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    results = [r for row in doc["scenarios"] for r in row["results"]]
    assert results and all("swapins" in r["plugin_metrics"] for r in results)
    assert any(r["plugin_metrics"]["swapouts"] for r in results)


def test_compare_json_is_the_same_whatever_the_hash_seed(tmp_path):
    """Counts of violation classes come out in one order, not in the order a set of
    strings happened to give them (which changes with PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    outs = set()
    for seed in ("1", "2", "3"):
        out = subprocess.run([sys.executable, "-m", "policykit", "compare", "linux-5.9", "never-copy",
                              "--tag", "rdma", "--format", "json", "-j", "1"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, cwd=tmp_path)
        assert out.returncode in (0, 1), out.stderr
        summaries = json.loads(out.stdout)["summaries"]
        assert any(len(s["classes"]) > 1 for s in summaries)
        outs.add(json.dumps(summaries))
    assert len(outs) == 1


def test_a_verdict_follows_violations_added_after_it_was_read():
    """A result's verdict is worked out once and kept, but a plugin's
    ``policykit_run_finish`` may still add a violation: the verdict follows."""
    from policykit.oracle import Violation
    from policykit.run import RunResult
    from policykit.scenario.model import Scenario

    r = RunResult(Scenario("s", (), "s.scn"), "a", [], {}, [])
    assert r.verdict == "ok" and r.classes == frozenset()
    r.violations.append(Violation("leak", 1, 3, "seen"))
    assert r.verdict == "leak"
    r.violations = [Violation("lost-write", 1, 3, "x"), Violation("error", None, None, "y")]
    assert r.verdict == "error lost-write" and r.classes == {"error", "lost-write"}
