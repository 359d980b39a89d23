"""Scenario variants (cow.c's harness: one test, many kinds of memory) and `alias`."""

from __future__ import annotations

import json

import pytest

from policykit import PluginError, ScenarioError, VariantSpec, hookimpl
from policykit.cli import ExitCode, main
from policykit.scenario import scenarios_from_text
from policykit.testing import session

TEXT = """\
scenario t
title "a test"
tags mine
source "here"
variants base swapped nosuch hugetlb

spawn -> p
mmap_variant p -> buf
fork p -> c
write p buf
read c buf

expect linux-6.x: ok
expect never-copy: leak
expect never-copy on swapped: lost-write
budget linux-6.x: wp_copies == 1
budget linux-6.x on hugetlb: hugetlb_copies == 1
"""


def expand(text=TEXT, policy="linux-6.x"):
    skipped: list = []
    return scenarios_from_text(text, "t.scn", session(policy).registry, skipped), skipped


def test_one_scenario_per_declared_variant_with_its_steps_tags_and_title():
    scenarios, skipped = expand()
    assert [s.name for s in scenarios] == ["t/base", "t/swapped", "t/hugetlb"]
    assert skipped == [("t/nosuch", "no installed plugin declares the variant 'nosuch'")]
    base, swapped, huge = scenarios
    assert [s.text for s in swapped.steps[:4]] == [
        "spawn -> p", "mmap p 1 private -> buf", "write p buf", "pageout p buf"]
    assert {s.line for s in swapped.steps[1:4]} == {8}, "the variant's steps report the mmap_variant line"
    assert swapped.tags == {"mine", "swapped", "swap"} and swapped.variant == "swapped"
    assert swapped.title == "a test (swapped-out base page)"
    assert [s.op for s in huge.steps[:4]] == ["spawn", "hugetlb_pool", "mmap_hugetlb", "write"]


def test_on_overrides_the_expectation_and_budget_of_those_variants_only():
    base, swapped, huge = expand()[0]
    assert base.expectations["never-copy"].classes == {"leak"}
    assert swapped.expectations["never-copy"].classes == {"lost-write"}
    assert [str(b) for b in base.budgets["linux-6.x"]] == ["wp_copies == 1"]
    assert [str(b) for b in huge.budgets["linux-6.x"]] == ["hugetlb_copies == 1"]


def test_each_variant_runs_as_the_kernel_would():
    s = session("linux-6.x")
    for scn in expand()[0]:
        r = s.run(scn, invariants=True)
        assert r.passed, (scn.name, r.verdict, r.budget_failures)


def test_load_names_a_variant_or_refuses_to_guess(tmp_path):
    path = tmp_path / "t.scn"
    path.write_text(TEXT)
    s = session("linux-6.x")
    assert s.load(str(path), "hugetlb").name == "t/hugetlb"
    with pytest.raises(ScenarioError, match="has 4 variants"):
        s.load(str(path))
    with pytest.raises(Exception, match="no variant 'nosuch': no installed plugin"):
        s.load(str(path), "nosuch")


class BadVariants:
    @hookimpl
    def policykit_add_variants(self):
        return [VariantSpec("broken", "forgets its region", "mmap {process} 1 -> other\n")]


def test_a_variant_that_never_names_the_region_is_the_plugins_error():
    from policykit import Session, load_policy
    s = Session(load_policy("linux-6.x"), plugins=[BadVariants()])
    text = "variants broken\nspawn -> p\nmmap_variant p -> buf\n"
    with pytest.raises(PluginError, match="variant 'broken': its steps never name '{region}'"):
        scenarios_from_text(text, "t.scn", s.registry)


def test_alias_names_pages_of_a_region():
    s = session("linux-6.x")
    r = s.run(s.parse("spawn -> p\nmmap p 4 private -> big\nalias p big[2:4] -> tail\n"
                      "write p tail[1]\nfork p -> c\nwrite p tail\nread c big\n"), trace=True, invariants=True)
    assert r.verdict == "ok"
    writes = [e.vpn for rec in r.steps if rec.step.op == "write" for e in rec.events if e.kind == "write"]
    base = min(e.vpn for rec in r.steps for e in rec.events if e.vpn is not None)
    assert [w - base for w in writes] == [3, 2, 3]
    with pytest.raises(ScenarioError, match="out of range: 'tail' has 2 pages"):
        s.parse("spawn -> p\nmmap p 4 private -> big\nalias p big[2:4] -> tail\nwrite p tail[2]\n")


def test_corpus_lists_variants_and_the_skipped(tmp_path, capsys):
    (tmp_path / "t.scn").write_text(TEXT)
    assert main(["corpus", "--corpus", str(tmp_path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "t/swapped" in out and "3 scenarios, 1 skipped:\n  t/nosuch: no installed plugin" in out
    assert main(["corpus", "--corpus", str(tmp_path), "--format", "json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert [s["variant"] for s in doc["scenarios"]] == ["base", "swapped", "hugetlb"]
    assert doc["skipped"][0]["scenario"] == "t/nosuch"


def test_compare_notes_skipped_variants_on_stderr(tmp_path, capsys):
    (tmp_path / "t.scn").write_text(TEXT)
    assert main(["compare", "linux-6.x", "linux-6.x", "--corpus", str(tmp_path)]) == ExitCode.OK
    captured = capsys.readouterr()
    assert "note: 1 variant skipped (no installed plugin declares the variant 'nosuch')" in captured.err
    assert "t/nosuch" not in captured.out and "t/hugetlb" in captured.out


def test_explain_takes_a_variant_by_name_or_flag(tmp_path, capsys):
    assert main(["explain", "linux-5.9", "vmsplice-child-unmap/swapped"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("vmsplice-child-unmap/swapped under linux-5.9: leak")
    assert main(["explain", "linux-5.9", "vmsplice-child-unmap"]) == ExitCode.USAGE_ERROR
    assert "it has variants: vmsplice-child-unmap/base" in capsys.readouterr().err
    (tmp_path / "t.scn").write_text(TEXT)
    assert main(["explain", "linux-6.x", str(tmp_path / "t.scn"), "--variant", "hugetlb"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("t/hugetlb under linux-6.x: ok")
