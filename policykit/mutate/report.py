"""Rendering a mutation run: the score table per decision point, the survivors, JSON
(schema ``policykit.mutate/1``)."""

from __future__ import annotations

import json
from typing import Any


from ..report import TABLEFMT
from ..terminal import table
from . import Mutation, MutantResult

MUTATE_SCHEMA = "policykit.mutate/1"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(m: Mutation, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(to_json(m), indent=2)
    tablefmt = TABLEFMT[fmt]
    rows = []
    for point, results in m.by_point().items():
        c = m.counts(results)
        rows.append([point, len(results), c["killed"], c["cost"], c["survived"], c["invalid"],
                     _pct(m.score(c))])
    total = m.counts()
    rows.append(["all", len(m.results), total["killed"], total["cost"], total["survived"], total["invalid"],
                 _pct(m.score(total))])
    out = [table(rows, ["where", "mutants", "killed", "by cost only", "survived", "do not check", "score"],
                    tablefmt=tablefmt)]
    weak = [(rule, point, m.counts(rs)) for (rule, point), rs in m.by_rule().items()
            if m.counts(rs)["survived"]]
    if weak:
        out.append("")
        out.append(table([[rule, point, c["killed"], c["cost"], c["survived"], _pct(m.score(c))]
                             for rule, point, c in weak],
                            ["rule with survivors", "where", "killed", "by cost only", "survived", "score"],
                            tablefmt=tablefmt))
    survivors = [r for r in m.results if r.status == "survived"]
    if survivors:
        out.append("")
        out.append(table([_survivor_row(r) for r in survivors], ["rule", "at", "mutant", "diverge"],
                            tablefmt=tablefmt))
    valid = total["killed"] + total["cost"] + total["survived"]
    line = (f"\n{m.policy}: score {_pct(m.score(total))} ({total['killed'] + total['cost']} of {valid} mutants "
            f"that check killed: {total['killed']} by a verdict, {total['cost']} by costs only) on "
            f"{m.scenarios} scenarios; {total['invalid']} mutants do not check")
    out.append(line)
    if m.bounds:
        gaps = sum(r.diverge == "gap" for r in survivors)
        same = sum(r.diverge == "equivalent" for r in survivors)
        out.append(f"survivors searched by diverge ({m.bounds}): {gaps} told apart (gaps in the corpus), "
                   f"{same} equivalent within bounds; score over what diverge tells apart: "
                   f"{_pct(m.telling_score())}")
    return "\n".join(out)


def _survivor_row(r: MutantResult) -> list[str]:
    what = {"gap": f"gap: {r.file or ' ; '.join(r.witness)}", "equivalent": "equivalent within bounds"}
    return [r.mutant.rule, r.mutant.point, f"{r.mutant.operator}: {r.mutant.description}",
            what.get(r.diverge, "not searched")]


def to_json(m: Mutation) -> dict[str, Any]:
    total = m.counts()
    return {
        "schema": MUTATE_SCHEMA,
        "policy": m.policy,
        "scenarios": m.scenarios,
        "counts": {k: total[k] for k in ("killed", "cost", "survived", "invalid")},
        "score": m.score(total),
        "diverge_bounds": m.bounds or None,
        "telling_score": m.telling_score() if m.bounds else None,
        "points": [{"point": p, "counts": {k: m.counts(rs)[k] for k in ("killed", "cost", "survived", "invalid")},
                    "score": m.score(m.counts(rs))} for p, rs in m.by_point().items()],
        "rules": [{"rule": rule, "point": p,
                   "counts": {k: m.counts(rs)[k] for k in ("killed", "cost", "survived", "invalid")},
                   "score": m.score(m.counts(rs))} for (rule, p), rs in m.by_rule().items()],
        "mutants": [{"index": r.mutant.index, "operator": r.mutant.operator, "rule": r.mutant.rule,
                     "point": r.mutant.point, "description": r.mutant.description, "status": r.status,
                     "killed_by": r.by or None, "difference": r.detail or None, "runs": r.runs,
                     "diverge": r.diverge or None, "witness": r.witness or None, "file": r.file or None}
                    for r in m.results],
    }
