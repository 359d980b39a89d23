"""Rendering run results as text tables, markdown or JSON.  Returns strings; no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from .run import RunResult

#: version of the JSON document written by ``policykit run --format json``
RUN_SCHEMA = "policykit.run/1"

_TABLEFMT = {"table": "simple", "markdown": "github"}


def _expected(r: RunResult) -> str:
    exp = r.expected
    if exp is None:
        return "-"
    return " ".join(sorted(exp)) or "ok"


def _status(r: RunResult) -> str:
    if r.passed:
        return "pass"
    if r.expectation_met is False:
        return "UNEXPECTED"
    if r.budget_failures:
        return "OVER BUDGET"
    return "FAIL"


def render_runs(results: Sequence[RunResult], fmt: str = "table") -> str:
    """Summary table of runs, then every violation and unmet expectation."""
    if fmt == "json":
        return json.dumps(runs_to_json(results), indent=2, sort_keys=False)
    rows = []
    for r in results:
        m = r.metrics
        rows.append([r.scenario.name, r.policy, r.verdict, _expected(r), _status(r),
                     f"{m['fork_copies']}/{m['wp_copies']}/{m['unshare_copies']}",
                     m["bytes_copied"], m["warnings"]])
    headers = ["scenario", "policy", "verdict", "expected", "status",
               "copies fork/wp/unshare", "bytes copied", "warnings"]
    out = [tabulate(rows, headers, tablefmt=_TABLEFMT[fmt])]
    details = []
    for r in results:
        for v in r.violations:
            details.append(f"{r.scenario.filename}:{v.line or 'end'}: {v.cls}: {v.detail}"
                           + (f"; saw {v.seen}" if v.seen else "")
                           + (f", expected {v.expected}" if v.expected else ""))
        if r.expectation_met is False:
            details.append(f"!!! Unexpected: {r.scenario.name} under {r.policy}: "
                           f"expected {_expected(r)}, got {r.verdict}")
        for b in r.budget_failures:
            details.append(f"!!! Over budget: {r.scenario.name} under {r.policy}: {b}")
        for w in r.warnings:
            details.append(f"{r.scenario.filename}: warning: {w}")
    if details:
        out.append("")
        out.extend(details)
    passed = sum(r.passed for r in results)
    out.append("")
    out.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(out)


def render_trace(r: RunResult, fmt: str = "table") -> str:
    """Each step of one run with the decisions taken and the pages it touched."""
    rows = []
    for rec in r.steps:
        decisions = []
        for e in rec.events:
            if e.kind == "decision" and e.decision is not None:
                d = e.decision
                decisions.append(f"{e.info}@{e.pfn}: {d.action}" + (f" [{d.rule}]" if d.rule else "")
                                 + (f" warn: {d.warn}" if d.warn else ""))
            elif e.kind in ("copy", "alloc-fail"):
                decisions.append(f"{e.kind} {e.info}".strip())
        pages = " ".join(f"{pfn}:{ref}/{mc}" for pfn, ref, mc in rec.pages)
        status = rec.status if not rec.message else f"{rec.status}: {rec.message}"
        rows.append([rec.index, rec.step.line, rec.step.text, status, "\n".join(decisions), pages])
    headers = ["#", "line", "step", "status", "decisions", "pages pfn:ref/map"]
    title = f"{r.scenario.name} under {r.policy}"
    return f"{title}\n{tabulate(rows, headers, tablefmt=_TABLEFMT.get(fmt, 'simple'))}"


def runs_to_json(results: Sequence[RunResult]) -> dict[str, Any]:
    return {
        "schema": RUN_SCHEMA,
        "results": [
            {
                "scenario": r.scenario.name,
                "file": r.scenario.filename,
                "policy": r.policy,
                "verdict": sorted(r.classes) or ["ok"],
                "expected": None if r.expected is None else (sorted(r.expected) or ["ok"]),
                "expectation_met": r.expectation_met,
                "passed": r.passed,
                "violations": [
                    {"class": v.cls, "step": v.step, "line": v.line, "detail": v.detail,
                     "seen": v.seen, "expected": v.expected}
                    for v in r.violations
                ],
                "metrics": r.metrics,
                "warnings": r.warnings,
                "budget_failures": r.budget_failures,
                "trace": [
                    {"step": rec.index, "line": rec.step.line, "text": rec.step.text,
                     "status": rec.status, "message": rec.message,
                     "decisions": [{"point": e.info, "pfn": e.pfn, "action": e.decision.action,
                                    "rule": e.decision.rule, "warn": e.decision.warn}
                                   for e in rec.events if e.decision is not None],
                     "pages": [{"pfn": p, "refcount": rc, "mapcount": mc} for p, rc, mc in rec.pages]}
                    for rec in r.steps
                ] if any(rec.events for rec in r.steps) else None,
            }
            for r in results
        ],
    }
