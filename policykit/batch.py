"""Running many scenarios under one policy, taking the steps they begin with once.

Scenarios begin alike: every cow.c-style scenario sets up its memory variant with the
same lines before its test starts, and a run follows from its steps alone (pfns, pids
and written values are handed out in order).  :func:`run_batch` arranges the scenarios
in a trie of their steps -- two steps are the same when their text and their line are,
so that every message that names a line is true of each scenario -- takes each step of
the trie once, and snapshots the run (:meth:`Runner.branch`) where scenarios part.
Each scenario gets the result :meth:`Session.run` gives it alone; a run that would pass
its time limit is run alone again, so that the limit is measured on that run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

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
    results: list[RunResult | None] = [None] * len(scenarios)
    alone: list[int] = []

    def done(i: int, path: _Path) -> None:
        results[i] = result = session._result(scenarios[i], path.runner, _own(scenarios[i], path.records),
                                              path.warnings)
        if on_result is not None:
            on_result(i, result)

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
        start = _Path(session.start(), [], [], 0.0)
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
    for i in alone:                     # out of time somewhere on the way: alone, as it would be
        results[i] = session.run(scenarios[i], invariants=invariants, timeout=timeout, max_pages=max_pages)
        if on_result is not None:
            on_result(i, results[i])  # type: ignore[arg-type]
    return results  # type: ignore[return-value]


def _take(session: Session, path: _Path, step: Step, index: int, max_pages: int | None,
          invariants: bool) -> bool:
    """Take ``step`` on the path as :meth:`Session.run` does; True when the run stops."""
    runner = path.runner
    rec = runner.step(index, step)
    path.records.append(rec)
    if rec.status == "error":
        return True
    if rec.status == "skipped":
        return False
    return session._after_step(runner, rec, path.warnings, max_pages, invariants)


def _own(scenario: Scenario, records: list[StepRecord]) -> list[StepRecord]:
    """The records of a shared path, each naming ``scenario``'s own step."""
    from .run import StepRecord

    return [StepRecord(r.index, scenario.steps[r.index], r.status, r.message, r.events, r.pages)
            for r in records]
