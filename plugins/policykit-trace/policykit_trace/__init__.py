"""policykit-trace: exporters of a run.

``policykit run ... --trace-json DIR --trace-dot DIR`` writes, per scenario and policy,
a JSON event log (``policykit.trace/1``) and a Graphviz DOT graph of which process or
reference held which page over the steps.  :func:`to_json` and :func:`to_dot` render a
:class:`Recording`, which a :class:`Recorder` registered on a plugin manager collects.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policykit import Engine, Event, hookimpl

if TYPE_CHECKING:           # annotations only: loading the plugin does not load the runner
    from policykit import RunResult

SCHEMA = "policykit.trace/1"


@dataclass
class Recording:
    """Events of one run, and who held which page before each step and at the end."""

    events: list[dict[str, Any]] = field(default_factory=list)
    holders: list[tuple[int | None, dict[int, list[str]]]] = field(default_factory=list)


def holders_of(engine: Engine) -> dict[int, list[str]]:
    """pfn -> the processes (``name:vpn``) and references (``ref N``) holding it."""
    m = engine.machine
    out: dict[int, list[str]] = {}
    for proc in m.processes.values():
        for vpn, pte in sorted(proc.mm.ptes.items()):
            if pte.present and pte.pfn != m.zero_pfn:
                out.setdefault(pte.pfn, []).append(f"{proc.name}:{vpn:#x}")
    for ref in m.refs.values():
        kind = "pin" if ref.pin else "get"
        for pfn in ref.pfns:
            out.setdefault(pfn, []).append(f"{kind} {ref.rid}")
    return out


class Recorder:
    """Observes one run at a time (registered only when an export was asked for)."""

    def __init__(self) -> None:
        self.current = Recording()

    @hookimpl
    def policykit_engine_event(self, engine: Engine, event: Event) -> None:
        if event.kind == "step":
            self.current.holders.append((event.step, holders_of(engine)))
        d = event.decision
        self.current.events.append({
            "kind": event.kind, "step": event.step, "pid": event.pid, "vpn": event.vpn,
            "pfn": event.pfn, "info": event.info,
            "action": d.action if d else None, "rule": d.rule if d else None,
        })
        self._engine = engine

    @hookimpl
    def policykit_run_finish(self, result: RunResult) -> None:
        rec, self.current = self.current, Recording()
        engine = getattr(self, "_engine", None)
        if engine is not None:
            rec.holders.append((None, holders_of(engine)))
        _export(result, rec)


def to_json(result: RunResult, rec: Recording) -> str:
    return json.dumps({
        "schema": SCHEMA,
        "scenario": result.scenario.name,
        "policy": result.policy,
        "verdict": sorted(result.classes) or ["ok"],
        "steps": [{"step": r.index, "line": r.step.line, "text": r.step.text, "status": r.status}
                  for r in result.steps],
        "events": rec.events,
        "ownership": [{"before_step": step, "pages": {str(pfn): h for pfn, h in pages.items()}}
                      for step, pages in rec.holders],
    }, indent=2)


def _node(name: str) -> str:
    return '"' + name.replace('"', "'") + '"'


def to_dot(result: RunResult, rec: Recording) -> str:
    """Pages as boxes, holders as ellipses; an edge per (holder, page) labelled with the
    steps during which the holder had the page ("end" for the final state)."""
    spans: dict[tuple[str, int], list[str]] = {}
    for step, pages in rec.holders:
        label = "end" if step is None else str(step)
        for pfn, holders in pages.items():
            for h in holders:
                spans.setdefault((h, pfn), []).append(label)
    lines = [f"digraph {_node(result.scenario.name + ' under ' + result.policy)} {{",
             "  rankdir=LR;",
             f"  label={_node(result.scenario.title or result.scenario.name)};"]
    for pfn in sorted({p for _, p in spans}):
        lines.append(f"  {_node(f'pfn {pfn}')} [shape=box];")
    for (holder, pfn), steps in sorted(spans.items()):
        style = ' style=dashed' if holder.startswith(("pin ", "get ")) else ""
        lines.append(f"  {_node(holder)} -> {_node(f'pfn {pfn}')} [label={_node(_ranges(steps))}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ranges(steps: list[str]) -> str:
    """'1,2,3,5,end' -> 'steps 1-3, 5, end'."""
    nums = [int(s) for s in steps if s != "end"]
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    if "end" in steps:
        parts.append("end")
    return ("step " if parts in (["end"],) or (len(parts) == 1 and parts[0].isdigit()) else "steps ") + ", ".join(parts)


# -- command line ---------------------------------------------------------------------------

_OUT: dict[str, Path | None] = {"json": None, "dot": None}


@hookimpl
def policykit_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policykit-trace")
    group.add_argument("--trace-json", metavar="DIR", type=Path,
                       help="write each run's event log and page ownership as DIR/SCENARIO.POLICY.json")
    group.add_argument("--trace-dot", metavar="DIR", type=Path,
                       help="write each run's page ownership graph as DIR/SCENARIO.POLICY.dot (Graphviz)")


@hookimpl
def policykit_configure(config: argparse.Namespace) -> None:
    _OUT["json"] = getattr(config, "trace_json", None)
    _OUT["dot"] = getattr(config, "trace_dot", None)


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    # Observing every event costs time: the recorder joins only when asked to export.
    if (_OUT["json"] or _OUT["dot"]) and not pluginmanager.has_plugin("policykit-trace-recorder"):
        pluginmanager.register(Recorder(), "policykit-trace-recorder")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _export(result: RunResult, rec: Recording) -> None:
    stem = f"{_safe(result.scenario.name)}.{_safe(result.policy)}"
    for kind, render in (("json", to_json), ("dot", to_dot)):
        out = _OUT[kind]
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{stem}.{kind}").write_text(render(result, rec), encoding="utf-8")
