"""The examples in docs/ run."""

from __future__ import annotations

import pytest
from conftest import ROOT, session

from policykit import Session
from policykit._manager import load_policy

DOCS = ROOT / "docs"


def blocks(doc: str, lang: str) -> list[str]:
    """Fenced code blocks of ``doc`` whose info string is ``lang``."""
    out, current = [], None
    for line in (DOCS / doc).read_text().splitlines():
        if current is None and line.startswith("```"):
            current = [] if line[3:].strip() == lang else ["<other>"]
        elif current is not None and line.startswith("```"):
            if current[:1] != ["<other>"]:
                out.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return out


def test_scenario_example_parses_and_meets_its_expectations():
    [example] = blocks("scenarios.md", "scn")
    for policy in ("never_copy", "anon_exclusive"):
        s = session(policy)
        r = s.run(s.parse(example, "docs/scenarios.md"), invariants=True)
        assert r.passed, (policy, r.verdict)


def test_variants_example_runs_on_each_variant():
    [example] = blocks("scenarios.md", "scn-variants")
    from policykit.scenario import scenarios_from_text
    for policy in ("linux-5.9", "linux-6.x"):
        s = Session(load_policy(policy))
        scenarios = scenarios_from_text(example, "docs/scenarios.md", s.registry)
        assert [scn.name for scn in scenarios] == [
            "vmsplice-in-child/base", "vmsplice-in-child/swapped", "vmsplice-in-child/thp",
            "vmsplice-in-child/hugetlb"]
        for scn in scenarios:
            r = s.run(scn, invariants=True)
            assert r.passed, (policy, scn.name, r.verdict)


def test_error_example_is_what_policykit_prints():
    shown = blocks("scenarios.md", "")[-1].strip("\n")
    s = session("never_copy")
    with pytest.raises(Exception) as info:
        s.parse("spawn -> child\nmmap child 1 -> buf\nwrite chld buf\n", "bad.scn")
    assert info.value.render() == shown


def test_engine_doc_policy_runs(tmp_path):
    [code] = blocks("engine.md", "python")
    path = tmp_path / "doc_jason.py"
    path.write_text(code)
    s = Session(load_policy(str(path)), autoload=False)
    rdma = s.load(str(ROOT / "policykit" / "corpus" / "rdma-fork-child-exits.scn"))
    r = s.run(rdma, invariants=True)
    assert r.verdict == "ok" and r.metrics["fork_copies"] == 1


def test_json_example_matches_the_output(capsys):
    import json

    from policykit.cli import main

    example = blocks("cli.md", "json")[0]
    shown = json.loads(example)["results"][0]
    main(["run", str(ROOT / "policies" / "python" / "copy_on_wp.py"),
          str(ROOT / "policykit" / "corpus" / "rdma-fork-child-exits.scn"), "--format", "json"])
    real = json.loads(capsys.readouterr().out)["results"][0]
    assert set(real) == set(shown)
    assert real["violations"] == shown["violations"]
    assert {k: real["metrics"][k] for k in shown["metrics"]} == shown["metrics"]
    assert real["verdict"] == shown["verdict"] and real["trace"] is None


# -- the policy language reference and the tutorial --------------------------------------

def _check_text(text: str, filename: str):
    from policykit._manager import build_registry, get_plugin_manager
    from policykit.dsl import check_policy, parse_policy, resolver

    registry = build_registry(get_plugin_manager())
    return check_policy(parse_policy(text, filename), registry, resolver())


@pytest.mark.parametrize("doc", ["policy-language.md", "tutorial.md"])
def test_every_policy_example_checks(doc):
    examples = blocks(doc, "pol")
    assert examples
    for i, text in enumerate(examples):
        if text.startswith("on "):          # a block shown on its own: check it in a variant
            text = "extends linux-5.9\n" + text
        _, diags = _check_text(text, f"{doc}#{i}")
        assert [d.render() for d in diags if d.severity == "error"] == []


def test_tutorial_end_to_end(tmp_path):
    from policykit.cli import main

    variant, block = blocks("tutorial.md", "pol")
    pol = tmp_path / "my-linus.pol"
    pol.write_text(variant)
    [scn_text] = blocks("tutorial.md", "scn")
    scn = tmp_path / "second-fork.scn"
    scn.write_text(scn_text)
    assert main(["check", str(pol)]) == 0
    assert main(["run", "linux-5.9", str(scn)]) == 0
    assert main(["run", str(pol), str(scn)]) == 0
    # step 4: with the warning block the variant is the built-in linus-2020-mapcount
    pol.write_text(variant + "\n" + block)
    s = Session(load_policy(str(pol)))
    rdma = s.load(str(ROOT / "policykit" / "corpus" / "rdma-fork-child-exits.scn"))
    assert s.run(rdma).warnings == ["line 10: fork_pte: pinned page copied at fork"]
    assert main(["fmt", "--check", str(pol)]) in (0, 1)


def test_tutorial_error_example_is_what_check_prints(tmp_path, capsys):
    from policykit.cli import main

    variant = blocks("tutorial.md", "pol")[0].replace("page.mapcount", "page.mapcnt")
    shown = [b for b in blocks("tutorial.md", "") if "error[" in b][0].strip("\n")
    pol = tmp_path / "my-linus.pol"
    pol.write_text(variant)
    assert main(["check", str(pol)]) == 2
    err = capsys.readouterr().err.strip("\n").replace(str(tmp_path) + "/", "")
    assert err == shown


def test_reference_lists_every_decision_point_and_attribute():
    from policykit._manager import build_registry, get_plugin_manager

    text = (DOCS / "policy-language.md").read_text()
    registry = build_registry(get_plugin_manager(autoload=False))
    for name, point in registry.decision_points.items():
        assert f"| `{name}` |" in text
        for action in point.actions:
            assert action in text
    for (owner, name) in registry.attributes:
        assert name in text, f"{owner}.{name} is not documented"


def test_hook_reference_is_generated_from_the_hookspecs():
    from policykit.hookdoc import hook_specs, render_markdown

    assert (DOCS / "hooks.md").read_text() == render_markdown(), \
        "docs/hooks.md is stale: policykit hooks --format markdown > docs/hooks.md"
    names = [h["name"] for h in hook_specs()]
    assert len(names) == len(set(names)) >= 17
    for h in hook_specs():
        assert h["family"], h["name"]


def test_explore_witness_example_meets_every_expectation_it_states():
    [example] = blocks("explore.md", "scn")
    from policykit.explore.witness import builtin_sessions
    for s in builtin_sessions():
        r = s.run(s.parse(example, "docs/explore.md"))
        assert r.passed, (s.policy.name, r.verdict)


def test_explore_json_example_matches_the_output(capsys, tmp_path, monkeypatch):
    import json

    from policykit.cli import main

    shown = json.loads(blocks("cli.md", "json")[1])
    monkeypatch.chdir(tmp_path)
    argv = shown["command"].split()[1:]
    assert main(argv) == 1
    real = json.loads(capsys.readouterr().out)
    assert set(real) == set(shown) and real["command"] == shown["command"]
    assert set(real["stats"]) == set(shown["stats"]) and set(real["bounds"]) == set(shown["bounds"])
    mine = [f for f in real["findings"] if f["class"] == "pin-incoherent"][0]
    example = shown["findings"][0]
    assert set(mine) == set(example)
    for key in ("decision_point", "steps", "depth", "lines", "file", "verdict", "violation"):
        assert mine[key] == example[key], key
    assert {p: mine["expectations"][p] for p in example["expectations"]} == example["expectations"]


@pytest.mark.parametrize("command", [
    "policykit explore never-copy --depth 3 --ops write,fork",
    "policykit diverge linux-5.9-rc4 linux-5.9 --depth 4",
])
def test_explore_chapter_shows_real_output(command, capsys, tmp_path, monkeypatch):
    from policykit.cli import main

    text = (DOCS / "explore.md").read_text()
    shown = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    main(command.split()[1:])
    real = "\n".join(ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("states:"))
    assert real.strip() == shown.strip()


def test_readme_linus_variant_decides_as_the_builtin_one(tmp_path):
    """The README's 'all of Linus' 2020 variant' is all of it: on the whole corpus it gets
    the verdicts and copies of linus-2020-mapcount (which only adds a warning)."""
    from policykit.compare import compare
    from policykit.corpus import scenario_files
    from policykit.scenario import load_scenarios

    text = (ROOT / "README.md").read_text()
    snippet = text.split("```\npolicy my-linus\n", 1)[1].split("```", 1)[0]
    pol = tmp_path / "my-linus.pol"
    pol.write_text("policy my-linus\n" + snippet, encoding="utf-8")
    mine, theirs = Session(load_policy(str(pol))), Session(load_policy("linus-2020-mapcount"))
    scenarios = [s for f in scenario_files([], mine.pm) for s in load_scenarios(f, mine.registry)]
    cmp = compare([theirs, mine], scenarios, None, jobs=1)
    differ = [row.scenario.name for row in cmp.rows
              if row.results[0].verdict != row.results[1].verdict or row.results[0].copies != row.results[1].copies]
    assert not differ and not cmp.regressions


def test_hook_reference_refuses_a_hookspec_without_a_family(monkeypatch):
    from policykit import hookdoc, hookspecs

    def policykit_new_hook() -> None:
        """A hook nobody put in a family."""

    monkeypatch.setattr(hookspecs, "policykit_new_hook", policykit_new_hook, raising=False)
    with pytest.raises(RuntimeError, match="not listed \\['policykit_new_hook'\\]"):
        hookdoc.hook_specs()
