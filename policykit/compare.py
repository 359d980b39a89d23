"""Scoring policies on a corpus and comparing them.  Library only: never prints.

Correctness per (policy, scenario) is the oracle's verdict (``ok`` or the violation
classes); a scenario is *correct* under a policy when it has no violation.  Cost is the
copies made (fork, write fault, unshare) and the bytes copied; the ``ideal`` policy, when
installed, gives for each scenario the fewest copies a correct policy needed, and each
policy's *excess* is its copies over that, on the scenarios both get right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ._manager import Policy
from .run import RunResult, Session
from .scenario.model import Scenario

#: the policy excess copies are measured against
YARDSTICK = "ideal"


@dataclass
class PolicySummary:
    """One policy over the corpus."""

    policy: str
    unrealizable: bool
    scenarios: int
    correct: int
    classes: Counter[str]
    expectations_met: int
    expectations_stated: int
    fork_copies: int
    wp_copies: int
    unshare_copies: int
    bytes_copied: int
    warnings: int
    excess_copies: int | None
    rules: tuple[str, ...]
    never_fired: list[str]

    @property
    def copies(self) -> int:
        return self.fork_copies + self.wp_copies + self.unshare_copies


@dataclass
class Row:
    """One scenario under every compared policy (and the yardstick, when installed)."""

    scenario: Scenario
    results: list[RunResult]
    ideal: RunResult | None = None

    @cached_property
    def verdicts_differ(self) -> bool:
        return len({r.verdict for r in self.results}) > 1

    @cached_property
    def costs_differ(self) -> bool:
        """Copies by kind, bytes, faults by kind or a plugin's metrics differ."""
        return len({r.costs for r in self.results}) > 1


@dataclass
class Relation:
    """How policy ``b`` compares with ``a``: ``equivalent`` (correct on the same scenarios),
    ``stricter`` (correct wherever ``a`` is, and more), ``looser``, or ``incomparable``."""

    a: str
    b: str
    kind: str
    only_a: list[str]
    only_b: list[str]
    copies_delta: int
    bytes_delta: int


@dataclass
class Comparison:
    policies: list[str]
    summaries: list[PolicySummary]
    rows: list[Row]
    relations: list[Relation]
    #: scenarios the first policy gets right and the last one wrong
    regressions: list[str] = field(default_factory=list)


def _correct(r: RunResult) -> bool:
    return not r.violations


def summarize(policy: Policy, results: list[RunResult], ideal: list[RunResult] | None) -> PolicySummary:
    classes: Counter[str] = Counter()
    for r in results:
        classes.update(r.classes)
    fired = {rule for r in results for rule in r.rules}
    excess = None
    if ideal is not None:
        excess = sum(r.copies - i.copies for r, i in zip(results, ideal) if _correct(r) and _correct(i))
    stated = [r for r in results if r.expectation_met is not None]
    return PolicySummary(
        policy=policy.name, unrealizable=policy.unrealizable is not None, scenarios=len(results),
        correct=sum(_correct(r) for r in results), classes=classes,
        expectations_met=sum(bool(r.expectation_met) for r in stated), expectations_stated=len(stated),
        fork_copies=sum(r.metrics["fork_copies"] for r in results),
        wp_copies=sum(r.metrics["wp_copies"] for r in results),
        unshare_copies=sum(r.metrics["unshare_copies"] for r in results),
        bytes_copied=sum(r.metrics["bytes_copied"] for r in results),
        warnings=sum(r.metrics["warnings"] for r in results),
        excess_copies=excess, rules=policy.rules,
        never_fired=[rule for rule in policy.rules if rule not in fired],
    )


def relate(a: str, ra: list[RunResult], b: str, rb: list[RunResult]) -> Relation:
    ca = {r.scenario.name for r in ra if _correct(r)}
    cb = {r.scenario.name for r in rb if _correct(r)}
    if ca == cb:
        kind = "equivalent"
    elif ca < cb:
        kind = "stricter"
    elif cb < ca:
        kind = "looser"
    else:
        kind = "incomparable"
    return Relation(a, b, kind, sorted(ca - cb), sorted(cb - ca),
                    sum(r.copies for r in rb) - sum(r.copies for r in ra),
                    sum(r.metrics["bytes_copied"] for r in rb) - sum(r.metrics["bytes_copied"] for r in ra))


def compare(sessions: Sequence[Session], scenarios: Sequence[Scenario], yardstick: Session | None = None,
            progress=None, jobs: int | None = None, idle=None) -> Comparison:  # type: ignore[no-untyped-def]
    """Run every scenario under every policy (and the yardstick) and compare; the runs
    are shared out between ``jobs`` processes (see :mod:`policykit.parallel`, which
    calls ``idle()`` while it waits for the last of them)."""
    from .parallel import run_pairs

    everyone = list(sessions) + ([yardstick] if yardstick is not None else [])
    results = run_pairs(everyone, scenarios, jobs, progress, idle)
    ideal = results.pop() if yardstick is not None else None
    summaries = [summarize(s.policy, rs, ideal) for s, rs in zip(sessions, results)]
    rows = [Row(scn, [rs[i] for rs in results], ideal[i] if ideal else None) for i, scn in enumerate(scenarios)]
    rows.sort(key=lambda row: (not row.verdicts_differ, not row.costs_differ, row.scenario.name))
    names = [s.policy.name for s in sessions]
    relations = [relate(names[i], results[i], names[j], results[j])
                 for i in range(len(names)) for j in range(i + 1, len(names))]
    regressions = [ra.scenario.name for ra, rb in zip(results[0], results[-1]) if _correct(ra) and not _correct(rb)] \
        if len(results) > 1 else []
    return Comparison(names, summaries, rows, relations, regressions)
