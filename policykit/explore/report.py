"""What explore and diverge print: findings with their witness traces, the decision
traces of diverging policies side by side, the statistics; as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


from ..report import render_trace
from ..run import RunResult
from ..terminal import table
from .search import Stats

EXPLORE_SCHEMA = "policykit.explore/1"
DIVERGE_SCHEMA = "policykit.diverge/1"


def stats_line(st: Stats) -> str:
    line = (f"states: {st.distinct:,} distinct, {st.generated:,} generated; depth {st.depth}; "
            f"frontier {st.frontier:,}; {st.elapsed:.1f} s ({st.rate:,.0f} states/s); "
            f"{st.describe_stop()}")
    return line


def stats_json(st: Stats) -> dict[str, Any]:
    return {"generated": st.generated, "distinct": st.distinct, "depth": st.depth,
            "frontier": st.frontier, "elapsed": round(st.elapsed, 3),
            "states_per_second": round(st.rate, 1), "exhaustive": st.exhaustive,
            "stopped": st.stopped or None, "left": st.left, "visited_bytes": st.visited_bytes,
            "hidden": st.hidden}


def progress_line(st: Stats) -> str:
    return (f"depth {st.depth + 1}: {st.distinct:,} states, {st.generated:,} transitions, "
            f"frontier {st.frontier:,}, {st.rate:,.0f} states/s")


def _first_violation(r: RunResult) -> str:
    if not r.violations:
        return ""
    v = r.violations[0]
    return f"{v.where()}: {v.cls}: {v.detail}" + (f"; saw {v.seen}, expected {v.expected}" if v.seen else "")


def _verdicts(expect: dict[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for p, v in expect.items():
        groups.setdefault(v, []).append(p)
    return "; ".join(f"{v}: {', '.join(ps)}" for v, ps in sorted(groups.items()))


def render_explore(res: Any, fmt: str, command: str) -> str:
    if fmt == "json":
        return json.dumps(explore_json(res, command), indent=2)
    out = [f"explore {res.policy}: {res.space.bounds.describe()}; operations: {res.space.describe_ops()}"]
    hidden = ", ".join(f"{n} by {why}" for why, n in res.hidden.items())
    n = len(res.findings)
    out.append(f"{n} distinct violation{'s' * (n != 1)} found" + (f" ({hidden} hidden)" if hidden else ""))
    for i, f in enumerate(res.findings, 1):
        out.append("")
        out.append(f"[{i}] {f.cls} after {f.point}: {f.steps} step{'s' * (f.steps != 1)} from the start"
                   + (f" on {f.variant}" if f.variant else "")
                   + f" (first seen at depth {f.depth}; {f.found_lines} lines shrunk to {len(f.lines)})")
        if f.file:
            out.append(f"    written to {f.file}")
        if f.run is not None:
            out.append(render_trace(f.run))
            out.append(f"violation: {_first_violation(f.run)}")
        if f.expectations:
            out.append(f"every built-in policy: {_verdicts(f.expectations)}")
    out.append("")
    out.append(stats_line(res.stats))
    return "\n".join(out)


def explore_json(res: Any, command: str) -> dict[str, Any]:
    b = res.space.bounds
    return {
        "schema": EXPLORE_SCHEMA, "policy": res.policy, "command": command,
        "bounds": {"procs": b.procs, "pages": b.pages, "refs": b.refs, "depth": b.depth,
                   "max_states": b.max_states or None, "time": b.time or None},
        "operations": [s.name for s in res.space.ops],
        "stats": stats_json(res.stats),
        "hidden": res.hidden,
        "findings": [{
            "class": f.cls, "decision_point": f.point, "steps": f.steps, "depth": f.depth,
            "variant": f.variant or None, "lines": f.lines, "file": f.file,
            "verdict": f.run.verdict if f.run else None,
            "violation": _violation_json(f.run), "expectations": f.expectations,
        } for f in res.findings],
    }


def _violation_json(r: RunResult | None) -> dict[str, Any] | None:
    if r is None or not r.violations:
        return None
    v = r.violations[0]
    return {"class": v.cls, "line": v.line, "detail": v.detail, "seen": v.seen, "expected": v.expected}


def _decisions(r: RunResult) -> list[list[tuple[str, str]]]:
    """Per step: (decision point: action [rule], comparable key); a decision repeated
    in a row (a fork of 1024 children) is shown once, with its count."""
    out = []
    for rec in r.steps:
        row: list[tuple[str, str]] = []
        runs: list[int] = []
        for e in rec.events:
            if e.kind == "decision" and e.decision is not None:
                d = e.decision
                item = (f"{e.info}: {d.action}" + (f" [{d.rule}]" if d.rule else ""), f"{e.info}:{d.action}")
            elif e.kind == "copy":
                item = ("copy " + e.info.split(":")[0], "copy " + e.info.split(":")[0])
            else:
                continue
            if row and row[-1] == item:
                runs[-1] += 1
            else:
                row.append(item)
                runs.append(1)
        out.append([(text + (f" x{n}" if n > 1 else ""), key + f"x{n}") for (text, key), n in zip(row, runs)])
    return out


def side_by_side(runs: Sequence[RunResult], fmt: str = "table") -> str:
    """The decision traces of the runs side by side, up to and including the step of the
    first decision that differs."""
    traces = [_decisions(r) for r in runs]
    flat = [[key for step in t for _, key in step] for t in traces]
    first = next((i for i in range(max(len(f) for f in flat))
                  if len({f[i] if i < len(f) else None for f in flat}) > 1), None)
    rows = []
    seen = 0
    for i, rec in enumerate(runs[0].steps):
        rows.append([rec.step.line, rec.step.text] + ["\n".join(text for text, _ in t[i]) for t in traces])
        seen += len(traces[0][i])
        if first is not None and seen > first:
            break
    headers = ["line", "step"] + [r.policy for r in runs]
    return table(rows, headers, tablefmt="github" if fmt == "markdown" else "simple")


def render_diverge(res: Any, fmt: str, command: str) -> str:
    if fmt == "json":
        return json.dumps(diverge_json(res, command), indent=2)
    names = " ".join(res.policies)
    what = "verdicts or copies" if res.cost else "verdicts"
    if res.lines is None:
        return (f"diverge {names}: no difference in {what} within {res.space.bounds.describe()}\n"
                f"{stats_line(res.stats)}")
    steps = len(res.lines) - res.start_lines
    out = [f"diverge {names}: the {'copies' if res.what == 'copies' else 'verdicts'} differ at "
           f"step {steps} from the start" + (f" on {res.variant}" if res.variant else "")
           + f" ({res.found_lines} lines shrunk to {len(res.lines)})"]
    if res.file:
        out.append(f"    written to {res.file}")
    for r in res.runs:
        copies = f"copies fork/wp/unshare {r.metrics['fork_copies']}/{r.metrics['wp_copies']}/{r.metrics['unshare_copies']}"
        first = _first_violation(r)
        out.append(f"  {r.policy}: {r.verdict}; {copies}" + (f"; {first}" if first else ""))
    out.append("")
    out.append(side_by_side(res.runs, fmt))
    out.append("")
    out.append(stats_line(res.stats))
    return "\n".join(out)


def diverge_json(res: Any, command: str) -> dict[str, Any]:
    return {
        "schema": DIVERGE_SCHEMA, "policies": res.policies, "command": command, "cost": res.cost,
        "operations": [s.name for s in res.space.ops],
        "stats": stats_json(res.stats),
        "found": res.lines is not None, "differs_in": res.what or None, "lines": res.lines,
        "variant": res.variant or None, "file": res.file,
        "runs": [{"policy": r.policy, "verdict": r.verdict, "violation": _violation_json(r),
                  "copies": {k: r.metrics[k] for k in ("fork_copies", "wp_copies", "unshare_copies")}}
                 for r in res.runs],
    }
