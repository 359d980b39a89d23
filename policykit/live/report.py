"""Tables and JSON for ``policykit live`` and ``policykit validate``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..report import TABLEFMT
from ..terminal import table
from .backend import LiveRun
from .trace import ASPECTS, Observation
from .validate import Validation

_KEY = re.compile(r"^(.*)\[(\d+)\]$")


_LABEL = re.compile(r"^p(\d+)(.*)$")


def fold(values: dict[str, object]) -> list[str]:
    """``page: value`` lines, runs of pages of one region with one value folded into one
    (``parent:buf[0..511] no fault``), and so are runs of consecutive page labels
    (``parent:buf[0..511] p0..p511 excl map 1``)."""
    out: list[str] = []
    run: list = []                 # [region, first index, last index, first value, last value]
    for key, value in values.items():
        m = _KEY.match(key)
        if m and run and run[0] == m.group(1) and int(m.group(2)) == run[2] + 1 and _follows(run[4], value):
            run[2], run[4] = run[2] + 1, value
            continue
        if run:
            out.append(_run(run))
            run = []
        if m:
            run = [m.group(1), int(m.group(2)), int(m.group(2)), value, value]
        else:
            out.append(f"{key} {_value(value)}")
    if run:
        out.append(_run(run))
    return out


def _follows(last: object, value: object) -> bool:
    """``value`` continues a run ending in ``last``: equal, or the next page label."""
    if last == value:
        return True
    a, b = _LABEL.match(str(last)), _LABEL.match(str(value))
    return bool(a and b and a.group(2) == b.group(2) and int(b.group(1)) == int(a.group(1)) + 1)


def _run(run: list) -> str:
    name, lo, hi, first, last = run
    where = f"{name}[{lo}]" if lo == hi else f"{name}[{lo}..{hi}]"
    if first == last:
        return f"{where} {_value(first)}"
    a, b = _LABEL.match(str(first)), _LABEL.match(str(last))
    return f"{where} p{a.group(1)}..p{b.group(1)}{a.group(2)}"      # type: ignore[union-attr]


def _value(value: object) -> str:
    if value is True:
        return "exclusive"
    if value is False:
        return "shared"
    return str(value)


def _page_text(o: Observation) -> list[str]:
    views = {k: (v.label + ("" if v.kind in (None, "anon") else f" {v.kind}")
                 + ("" if v.exclusive is None else " excl" if v.exclusive else " shared")
                 + ("" if v.mapcount is None else f" map {v.mapcount}")) for k, v in o.pages.items()}
    return fold(views) + [f"{k} PMD-mapped {kb} KiB" for k, kb in o.pmd.items() if kb]


def render_live(runs: Sequence[LiveRun], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{"scenario": r.scenario.name, "not_runnable": r.not_runnable or None,
                            "elapsed": round(r.elapsed, 4),
                            "steps": [_obs_json(o) for o in r.observations]} for r in runs], indent=2)
    parts = []
    for r in runs:
        if r.not_runnable:
            parts.append(f"{r.scenario.name}: not runnable live: {r.not_runnable}")
            continue
        rows = [(o.index, o.text, o.status, "\n".join(fold(o.faults)), "\n".join(fold(o.data)),
                 "\n".join(_page_text(o))) for o in r.observations]
        parts.append(f"{r.scenario.name} (live, {r.elapsed * 1000:.0f} ms)\n"
                     + table(rows, ("#", "step", "status", "write", "read", "pages after"), TABLEFMT[fmt]))
    return "\n\n".join(parts)


def _obs_json(o: Observation) -> dict[str, Any]:
    return {"index": o.index, "step": o.text, "status": o.status, "faults": o.faults, "data": o.data,
            "pmd_kib": o.pmd,
            "pages": {k: {"page": v.label, "kind": v.kind, "exclusive": v.exclusive, "mapcount": v.mapcount}
                      for k, v in o.pages.items()}}


def summary(results: Sequence[Validation]) -> str:
    ran = [v for v in results if not v.not_runnable]
    known = [v for v in ran if v.deviation is not None]
    steps = sum(len(v.live) for v in ran if v.deviation is None)
    agreed = sum(v.steps_agreed for v in ran if v.deviation is None)
    bad = sum(1 for v in ran if v.disagrees)
    pct = 100.0 * agreed / steps if steps else 100.0
    deviations = (f", {len(known)} show a known kernel deviation "
                  f"({', '.join(sorted({v.deviation.name for v in known}))})") if known else ""  # type: ignore[union-attr]
    return (f"{len(ran)} scenarios run live: {len(ran) - bad - len(known)} agree on every step, {bad} disagree"
            f"{deviations}; {agreed:,} of {steps:,} steps agree ({pct:.1f}%); "
            f"{len(results) - len(ran)} not runnable live")


def render_validation(results: Sequence[Validation], policy: str, fmt: str, aspects: Sequence[str] = ASPECTS) -> str:
    ordered = sorted(results, key=lambda v: (not v.disagrees, not v.disagreements, bool(v.not_runnable)))
    if fmt == "json":
        return json.dumps({
            "policy": policy, "summary": summary(results),
            "scenarios": [{
                "scenario": v.scenario.name, "not_runnable": v.not_runnable or None, "ended": v.ended or None,
                "kernel_deviation": v.deviation.name if v.deviation is not None else None,
                "steps": len(v.live), "steps_agreed": v.steps_agreed,
                "aspects": {a: {"compared": n, "agreed": ok} for a, (n, ok) in v.compared.items()},
                "live_seconds": round(v.live_time, 4), "simulated_seconds": round(v.sim_time, 4),
                "disagreements": [{"step": d.step, "text": d.text, "aspect": d.aspect, "where": d.where,
                                   "live": d.live, "simulated": d.simulated} for d in v.disagreements],
            } for v in ordered]}, indent=2, default=str)
    rows = []
    for v in ordered:
        if v.not_runnable:
            continue
        per = {a: 0 for a in aspects}
        for d in v.disagreements:
            per[d.aspect] += 1
        verdict = "kernel deviation" if v.deviation is not None else "disagree" if v.disagreements else "agree"
        rows.append((v.scenario.name, verdict, f"{v.steps_agreed}/{len(v.live)}",
                     *[per[a] or "" for a in aspects], f"{v.live_time * 1000:.1f}", f"{v.sim_time * 1000:.2f}"))
    out = [f"validate {policy} against this kernel (disagreements by aspect; times in ms)",
           table(rows, ("scenario", "verdict", "steps", *aspects, "live", "simulated"), TABLEFMT[fmt])]
    for v in ordered:
        if v.disagreements:
            out.append(side_by_side(v, fmt))
    skipped = [v for v in ordered if v.not_runnable]
    if skipped:
        out.append("not runnable live:\n" + "\n".join(f"  {v.scenario.name}: {v.not_runnable}" for v in skipped))
    out.append(summary(results))
    return "\n\n".join(out)


def side_by_side(v: Validation, fmt: str = "table") -> str:
    """Both traces, step by step, up to and including the first disagreement."""
    first = v.disagreements[0]
    known = (f"known kernel deviation {v.deviation.name!r}: {v.deviation.summary} (see {v.deviation.doc}); "
             "the simulator keeps the rule\n") if v.deviation is not None else ""
    wrong = [d for d in v.disagreements if d.step == first.step]
    keys = {d.where for d in wrong}
    rows = []
    for lv, sv in zip(v.live, v.simulated):
        def show(o: Observation) -> str:
            parts = [] if o.status == "ok" else [o.status]
            shown = {k: x for k, x in o.faults.items() if k in keys or lv.index < first.step}
            parts += [f"write {line}" for line in fold(shown)]
            parts += [f"read {line}" for line in fold(o.data)]
            pages = {k: p for k, p in o.pages.items() if k in keys}
            parts += [f"{k}: {p.label}" + ("" if p.exclusive is None else " excl" if p.exclusive else " shared")
                      + ("" if p.mapcount is None else f" map {p.mapcount}") for k, p in pages.items()]
            return "\n".join(parts[:12])
        mark = "<<" if lv.index == first.step else ""
        rows.append((lv.index, lv.text, show(lv), show(sv), mark))
        if lv.index == first.step:
            break
    what = "; ".join(f"{d.aspect} of {d.where}: live {_value(d.live)}, simulated {_value(d.simulated)}"
                     for d in wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    return (f"{v.scenario.name}: first disagreement at step {first.step} ('{first.text}'): {what}\n" + known
            + table(rows, ("#", "step", "live kernel", "simulator", ""), TABLEFMT[fmt]))
