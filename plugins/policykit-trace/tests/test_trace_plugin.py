"""policykit-trace, as installed through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

from policykit.cli import main

CORPUS = Path(__file__).resolve().parents[3] / "policykit" / "corpus"


def test_listed_by_policykit_plugins(capsys):
    assert main(["plugins", "--format", "json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    trace = plugins["trace"]
    assert trace["distribution"] == "policykit-trace" and trace["version"]
    assert "policykit_addoption" in trace["hooks"]


def test_exports_json_and_dot(tmp_path, capsys):
    scn = CORPUS / "rdma-fork-child-exits.scn"
    assert main(["run", "linux-5.9-rc4", str(scn), "--trace-json", str(tmp_path), "--trace-dot", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "rdma-fork-child-exits.linux-5.9-rc4.json").read_text())
    assert doc["schema"] == "policykit.trace/1" and doc["verdict"] == ["pin-incoherent"]
    kinds = {e["kind"] for e in doc["events"]}
    assert {"step", "decision", "copy", "fork", "exit", "gup"} <= kinds
    copy = next(e for e in doc["events"] if e["kind"] == "decision" and e["action"] == "copy")
    assert copy["info"] == "wp_fault" and copy["rule"].startswith("linux-5.9-rc4.pol:")
    # before the parent's write (step 6) the pin and the parent share pfn 1; at the end they do not
    own = {o["before_step"]: o["pages"] for o in doc["ownership"]}
    assert own[6]["1"] == ["parent:0x100", "pin 1"]
    assert own[None]["1"] == ["pin 1"] and own[None]["2"] == ["parent:0x100"]
    dot = (tmp_path / "rdma-fork-child-exits.linux-5.9-rc4.dot").read_text()
    assert dot.startswith('digraph "rdma-fork-child-exits under linux-5.9-rc4"')
    assert '"parent:0x100" -> "pfn 2" [label="steps 7-9, end"];' in dot
    assert '"pin 1" -> "pfn 1" [label="steps 4-9, end" style=dashed];' in dot


def test_nothing_is_recorded_without_an_export(tmp_path, capsys):
    from policykit import Session, load_policy

    main(["run", "linux-5.9", str(CORPUS / "cow-basic.scn")])   # configure: no export
    s = Session(load_policy("linux-5.9"))
    assert not s.pm.has_plugin("policykit-trace-recorder")


def test_ownership_follows_a_page_through_swap(tmp_path, capsys):
    scn = Path(__file__).resolve().parents[2] / "policykit-swap" / "policykit_swap" / "scenarios" / "o-direct-swap-wrong-cow.scn"
    assert main(["run", "linux-6.x", str(scn), "--trace-dot", str(tmp_path)]) == 0
    dot = (tmp_path / "o-direct-swap-wrong-cow.linux-6.x.dot").read_text()
    # the process loses the page at pageout (step 4) and maps it again from the swapcache
    assert '"p:0x100" -> "pfn 1" [label="steps 3-4, 6-8, end"];' in dot
    assert '"get 1" -> "pfn 1" [label="steps 4-8, end" style=dashed];' in dot
