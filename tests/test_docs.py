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

    [example] = blocks("cli.md", "json")
    shown = json.loads(example)["results"][0]
    main(["run", str(ROOT / "policies" / "python" / "copy_on_wp.py"),
          str(ROOT / "policykit" / "corpus" / "rdma-fork-child-exits.scn"), "--format", "json"])
    real = json.loads(capsys.readouterr().out)["results"][0]
    assert set(real) == set(shown)
    assert real["violations"] == shown["violations"]
    assert {k: real["metrics"][k] for k in shown["metrics"]} == shown["metrics"]
    assert real["verdict"] == shown["verdict"] and real["trace"] is None
