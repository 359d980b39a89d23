"""Running many scenarios under one policy, taking the steps they begin with once.

Scenarios begin alike: every cow.c-style scenario sets up its memory variant with the
same lines before its test starts, and a run follows from its steps alone (pfns, pids
and written values are handed out in order).  :func:`run_batch` arranges the scenarios
in a trie of their steps -- two steps are the same when their text and their line are,
so that every message that names a line is true of each scenario -- takes each step of
the trie once, and snapshots the run (:meth:`Runner.branch`) where scenarios part.
Each scenario gets the result :meth:`Session.run` gives it alone; a run that would pass
its time limit is run alone again, so that the limit is measured on that run.

:func:`run_group` runs the scenarios under several policies at once: the others ride
along the first one's runs (:mod:`policykit.engine.riders`), asked at each of its
decisions, and a run whose decisions they all gave alike is theirs too; those that
answered otherwise somewhere are run again on their own, the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .engine.riders import Rider, why_not
from .guard import Deadline, alarm_clock
from .scenario.model import Scenario, Step

if TYPE_CHECKING:
    from .run import Runner, RunResult, Session, StepRecord


class _Node:
    """One step of the trie: the scenarios that end after it, the steps that follow."""

    __slots__ = ("step", "children", "ends")

    def __init__(self, step: Step | None) -> None:
        self.step = step
        self.children: dict[tuple[str, int], _Node] = {}
        self.ends: list[int] = []

    def scenarios(self) -> list[int]:
        """Every scenario that takes this step."""
        out, todo = [], [self]
        while todo:
            node = todo.pop()
            out.extend(node.ends)
            todo.extend(node.children.values())
        return out


def trie(scenarios: Sequence[Scenario]) -> _Node:
    """The scenarios' steps as a trie, children in the order scenarios first name them."""
    root = _Node(None)
    for i, scn in enumerate(scenarios):
        node = root
        for step in scn.steps:
            key = (step.text, step.line)
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _Node(step)
            node = child
        node.ends.append(i)
    return root


class _Path:
    """The run along the trie down to a node: the runner, the records and warnings so
    far, and the time the steps took (what a run alone would have spent)."""

    __slots__ = ("runner", "records", "warnings", "elapsed")

    def __init__(self, runner: Runner, records: list[StepRecord], warnings: list[str], elapsed: float) -> None:
        self.runner, self.records, self.warnings, self.elapsed = runner, records, warnings, elapsed

    def branch(self, last: bool) -> _Path:
        """The path for a child: this one itself for the ``last``, else a snapshot."""
        if last:
            return self
        return _Path(self.runner.branch(), list(self.records), list(self.warnings), self.elapsed)


def run_batch(session: Session, scenarios: Sequence[Scenario], invariants: bool, timeout: float | None,
              max_pages: int | None,
              on_result: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Run ``scenarios`` under ``session``'s policy sharing common first steps (see the
    module's docstring); the results in the scenarios' order."""
    told = None if on_result is None else (lambda k, i, result: on_result(i, result))
    return run_group([session], scenarios, invariants, timeout, max_pages, told)[0]


def ride_groups(sessions: Sequence[Session]) -> list[list[int]]:
    """The sessions in groups that can run together: each group's first session, and
    those that can ride along its runs (:func:`policykit.engine.riders.why_not`)."""
    groups: list[list[int]] = []
    for k, s in enumerate(sessions):
        for group in groups:
            first = sessions[group[0]]
            if (first.timeout, first.max_pages) == (s.timeout, s.max_pages) and why_not(
                    first.pm, first.registry, first.policy.name, s.pm, s.registry, s.policy.name, s.dispatch) is None:
                group.append(k)
                break
        else:
            groups.append([k])
    return groups


def rider(session: Session, primary: Session, index: int) -> Rider:
    """``session``'s policy, to ride along runs of ``primary``'s at place ``index``."""
    return Rider(session.policy.name, session.dispatch, session.registry, primary.dispatch, index, session)


def run_group(sessions: Sequence[Session], scenarios: Sequence[Scenario], invariants: bool,
              timeout: float | None, max_pages: int | None,
              on_result: Callable[[int, int, RunResult], None] | None = None) -> list[list[RunResult]]:
    """``results[k][i]``: ``scenarios[i]`` under ``sessions[k]``, each as
    :meth:`Session.run` gives it.  The sessions after the first ride along its runs
    (the caller has checked that they can: :func:`ride_groups`); a scenario on which a
    rider fell off is run again under it alone.  ``on_result(k, i, result)`` is told of
    each result as it is done."""
    results: list[list[RunResult | None]] = [[None] * len(scenarios) for _ in sessions]

    def tell(k: int, i: int, result: RunResult) -> None:
        results[k][i] = result
        if on_result is not None:
            on_result(k, i, result)

    again, alone = _ride(sessions, scenarios, invariants, timeout, max_pages, tell, True)
    for i in alone:                     # out of time somewhere on the way: alone, as it would be
        for k, s in enumerate(sessions):
            tell(k, i, s.run(scenarios[i], invariants=invariants, timeout=timeout, max_pages=max_pages))
    for k, indices in enumerate(again):
        if indices:
            redo = run_batch(sessions[k], [scenarios[i] for i in indices], invariants, timeout, max_pages)
            for i, result in zip(indices, redo):
                tell(k, i, result)
    return results  # type: ignore[return-value]


def fall_offs(session: Session, riders: Sequence[Session], scenarios: Sequence[Scenario],
              timeout: float | None) -> list[list[int]]:
    """For each of ``riders``, the scenarios on which it falls off ``session``'s runs
    (it answers otherwise somewhere, or the run cannot be shared): on every other
    scenario its run is ``session``'s, decision for decision.  The runs' results are
    not made: what ``mutate`` needs to know which scenarios a mutant must run alone."""
    again, alone = _ride([session, *riders], scenarios, False, timeout, None, None, False)
    return [sorted(set(alone) | set(indices)) for indices in again[1:]]


def _ride(sessions: Sequence[Session], scenarios: Sequence[Scenario], invariants: bool,
          timeout: float | None, max_pages: int | None,
          tell: Callable[[int, int, RunResult], None] | None,
          rider_results: bool) -> tuple[list[list[int]], list[int]]:
    """Run ``scenarios`` under ``sessions[0]``, the others riding along; ``tell(k, i,
    result)`` each result known (the riders' only with ``rider_results``).  Returns the
    scenarios each session must run again alone (where a rider fell off), and those
    every session must (out of time on the way: a run alone measures its own time)."""
    session, others = sessions[0], sessions[1:]
    again: list[list[int]] = [[] for _ in sessions]
    alone: list[int] = []

    def done(i: int, path: _Path) -> None:
        records = _own(scenarios[i], path.records)
        if tell is not None:
            tell(0, i, session._result(scenarios[i], path.runner, records, path.warnings))
        for rider in path.runner.engine.riders or ():
            k = rider.index
            if rider.off:
                again[k].append(i)
            elif rider_results and tell is not None:
                tell(k, i, others[k - 1]._result(scenarios[i], path.runner, records, rider.lines, rider))

    def finish(node: _Node, path: _Path, last: bool) -> None:
        """Results for the scenarios that end at ``node``, each audited on a snapshot
        unless the path ends there (``last``)."""
        for k, i in enumerate(node.ends):
            mine = path.branch(last and k == len(node.ends) - 1)
            try:
                set_alarm(timeout - mine.elapsed if timeout else None)
                session._audit(mine.runner)
                set_alarm(None)
            except Deadline:
                alone.append(i)
                continue
            done(i, mine)

    with alarm_clock() as set_alarm:
        root = trie(scenarios)
        first = session.start()
        if others:
            first.engine.riders = [rider(s, session, k) for k, s in enumerate(others, 1)]
        start = _Path(first, [], [], 0.0)
        finish(root, start, not root.children)
        # depth first, one frame per step of the path: (node, path, its children left to
        # take, the next one last); the last child takes the path itself
        stack = [(root, start, list(reversed(root.children.values())))]
        while stack:
            node, path, left = stack[-1]
            if not left:
                stack.pop()
                continue
            child = left.pop()
            mine = path.branch(not left)
            try:
                set_alarm(timeout - mine.elapsed if timeout else None)
                took = time.perf_counter()
                stopped = _take(session, mine, child.step, len(mine.records), max_pages, invariants)
                mine.elapsed += time.perf_counter() - took
                set_alarm(None)
            except Deadline:
                alone.extend(child.scenarios())
                continue
            if stopped:                  # an error: every scenario from here on ends with it
                for i in child.scenarios():
                    done(i, mine)
                continue
            finish(child, mine, not child.children)
            if child.children:
                stack.append((child, mine, list(reversed(child.children.values()))))
    return again, alone


def _take(session: Session, path: _Path, step: Step, index: int, max_pages: int | None,
          invariants: bool) -> bool:
    """Take ``step`` on the path as :meth:`Session.run` does; True when the run stops."""
    runner = path.runner
    rec = runner.step(index, step)
    path.records.append(rec)
    riders = runner.engine.riders
    if riders is not None:
        for rider in riders:
            if rec.status == "error":           # whose fault, a run alone tells
                rider.off = True
            while not rider.off and len(rider.lines) < len(rider.warnings):
                point, message = rider.warnings[len(rider.lines)]
                rider.lines.append(f"line {step.line}: {point}: {message}")
    if rec.status == "error":
        return True
    if rec.status == "skipped":
        return False
    stopped = session._after_step(runner, rec, path.warnings, max_pages, invariants)
    if stopped and riders is not None:
        for rider in riders:
            rider.off = True
    return stopped


def _own(scenario: Scenario, records: list[StepRecord]) -> list[StepRecord]:
    """The records of a shared path, each naming ``scenario``'s own step."""
    from .run import StepRecord

    return [StepRecord(r.index, scenario.steps[r.index], r.status, r.message, r.events, r.pages)
            for r in records]
