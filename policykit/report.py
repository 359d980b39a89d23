"""Rendering run results as text tables, markdown or JSON.  Returns strings; no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any


from .run import RunResult
from .terminal import style, table

#: version of the JSON document written by ``policykit run --format json``
RUN_SCHEMA = "policykit.run/1"

#: tabulate table format of each --format that prints a table
TABLEFMT = {"table": "simple", "markdown": "github"}


def _expected(r: RunResult) -> str:
    exp = r.expected
    if exp is None:
        return "-"
    return " ".join(sorted(exp)) or "ok"


def _status(r: RunResult) -> str:
    if r.passed:
        return style("pass", "good")
    if r.expectation_met is False:
        return style("UNEXPECTED", "bad")
    if r.budget_failures:
        return style("OVER BUDGET", "bad")
    return style("FAIL", "bad")


def render_runs(results: Sequence[RunResult], fmt: str = "table", verbosity: int = 0) -> str:
    """Runs for the terminal.  ``verbosity`` 0: one row per scenario (its variants
    together), then the runs that failed in full and the warnings, identical lines folded
    with a count; 1 (``-v``): a row per run and every violation, expected or not; -1
    (``-q``): the summary line only."""
    if fmt == "json":
        return json.dumps(runs_to_json(results), indent=2, sort_keys=False)
    if fmt == "github":
        return runs_to_github(results)
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    summary = f"{style(f'{passed} passed', 'good' if passed else 'dim')}, " \
              f"{style(f'{failed} failed', 'bad' if failed else 'dim')}"
    if verbosity < 0:
        return summary
    headers = ["scenario", "policy", "verdict", "expected", "status",
               "copies fork/wp/unshare", "bytes copied", "warnings"]
    if verbosity > 0:
        rows = [[r.scenario.name, r.policy, r.verdict, _expected(r), _status(r), _copies([r]),
                 r.metrics["bytes_copied"], r.metrics["warnings"]] for r in results]
    else:
        rows = [_scenario_row(group) for group in _by_scenario(results)]
        headers[0] = "scenario (variants)"
    out = [table(rows, headers, tablefmt=TABLEFMT[fmt])]
    details: list[str] = []
    for r in results:
        if verbosity > 0 or not r.passed:
            details.extend(_details(r))
    details.extend(f"{r.scenario.filename}: warning: {w}" for r in results for w in r.warnings)
    if details:
        out.append("")
        out.extend(fold(details))
    out += ["", summary]
    return "\n".join(out)


def locate(r: RunResult, v: Any) -> str:
    """``file:line:col`` of a violation: the step that showed it, or for the end-of-run
    audit the last step."""
    steps = r.scenario.steps
    step = next((st for st in steps if st.line == v.line), None) if v.line else (steps[-1] if steps else None)
    if step is None:
        return f"{r.scenario.filename}:{v.line or 1}:1"
    return f"{step.span.filename}:{step.span.line}:{step.span.column}"


def _details(r: RunResult) -> list[str]:
    out = [f"{locate(r, v)}: {v.cls}: {v.detail}" + ("" if v.line else " (end-of-run audit)")
           + (f"; saw {v.seen}" if v.seen else "") + (f", expected {v.expected}" if v.expected else "")
           for v in r.violations]
    if r.expectation_met is False:
        out.append(f"!!! Unexpected: {r.scenario.name} under {r.policy}: expected {_expected(r)}, got {r.verdict}")
    out.extend(f"!!! Over budget: {r.scenario.name} under {r.policy}: {b}" for b in r.budget_failures)
    return out


def fold(lines: Sequence[str]) -> list[str]:
    """Identical lines once each, in order of first appearance, with how many there were;
    then a run of lines that differ only in page indexes and values (the pages of one
    large folio) as its first line and how many more there were."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    out: list[str] = []
    shape, like = None, 0
    for line, n in counts.items():
        s = _PER_PAGE.sub("#", line)
        if s == shape:
            like += 1
            continue
        if like:
            out.append(f"    ... and {like} more like it (other pages)")
        shape, like = s, 0
        out.append(line if n == 1 else f"{line}  (x {n})")
    if like:
        out.append(f"    ... and {like} more like it (other pages)")
    return out


#: what differs between the messages about the pages of one large folio
_PER_PAGE = re.compile(r"\[\d+\]|#\d+")


def _by_scenario(results: Sequence[RunResult]) -> list[list[RunResult]]:
    """Runs grouped by scenario file and policy (a file's variants together), in order."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.scenario.filename, r.scenario.name.split("/")[0], r.policy), []).append(r)
    return list(groups.values())


def _scenario_row(group: Sequence[RunResult]) -> list[Any]:
    first = group[0]
    name = first.scenario.name.split("/")[0] + (f" ({len(group)})" if first.scenario.variant else "")
    verdicts = " | ".join(dict.fromkeys(r.verdict for r in group))
    expected = " | ".join(dict.fromkeys(_expected(r) for r in group))
    failed = [r for r in group if not r.passed]
    status = style("pass", "good") if not failed else (
        _status(failed[0]) if len(group) == 1 else f"{len(failed)} of {len(group)} {_status(failed[0])}")
    return [name, first.policy, verdicts, expected, status, _copies(group),
            sum(r.metrics["bytes_copied"] for r in group), sum(r.metrics["warnings"] for r in group)]


def _copies(group: Sequence[RunResult]) -> str:
    return "/".join(str(sum(r.metrics[k] for r in group)) for k in ("fork_copies", "wp_copies", "unshare_copies"))


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
    return f"{title}\n{table(rows, headers, tablefmt=TABLEFMT.get(fmt, 'simple'))}"


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


# -- comparisons ------------------------------------------------------------------------------

#: version of the JSON document written by ``policykit compare --format json``
COMPARE_SCHEMA = "policykit.compare/1"
_CLASSES = ("leak", "pin-incoherent", "lost-write", "lost-dirty", "fork-failed", "gup-failed", "error")


def _kib(n: int) -> str:
    sign = "-" if n < 0 else "+"
    n = abs(n)
    return f"{sign}{n // 1024} KiB" if n < 1 << 20 else f"{sign}{n / (1 << 20):.1f} MiB"


def _names(names: Sequence[str]) -> str:
    """Scenario names for a sentence, the variants of one scenario together:
    ``ro-pin-shared/{base,swapped}``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        base, _, variant = name.partition("/")
        groups.setdefault(base, []).append(variant)
    return ", ".join(base if variants == [""] else
                     f"{base}/{variants[0]}" if len(variants) == 1 else f"{base}/{{{','.join(_sizes(variants))}}}"
                     for base, variants in groups.items())


def _sizes(variants: list[str]) -> list[str]:
    """A sized variant's runs folded: ``pte-mapped-thp:*`` when it ran at every size it
    has, ``pte-mapped-thp:{16k,2m}`` when at some (the bare name is its default size)."""
    from ._manager import plugin_registry
    specs = plugin_registry().variants
    runs: dict[str, list[str]] = {}
    for v in variants:
        name, _, size = v.partition(":")
        spec = specs.get(name)
        runs.setdefault(name, []).append(size or (spec.sizes[-1] if spec is not None and spec.sizes else ""))
    out = []
    for name, sizes in runs.items():
        spec = specs.get(name)
        if sizes == [""] or spec is None or not spec.sizes:
            out.extend(f"{name}:{s}" if s else name for s in sizes)
        elif set(sizes) == set(spec.sizes):
            out.append(f"{name}:*")
        elif len(sizes) == 1:
            out.append(name if sizes[0] == spec.sizes[-1] else f"{name}:{sizes[0]}")
        else:
            out.append(f"{name}:{{{','.join(s for s in spec.sizes if s in sizes)}}}")
    return out


def _first_violation(r: RunResult) -> str:
    if not r.violations:
        return ""
    v = r.violations[0]
    return (f"{locate(r, v)}: {v.cls}: {v.detail}" + ("" if v.line else " (end-of-run audit)")
            + (f"; saw {v.seen}, expected {v.expected}" if v.seen else ""))


def render_comparison(cmp: Any, fmt: str = "table", only_diff: bool = False) -> str:
    """Summary of each policy, how each pair relates, then the scenarios, those where the
    policies differ first, each with its first violation."""
    if fmt == "json":
        return json.dumps(comparison_to_json(cmp), indent=2)
    if fmt == "github":
        return runs_to_github([row.results[-1] for row in cmp.rows], cmp.regressions)
    tablefmt = TABLEFMT[fmt]
    extra = sorted({c for s in cmp.summaries for c in s.classes} - set(_CLASSES))
    head = ["policy", "correct"] + list(_CLASSES) + extra + ["copies fork/wp/unshare", "bytes copied",
                                                            "excess vs ideal", "rules never fired"]
    rows = []
    for s in cmp.summaries:
        rows.append([s.policy + (" (unrealizable)" if s.unrealizable else ""), f"{s.correct}/{s.scenarios}"]
                    + [s.classes.get(c, 0) or "" for c in list(_CLASSES) + extra]
                    + [f"{s.fork_copies}/{s.wp_copies}/{s.unshare_copies}", s.bytes_copied,
                       "-" if s.excess_copies is None else s.excess_copies,
                       f"{len(s.never_fired)}/{len(s.rules)}" if s.rules else "-"])
    out = [table(rows, head, tablefmt=tablefmt), ""]
    for rel in cmp.relations:
        text = f"{rel.b} vs {rel.a}: {rel.kind}"
        if rel.only_b:
            text += f"; correct only under {rel.b}: {_names(rel.only_b)}"
        if rel.only_a:
            text += f"; correct only under {rel.a}: {_names(rel.only_a)}"
        text += f"; copies {rel.copies_delta:+d} ({_kib(rel.bytes_delta)})"
        out.append(("- " if fmt == "markdown" else "") + text)
    out.append("")
    shown = [row for row in cmp.rows if row.verdicts_differ or row.costs_differ] if only_diff else cmp.rows
    listed = []
    for row in shown:
        mark = "≠" if row.verdicts_differ else ("$" if row.costs_differ else "")
        listed.append([mark, row.scenario.name]
                     + [f"{r.verdict} ({r.copies})" for r in row.results]
                     + ([f"{row.ideal.copies}"] if row.ideal is not None else []))
    head = ["", "scenario"] + [f"{p} (copies)" for p in cmp.policies] + (["ideal copies"] if cmp.rows and cmp.rows[0].ideal is not None else [])
    out.append(table(listed, head, tablefmt=tablefmt))
    details = []
    for row in shown:
        if not row.verdicts_differ:
            continue
        for r in row.results:
            if r.violations:
                details.append(f"{row.scenario.name} under {r.policy}: {_first_violation(r)}")
    if details:
        out += [""] + [("- " if fmt == "markdown" else "") + d for d in details]
    differ = sum(row.verdicts_differ for row in cmp.rows)
    out += ["", f"{len(cmp.rows)} scenarios, {differ} with different verdicts"
                + (f"; regressions ({cmp.policies[-1]} wrong where {cmp.policies[0]} is right): "
                   + _names(cmp.regressions) if cmp.regressions else "")]
    return "\n".join(out)


def comparison_to_json(cmp: Any) -> dict[str, Any]:
    return {
        "schema": COMPARE_SCHEMA,
        "policies": cmp.policies,
        "summaries": [
            {"policy": s.policy, "unrealizable": s.unrealizable, "scenarios": s.scenarios,
             "correct": s.correct, "classes": dict(sorted(s.classes.items())),
             "expectations": {"met": s.expectations_met, "stated": s.expectations_stated},
             "copies": {"fork": s.fork_copies, "wp": s.wp_copies, "unshare": s.unshare_copies},
             "bytes_copied": s.bytes_copied, "warnings": s.warnings, "excess_copies": s.excess_copies,
             "rules": len(s.rules), "never_fired": s.never_fired}
            for s in cmp.summaries
        ],
        "relations": [
            {"a": r.a, "b": r.b, "kind": r.kind, "correct_only_under_a": r.only_a,
             "correct_only_under_b": r.only_b, "copies_delta": r.copies_delta, "bytes_delta": r.bytes_delta}
            for r in cmp.relations
        ],
        "scenarios": [
            {"scenario": row.scenario.name, "variant": row.scenario.variant or None,
             "file": row.scenario.filename, "tags": sorted(row.scenario.tags),
             "verdicts_differ": row.verdicts_differ, "costs_differ": row.costs_differ,
             "ideal_copies": row.ideal.copies if row.ideal is not None else None,
             "results": [_result_json(r, row.ideal) for r in row.results]}
            for row in cmp.rows
        ],
        "regressions": cmp.regressions,
    }


def _result_json(r: RunResult, ideal: RunResult | None) -> dict[str, Any]:
    """One (policy, scenario) of a comparison: verdict, first violation, expectation,
    copies by kind, bytes, faults by kind, warnings, and copies over ``ideal`` (when both
    are correct)."""
    m = r.metrics
    v = r.violations[0] if r.violations else None
    both_correct = ideal is not None and not r.violations and not ideal.violations
    return {
        "policy": r.policy, "verdict": sorted(r.classes) or ["ok"], "expectation_met": r.expectation_met,
        "copies": r.copies,
        "copies_by": {"fork": m["fork_copies"], "wp": m["wp_copies"], "unshare": m["unshare_copies"]},
        "bytes_copied": m["bytes_copied"],
        "faults": {k[len("faults_"):]: n for k, n in m.items() if k.startswith("faults_")},
        "plugin_metrics": r.plugin_metrics,
        "warnings": len(r.warnings),
        "excess_copies": r.copies - ideal.copies if both_correct else None,  # type: ignore[union-attr]
        "first_violation": ({"class": v.cls, "step": v.step, "line": v.line, "detail": v.detail,
                             "seen": v.seen, "expected": v.expected} if v is not None else None),
    }


def render_corpus(scenarios: Sequence[Any], fmt: str = "table",
                  skipped: Sequence[tuple[str, str]] = ()) -> str:
    """The scenarios (variants expanded) and the variants skipped, with the reason."""
    rows = [{"scenario": s.name, "variant": s.variant or None, "tags": " ".join(sorted(s.tags)),
             "title": s.title, "source": s.source, "file": s.filename} for s in scenarios]
    if fmt == "json":
        return json.dumps({"schema": "policykit.corpus/1", "scenarios": rows,
                           "skipped": [{"scenario": n, "reason": why} for n, why in skipped]}, indent=2)
    out = table([[r["scenario"], r["tags"], r["title"]] for r in rows], ["scenario", "tags", "title"],
                   tablefmt=TABLEFMT[fmt]) + f"\n\n{len(rows)} scenarios"
    if skipped:
        out += f", {len(skipped)} skipped:\n" + "\n".join(f"  {n}: {why}" for n, why in skipped)
    return out


def render_explain(r: RunResult, fmt: str = "table") -> str:
    """Each decision of a run: the step, the decision point, the action, the rule that fired
    (file:line), and the state the policy read."""
    rows = []
    for rec in r.steps:
        for e in rec.events:
            if e.kind == "decision" and e.decision is not None:
                d = e.decision
                rows.append({"line": rec.step.line, "step": rec.step.text, "point": e.info, "action": d.action,
                             "rule": d.rule or "", "read": e.state, "warn": d.warn or ""})
    if fmt == "json":
        return json.dumps({"schema": "policykit.explain/1", "scenario": r.scenario.name, "policy": r.policy,
                           "verdict": sorted(r.classes) or ["ok"], "decisions": rows}, indent=2)
    decisions = table(_fold_rows([[x["line"], x["step"], x["point"], x["action"], x["rule"], x["read"]] for x in rows]),
                      ["line", "step", "decision point", "action", "rule", "state read"], tablefmt=TABLEFMT[fmt])
    verdict = f"{r.scenario.name} under {r.policy}: {r.verdict}"
    steps = []
    if r.scenario.variant:          # the steps as run: the variant's expanded
        steps = [f"steps of variant {r.scenario.variant!r}, as run:"]
        steps += [f"  {st.line:>4}  {st.text}" for st in r.scenario.steps]
        steps.append("")
    first = _first_violation(r)
    return "\n".join([verdict, *steps, decisions] + ([f"first violation: {first}"] if first else []))


def _fold_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Runs of more than three decisions that differ only in page numbers and counts (the
    pages of one large folio) as the first, a row saying how many more, and the last."""
    keys = [row[:5] + [_NUMBERS.sub("#", str(row[5]))] for row in rows]
    out: list[list[Any]] = []
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and keys[j] == keys[i]:
            j += 1
        if j - i > 3:
            out += [rows[i], ["", "", "", "", "", f"... x {j - i - 2} more pages, same decision"], rows[j - 1]]
        else:
            out += rows[i:j]
        i = j
    return out


_NUMBERS = re.compile(r"\d+")


def runs_to_github(results: Sequence[RunResult], regressions: Sequence[str] = ()) -> str:
    """GitHub Actions annotations for the runs that failed: the unmet expectation at its
    ``expect`` line (or the scenario's first line), each violation of those runs at its
    step; ``regressions`` (compare) are annotated as such."""
    from .diagnostics import Finding, github

    out = []
    regressed = set(regressions)
    for r in results:
        if r.passed:
            continue
        scn = r.scenario
        exp = scn.expectations.get(r.policy)
        where = exp.span if exp is not None else (scn.steps[0].span if scn.steps else None)
        line, col = (where.line, where.column) if where is not None else (1, 1)
        what = "regression: " if scn.name in regressed else ""
        if r.expectation_met is False:
            msg = f"{what}{scn.name} under {r.policy}: expected {_expected(r)}, got {r.verdict}"
        elif r.budget_failures:
            msg = f"{what}{scn.name} under {r.policy}: over budget: {'; '.join(r.budget_failures)}"
        else:
            msg = f"{what}{scn.name} under {r.policy}: {r.verdict}"
        out.append(github(Finding(scn.filename, line, col, col + 1, "error", "", msg, "")))
        for v in r.violations:
            file, vline, vcol = locate(r, v).rsplit(":", 2)
            out.append(github(Finding(file, int(vline), int(vcol), int(vcol) + 1, "warning", "",
                                      f"{v.cls} under {r.policy}: {v.detail}", "")))
    return "\n".join(fold(out))
