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


SIZED = """\
scenario s
variants base pte-mapped-thp:16k single-pte-thp:* thp
spawn -> p
mmap_variant p -> buf
fork p -> c
write p buf
read c buf
expect linux-6.x: ok
expect never-copy: leak
expect never-copy on single-pte-thp:*: lost-write
expect never-copy on single-pte-thp:64k: leak
budget linux-6.x on pte-mapped-thp:16k: wp_copies == 1
"""


def test_a_sized_variant_runs_at_the_size_named_or_at_each():
    scenarios, _ = expand(SIZED)
    names = [s.name for s in scenarios]
    assert names[:2] == ["s/base", "s/pte-mapped-thp:16k"]
    # ':*' is every size, the default (the PMD size) under the bare name
    assert names[2:-1] == [f"s/single-pte-thp:{z}" for z in ("16k", "32k", "64k", "128k", "256k", "512k", "1m")] \
        + ["s/single-pte-thp"]
    small = scenarios[1]
    assert small.variant == "pte-mapped-thp:16k" and small.title == "PTE-mapped THP (16 KiB)"
    assert "mmap_thp p 4 4 -> buf_thp" in [st.text for st in small.steps]
    assert [str(b) for b in small.budgets["linux-6.x"]] == ["wp_copies == 1"]


def test_on_a_size_wins_over_on_every_size():
    by = {s.variant: s for s in expand(SIZED)[0]}
    assert by["single-pte-thp:64k"].expectations["never-copy"].classes == {"leak"}
    assert by["single-pte-thp:16k"].expectations["never-copy"].classes == {"lost-write"}
    assert by["single-pte-thp"].expectations["never-copy"].classes == {"lost-write"}
    assert by["thp"].expectations["never-copy"].classes == {"leak"}


@pytest.mark.parametrize("line, message, hint", [
    ("variants pte-mapped-thp:8m", "variant 'pte-mapped-thp' has no size '8m'", "its sizes: 16k, 32k"),
    ("variants pte-mapped-thp:62k", "has no size '62k'", "did you mean '64k'"),
    ("variants base:16k", "variant 'base' has no sizes", "name it without ':16k'"),
])
def test_a_size_a_variant_lacks_is_refused_with_a_hint(line, message, hint):
    with pytest.raises(ScenarioError) as info:
        expand(f"{line}\nspawn -> p\nmmap_variant p -> buf\n")
    assert message in str(info.value) and hint in info.value.render()


def test_each_mthp_size_is_one_folio_mapped_by_ptes():
    from policykit.testing import apply, engine
    e = engine()
    p = e.spawn("p")
    for nr in (4, 16, 256):
        base = apply(e, "mmap_thp", process=p, pages=2 * nr, folio=nr).result
        e.write(p, [base + 1])                        # a fault anywhere in the aligned range
        ptes = e.machine.processes[p].mm.ptes
        mapped = [v for v in range(base, base + 2 * nr) if v in ptes]
        assert mapped == list(range(base, base + nr)), nr       # that range, not its neighbour
        pages = [e.machine.pages[ptes[v].pfn] for v in mapped]
        assert {pg.folio.nr for pg in pages} == {nr} and len({id(pg.folio) for pg in pages}) == 1
        assert all(not (ptes[v].attrs or {}).get("pmd") and ptes[v].writable for v in mapped)
        assert pages[0].folio.refs == nr              # page_count(): one reference a page


def test_an_mthp_range_partly_populated_gets_small_pages():
    from policykit.testing import apply, engine
    e = engine()
    p = e.spawn("p")
    base = apply(e, "mmap_thp", process=p, pages=16, folio=16).result
    e.read(p, [base])                                 # the zero page holds the range's first PTE
    e.write(p, [base + 3])
    page = e.machine.pages[e.machine.processes[p].mm.ptes[base + 3].pfn]
    assert page.folio is None


def test_mmap_thp_refuses_a_folio_that_is_no_thp_size():
    from policykit import OperationFailed
    from policykit.testing import apply, engine
    e = engine()
    with pytest.raises(OperationFailed, match="not 12"):
        apply(e, "mmap_thp", process=e.spawn("p"), pages=24, folio=12)


@pytest.mark.parametrize("variants, on, ok", [
    ("pte-mapped-thp:*", "pte-mapped-thp", True),         # the default size is one of '*'
    ("pte-mapped-thp:*", "pte-mapped-thp:64k", True),
    ("pte-mapped-thp:16k", "pte-mapped-thp:*", True),
    ("pte-mapped-thp:16k", "pte-mapped-thp", False),      # the default size does not run
    ("pte-mapped-thp:16k", "pte-mapped-thp:64k", False),
])
def test_on_names_only_runs_the_variants_line_makes(variants, on, ok):
    text = (f"variants {variants}\nspawn -> p\nmmap_variant p -> buf\nwrite p buf\n"
            f"expect never-copy on {on}: ok\n")
    if ok:
        expand(text)
    else:
        with pytest.raises(ScenarioError, match="is not one of this scenario's variants"):
            expand(text)
