"""Breadth-first search over operation sequences, exhaustive within its bounds.

A *node* is one run in progress per policy (one for ``explore``, one per policy for
``diverge``, which runs them in lock step); a transition copies the node and takes one
step in every run.  The oracle judges every step, and what the end-of-run audit would
find if the run stopped there.  Nodes are deduplicated by the fingerprint of their
canonical form (:mod:`.canonical`), so each distinct state is expanded once; the
visited set keeps 8-byte fingerprints, the trace store a parent index and a step per
state, from which a witness is rebuilt.

The search goes level by level: every node at depth d is expanded, in a fixed order,
before any at d+1, so the first witness of anything is a shortest one, and the same
whatever ``-j``: a level's nodes are shared out between forked workers in contiguous
slices, and what they send back is merged in the sequential order (see
:mod:`.parallel`).
"""

from __future__ import annotations

import gc
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PluginError
from ..oracle import Violation
from ..run import Runner
from ..scenario.model import Step
from .canonical import fingerprint
from .space import Space
from .visited import FingerprintSet

Node = tuple[Runner, ...]


@dataclass(frozen=True)
class Verdict:
    """What one step showed under one policy: the violation classes seen (the step's,
    and the audit's had the run stopped there), each with the decision point asked
    last, and the pages copied by kind."""

    classes: frozenset[str]
    violations: tuple[Violation, ...]
    point: str
    copies: tuple[tuple[str, int], ...] = ()
    #: a live short-term read-only FOLL_PIN holds the shared zero page (``--ignore known``)
    pins_zero_page: bool = False


@dataclass
class Stats:
    """The search's statistics, TLC's way."""

    generated: int = 0            # transitions taken
    distinct: int = 0             # states found (the start states included)
    depth: int = 0                # deepest level expanded
    frontier: int = 0             # states waiting at the last level reached
    elapsed: float = 0.0
    exhaustive: bool = True
    stopped: str = ""             # why the search stopped early, if it did
    left: int = 0                 # states left unexpanded by the stop
    visited_bytes: int = 0
    hidden: int = 0               # violations hidden by --ignore or --baseline
    split: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.distinct / self.elapsed if self.elapsed else 0.0

    def describe_stop(self) -> str:
        if self.exhaustive:
            return f"exhaustive to depth {self.depth}"
        if not self.left:
            return self.stopped
        return f"not exhaustive: {self.stopped} left {self.left:,} states"


class Trace:
    """Parent pointers: for every state, the state it was reached from and the step (a
    :class:`Step`, or its text where only the text came back from a worker)."""

    def __init__(self) -> None:
        self.parents = array("q")
        self.steps: list[Step | str] = []

    def add(self, parent: int, step: Step | str) -> int:
        self.parents.append(parent)
        self.steps.append(step)
        return len(self.parents) - 1

    def path(self, gid: int) -> tuple[int, list[str]]:
        """(the start state it began from, the steps' lines from it to state ``gid``)."""
        root, steps = self.path_steps(gid)
        return root, [s if isinstance(s, str) else s.text for s in steps]

    def path_steps(self, gid: int) -> tuple[int, list[Step | str]]:
        steps = []
        while self.parents[gid] >= 0:
            steps.append(self.steps[gid])
            gid = self.parents[gid]
        steps.reverse()
        return gid, steps


def weight(node: Node) -> int:
    """What keeping a state in memory costs, counted in pages (see :attr:`Search.keep`)."""
    return sum(4 + len(r.engine.machine.pages) for r in node)


def rebuild(base: dict[int, Node], parents: Callable[[int], tuple[int, Step]], gid: int,
            metrics: Sequence[str] = ()) -> Node:
    """The state ``gid``, taken again from the nearest kept ancestor in ``base``: a
    frontier too large to keep in memory keeps only the way to each state."""
    steps = []
    while gid not in base:
        gid, step = parents(gid)
        steps.append(step)
    node = base[gid]
    for depth, step in enumerate(reversed(steps), 1):
        node = take(node, step, depth, metrics)[0]
    return node


def audit(runner: Runner) -> list[Violation]:
    """What the end-of-run audit would find if the run stopped now (changes nothing)."""
    o = runner.oracle
    seen, line, n = o._seen, o._line, len(o.violations)
    o._seen, o._line = set(), None
    try:
        processes = runner.engine.machine.processes
        for pid in o.space:
            if processes[pid].alive:
                o._audit(pid)
        return o.violations[n:]
    finally:
        del o.violations[n:]
        o._seen, o._line = seen, line


def take(node: Node, step: Step, index: int, copy_metrics: Sequence[str] = ()) -> tuple[Node, tuple[Verdict, ...]]:
    """Copy ``node`` and take ``step`` in each of its runs; the new node and the verdicts."""
    out = []
    verdicts = []
    for runner in node:
        r = runner.copy()
        o = r.oracle
        o.violations, o._seen = [], set()
        before = [r.engine.metrics[m] for m in copy_metrics] if copy_metrics else ()
        rec = r.step(index, step)
        if rec.status == "error":
            raise PluginError(f"after '{step.text}': {rec.message}")
        # the audit's findings that were there before this step are not this step's
        audited = audit(r)
        stale = runner.oracle.audited
        o.audited = frozenset((v.cls, v.detail) for v in audited) if audited else frozenset()
        found = o.violations + ([v for v in audited if (v.cls, v.detail) not in stale] if stale else audited)
        out.append(r)
        if not found and not copy_metrics:
            verdicts.append(_QUIET)                 # the common case: nothing to tell
            continue
        copies = tuple((m, r.engine.metrics[m] - b) for m, b in zip(copy_metrics, before))
        zero_pin = False
        if found:
            m = r.engine.machine
            zero_pin = any(g.pin and not g.write and not g.longterm and m.zero_pfn in g.pfns
                           for g in m.refs.values())
        verdicts.append(Verdict(frozenset(v.cls for v in found), tuple(found),
                                r.engine.last_point or "-", copies, zero_pin))
    return tuple(out), tuple(verdicts)


#: the verdict of a step that showed nothing, copies not asked for
_QUIET = Verdict(frozenset(), (), "-")


Judge = Callable[[int, str, tuple[Verdict, ...], int], bool]


def has_violation(verdicts: tuple[Verdict, ...]) -> bool:
    return bool(verdicts[0].classes)


@dataclass
class Search:
    """One breadth-first search from ``roots`` (start nodes), asking ``judge(parent,
    step, verdicts, depth)`` of every transition that is ``interesting``; it returns True
    to stop the search at the end of this level (``diverge`` stops at its first finding)."""

    space: Space
    roots: list[Node]
    judge: Judge
    interesting: Callable[[tuple[Verdict, ...]], bool] = has_violation
    copy_metrics: tuple[str, ...] = ()
    progress: Callable[[Stats], None] | None = None
    jobs: int = 1
    #: how much of a level is kept in memory, in pages (a state weighs its pages, and 4
    #: for the rest: some kilobytes for a state of base pages, hundreds for a THP's);
    #: past that, a state is taken again from its nearest kept ancestor when its turn comes
    keep: int = 1_000_000
    trace: Trace = field(default_factory=Trace)
    stats: Stats = field(default_factory=Stats)
    _workers: Any = None
    _base: dict[int, Node] = field(default_factory=dict)

    def run(self) -> Stats:
        # States are acyclic garbage: reference counting frees them, and a collector
        # walking a frontier of millions of objects would cost more than the search.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if self._workers is not None:
                self._workers.close()
                self._workers = None
            if enabled:
                gc.enable()

    def _run(self) -> Stats:
        st = self.stats
        start = time.perf_counter()
        visited = FingerprintSet()
        frontier: list[tuple[int, Node | None]] = []
        self._base = {}
        for node in self.roots:
            if visited.add(fingerprint(node)):
                gid = self.trace.add(-1, "")
                self._base[gid] = node
                frontier.append((gid, node))
        st.distinct = len(frontier)
        bounds = self.space.bounds
        stop = False
        for depth in range(1, bounds.depth + 1):
            if not frontier or stop:
                break
            st.frontier = len(frontier)
            parallel = self._workers is not None or (self.jobs > 1 and len(frontier) >= 64)
            level = self._expand_parallel if parallel else self._expand
            frontier, stop, cut = level(frontier, depth, visited, start)
            st.depth = depth
            st.frontier = len(frontier)
            if cut:
                st.exhaustive = False
                break
            if self.progress is not None:
                st.elapsed = time.perf_counter() - start
                self.progress(st)
        st.elapsed = time.perf_counter() - start
        st.visited_bytes = visited.nbytes
        return st

    def _limits_hit(self, start: float) -> str:
        b = self.space.bounds
        if b.max_states and self.stats.distinct >= b.max_states:
            return f"--max-states {b.max_states:,} reached at depth {self.stats.depth + 1}:"
        if b.time and time.perf_counter() - start >= b.time:
            return f"--time {b.time:g}s ran out at depth {self.stats.depth + 1}:"
        return ""

    def _expand(self, frontier: list[tuple[int, Node]], depth: int, visited: FingerprintSet,
                start: float) -> tuple[list[tuple[int, Node]], bool, bool]:
        st = self.stats
        nxt: list[tuple[int, Node]] = []
        stop = False
        space, metrics, judge = self.space, self.copy_metrics, self.judge
        interesting = self.interesting
        trace = self.trace
        room = self.keep

        def parent(gid: int) -> tuple[int, Step]:
            return trace.parents[gid], trace.steps[gid]  # type: ignore[return-value]

        for n, (gid, node) in enumerate(frontier):
            if node is None:
                node = rebuild(self._base, parent, gid, metrics)
            if n % 64 == 0 and n:
                why = self._limits_hit(start)
                if why:
                    st.stopped, st.left = why, len(frontier) - n + len(nxt)
                    return nxt, True, True
                if self.progress is not None:
                    st.elapsed = time.perf_counter() - start
                    st.frontier = len(frontier) - n
                    self.progress(st)
            for step in space.steps(node[0], depth):
                child, verdicts = take(node, step, depth, metrics)
                st.generated += 1
                if interesting(verdicts) and judge(gid, step.text, verdicts, depth):
                    st.exhaustive, st.stopped = False, "stopped at the first finding"
                    return nxt, True, False       # the first in the sequential order
                if visited.add(fingerprint(child)):
                    st.distinct += 1
                    room -= weight(child)
                    nxt.append((trace.add(gid, step), child if room >= 0 else None))
        return nxt, stop, False

    def _expand_parallel(self, frontier: list[tuple[int, Node]], depth: int, visited: FingerprintSet,
                         start: float) -> tuple[list[tuple[int, Node]], bool, bool]:
        from .parallel import Workers
        if self._workers is None:
            trace = self.trace
            materialized = [(gid, node if node is not None else rebuild(
                self._base, lambda g: (trace.parents[g], trace.steps[g]), gid, self.copy_metrics))  # type: ignore[return-value]
                for gid, node in frontier]
            self._workers = Workers(self, materialized)
        return self._workers.level(depth, visited, start)
