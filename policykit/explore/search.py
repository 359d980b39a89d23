"""Breadth-first search over operation sequences, exhaustive within its bounds.

A *node* is one run in progress per policy (one for ``explore``, one per policy for
``diverge``, which runs them in lock step); a transition copies the node and takes one
step in every run.  The oracle judges every step, and what the end-of-run audit would
find if the run stopped there.  Nodes are deduplicated by the fingerprint of their
canonical form (:mod:`.canonical`), so each distinct state is expanded once; the
visited set keeps 8-byte fingerprints, the trace store a parent and a step position per
state, from which a witness is taken again.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PluginError
from ..oracle import Violation
from ..run import Runner, Session, _resolve
from ..scenario.model import Step
from .canonical import fingerprint, plugins_keep_state, renames_freely
from .space import Space
from .visited import FingerprintSet

if TYPE_CHECKING:
    from ..engine.mm import Engine

#: one run per policy; None for a policy riding along the first run (see :func:`ride`)
Node = tuple[Runner | None, ...]


@dataclass(frozen=True)
class Verdict:
    """What one step showed under one policy: the violation classes seen (the step's,
    and the audit's had the run stopped there), the decision point that led to them
    (:func:`led_to`), and the pages copied by kind."""

    classes: frozenset[str]
    violations: tuple[Violation, ...]
    point: str
    copies: tuple[tuple[str, int], ...] = ()
    #: a live short-term read-only FOLL_PIN holds the shared zero page (``--ignore known``)
    pins_zero_page: bool = False

    def brief(self) -> Verdict:
        """The verdict without its violations' text: what a search judges by."""
        return Verdict(self.classes, (), self.point, self.copies, self.pins_zero_page) if self.violations else self


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
    """How every state was reached: its parent and the position of the step in the
    parent's enumeration (10 bytes a state; a start state has parent -1).  The steps
    themselves are found again by taking the way from the start (:meth:`Search.path`)."""

    def __init__(self) -> None:
        self.parents = array("q")
        self.index = array("H")

    def add(self, parent: int, index: int) -> int:
        self.parents.append(parent)
        self.index.append(index)
        return len(self.parents) - 1

    def chain(self, gid: int) -> tuple[int, list[int]]:
        """(the start state's id, the step positions from it to state ``gid``)."""
        out = []
        while self.parents[gid] >= 0:
            out.append(self.index[gid])
            gid = self.parents[gid]
        out.reverse()
        return gid, out


def weight(node: Node) -> int:
    """What keeping a state in memory costs, counted in pages (see :attr:`Search.keep`)."""
    return sum(4 + len(r.engine.machine.pages) for r in node if r is not None)


def replay_way(space: Space, node: Node, way: Sequence[int], depth: int = 0,
               metrics: Sequence[str] = ()) -> tuple[Node, list[Step]]:
    """Take again, from ``node`` at ``depth``, the steps at positions ``way`` of each
    state's enumeration (``node`` itself is left as it is): the state reached, the steps."""
    steps = []
    for depth, idx in enumerate(way, depth + 1):
        step = space.steps(node[0], depth)[idx]
        node = take(node, step, depth, metrics)[0]
        steps.append(step)
    return node, steps


def rebuild(space: Space, base: dict[int, tuple[Node, int]], ways: Callable[[int], tuple[int, int]],
            gid: int, metrics: Sequence[str] = ()) -> Node:
    """The state ``gid``, taken again from its nearest ancestor kept in ``base`` (id ->
    (state, depth)); ``ways(gid)`` gives a state's parent and step position."""
    way = []
    while gid not in base:
        gid, idx = ways(gid)
        way.append(idx)
    node, depth = base[gid]
    return replay_way(space, node, way[::-1], depth, metrics)[0]


def audit(runner: Runner) -> list[Violation]:
    """What the end-of-run audit would find if the run stopped now (changes nothing)."""
    o = runner.oracle
    engine = runner.engine
    processes, pages = engine.machine.processes, engine.machine.pages
    # the common case, first: every live page shows its cell's current value
    for pid, space in o.space.items():
        proc = processes[pid]
        if not proc.alive:
            continue
        ptes = proc.mm.ptes
        for vpn, cell in space.items():
            pte = ptes.get(vpn)
            seen = pages[pte.pfn].content if pte is not None and pte.present else engine.peek(pid, vpn)
            if seen != cell.tokens[-1]:
                return _audit(runner)
    return []


def _audit(runner: Runner) -> list[Violation]:
    """:func:`audit`, the oracle's way, when some page shows another value."""
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


def take(node: Node, step: Step, index: int, copy_metrics: Sequence[str] = (),
         in_place: bool = False, copy: Node | None = None) -> tuple[Node, tuple[Verdict, ...]]:
    """Copy ``node`` (or, ``in_place``, use it up; or take ``copy``, one made ahead of
    it) and take ``step`` in each of its runs; the new node and the verdicts.
    A policy whose place in the node is None rides along the first run (:func:`ride`):
    its verdict is that run's; if it answers otherwise at a decision of this step, it
    takes the step again alone, from the state before it."""
    first = node[0]
    riding = first.engine.riders is not None
    if not riding and len(node) == 1:           # explore's node: one run
        child, verdict = _take_one(first, first if in_place else copy[0] if copy else None, step, index,
                                   copy_metrics)
        return (child,), (verdict,)
    out: list[Runner | None] = [None] * len(node)
    verdicts: list[Verdict | None] = [None] * len(node)
    for k, runner in enumerate(node):
        if runner is not None:
            mine = copy[k] if copy else runner if in_place and not riding else None
            out[k], verdicts[k] = _take_one(runner, mine, step, index, copy_metrics)
    if riding:
        stepped = out[0]
        riders = stepped.engine.riders  # type: ignore[union-attr]
        for rider in riders:  # type: ignore[union-attr]
            if rider.off:                       # from here on, alone
                alone = first.copy_for(rider.session, fresh=True)
                out[rider.index], verdicts[rider.index] = _take_one(first, alone, step, index, copy_metrics)
            else:
                verdicts[rider.index] = verdicts[0]
        if any(rider.off for rider in riders):  # type: ignore[union-attr]
            stepped.engine.riders = [r for r in riders if not r.off] or None  # type: ignore[union-attr]
    return tuple(out), tuple(verdicts)  # type: ignore[arg-type]


def _take_one(runner: Runner, r: Runner | None, step: Step, index: int,
              copy_metrics: Sequence[str]) -> tuple[Runner, Verdict]:
    """Take ``step`` on ``r`` (a copy of ``runner`` made here when None; ``runner``
    itself to use it up), judged against ``runner``'s audit; the run and its verdict."""
    if r is None:
        r = runner.copy(fresh=True)
    o = r.oracle
    if r is runner:
        o.violations, o._seen = [], set()
    metrics = r.engine.metrics
    decisions = metrics["decisions"]
    before = [metrics[m] for m in copy_metrics] if copy_metrics else ()
    rec = r.step(index, step)
    if rec.status == "error":
        raise PluginError(f"after '{step.text}': {rec.message}")
    # what the audit found before this step is not this step's: nor is the same wrong
    # value seen again, where it was (exit's and munmap's own audit) or elsewhere (a
    # device reading it through another reference, a child forked after it)
    audited = audit(r)
    stale = runner.oracle.audited
    o.audited = frozenset(map(_seen_again, audited)) if audited else _NOTHING
    if stale:
        found = [v for v in o.violations if _seen_again(v) not in stale] + \
            [v for v in audited if _seen_again(v) not in stale]
    else:
        found = o.violations + audited
    if not found and not copy_metrics:
        return r, _QUIET                        # the common case: nothing to tell
    copies = tuple((m, metrics[m] - b) for m, b in zip(copy_metrics, before))
    zero_pin = False
    point = "-"
    if found:
        m = r.engine.machine
        zero_pin = any(g.pin and not g.write and not g.longterm and m.zero_pfn in g.pfns
                       for g in m.refs.values())
        point = led_to(r.engine, decisions, step_pages(r, step))
    return r, Verdict(frozenset(v.cls for v in found), tuple(found), point, copies, zero_pin)


def _seen_again(v: Violation) -> tuple[str, str, str]:
    """What tells a violation from one already there: the wrong value seen and the value
    that should have been, in its class (where it was seen, for one without values)."""
    return (v.cls, v.seen, v.expected) if v.seen else (v.cls, v.detail, "")


def step_pages(runner: Runner, step: Step) -> list[int]:
    """The pages (pfns) ``step`` works on in ``runner``'s state: its references', and
    those its process maps in its regions (all it maps, for a step naming no region)."""
    m = runner.engine.machine
    spec = runner.session.registry.operations[step.op]
    args = _resolve(step, spec, runner.pids, runner.bases, runner.rids)
    pfns: list[int] = []
    ptes = None
    vpns: list[int] = []
    regions = False
    for param in spec.params:
        if param.kind == "ref":
            g = m.refs.get(args[param.name][0])
            if g is not None:
                pfns.extend(g.pfns)
        elif param.kind == "process":
            ptes = m.processes[args[param.name]].mm.ptes
        elif param.kind == "region":
            regions = True
            vpns.extend(args[param.name])
    if ptes is not None:
        pfns.extend(e.pfn for e in (map(ptes.get, vpns) if regions else ptes.values())
                    if e is not None and e.present)
    return pfns


def led_to(engine: Engine, decisions: int, pages: Sequence[int]) -> str:
    """The decision point that led to what a step showed: the last one the step asked
    itself (``decisions``: the engine's count before it); for a step that asked none (a
    device access, a read), the last one asked about a page it works on (``pages``, as
    :func:`step_pages` finds them after it); "-" when none was.  Not the last one asked
    anywhere: a decision about another page, in between, led to nothing."""
    if engine.metrics["decisions"] != decisions:
        return engine.last_point or "-"
    decided = engine.decided
    if not decided:
        return "-"
    last = max((decided[pfn] for pfn in pages if pfn in decided), default=None)
    return last[1] if last is not None else "-"


def transitions(node: Node, steps: Sequence[Step], depth: int, copy_metrics: Sequence[str] = (),
                use_up: bool = False) -> Iterator[Taken]:
    """Take each of ``steps`` from ``node`` (``use_up``: the last may use the state
    up): yields (position, step, the state reached, its verdicts, None).  A step that
    repeats an earlier twin whose run consulted none of the flags they differ in (see
    :class:`.space.Steps`; the nearest such twin) is not taken: it yields (position,
    step, None, the twin's verdicts, the twin's position) -- the twin's state, already
    seen, as the step would have reached it.  (Nor, differing in FOLL_LONGTERM, a twin
    whose run made a short-term R/O pin of the zero page: FOLL_LONGTERM tells that one
    apart.)  A device read, which changes nothing, is judged on the node's state itself
    where it can be (:func:`_reads_alone`): (position, step, None, its verdicts,
    :data:`SAME`)."""
    twin = getattr(steps, "twin", None)
    differ = getattr(steps, "differ", None)
    probed = getattr(steps, "probed", ())
    # a plain call's position -> (its verdicts, the flags its run consulted, whether it
    # pinned the zero page R/O)
    plain: dict[int, tuple[tuple[Verdict, ...], set[str], bool]] = {}
    last = len(steps) - 1 if use_up else -1
    reads_alone = None
    ahead = _Ahead(node, steps, twin, last) if len(steps) > 1 else None
    for i, step in enumerate(steps):
        if twin is not None and (near := twin[i]) is not None and \
                (j := _repeated(near, differ[i], plain)) is not None:  # type: ignore[index]
            yield i, step, None, plain[j][0], j
            continue
        if step.op in _READ_ONLY:
            if reads_alone is None:
                reads_alone = _reads_alone(node)
            if reads_alone:
                yield i, step, None, (_judge_in_place(node[0], step, depth, copy_metrics),), SAME
                continue
        copy = ahead.pop(i) if ahead is not None else None
        if i not in probed:
            child, verdicts = take(node, step, depth, copy_metrics, i == last, copy)
            yield i, step, child, verdicts, None
            continue
        probe: set[str] = set()
        firsts = [r.engine.machine.next_rid if r is not None else 0 for r in node]
        if copy is not None:
            for r in copy:
                if r is not None:
                    r.engine.foll_probe = probe
            child, verdicts = take(node, step, depth, copy_metrics, False, copy)
        else:
            for r in node:
                if r is not None:
                    r.engine.foll_probe = probe
            try:
                child, verdicts = take(node, step, depth, copy_metrics, i == last)
            finally:
                for r in node:
                    if r is not None:
                        r.engine.foll_probe = None
        for r in child:
            if r is not None:
                r.engine.foll_probe = None
        if "zap_race_same" in probe:            # the same but for a page's number: the
            probe.discard("zap_race_same")      # same state where numbers are renamed
            if not all(renames_freely(r) for r in child if r is not None):
                probe.add("zap_race")
        plain[i] = (verdicts, probe, _pins_zero_page(firsts, child))
        yield i, step, child, verdicts, None


#: how much a state's steps hold at once beyond the state, in pages (see :func:`weight`):
#: the copies made ahead for them (:class:`_Ahead`), the children waiting for their
#: fingerprints (:func:`fingerprinted`).  About half a megabyte, within a core's cache:
#: every step of a small state, one at a time for a 2 MiB THP's (at 4,096, seven THP
#: copies pushed each other out and explore --variants thp ran 19% slower)
BATCH_PAGES = 512


class _Ahead:
    """The copies of a node that its steps will surely be taken on, made a batch at a
    time before they are taken: a copy costs less beside the others than between two
    steps, where the other parts of a transition have the caches.  Not for a twin,
    which may be left out, a device read, which may be judged in place, nor the last
    step, which may use the state up."""

    __slots__ = ("node", "wanted", "made", "batch")

    def __init__(self, node: Node, steps: Sequence[Step], twin: Sequence[Any] | None, last: int) -> None:
        self.node = node
        self.wanted = [(twin is None or twin[i] is None) and i != last and step.op not in _READ_ONLY
                       for i, step in enumerate(steps)]
        self.made: dict[int, Node] = {}
        self.batch = max(1, BATCH_PAGES // weight(node))

    def pop(self, i: int) -> Node | None:
        """The copy for step ``i`` (the next batch's made first); None for a step left
        to :func:`take`."""
        if not self.wanted[i]:
            return None
        made = self.made
        copy = made.pop(i, None)
        if copy is None:
            wanted, node, n = self.wanted, self.node, self.batch
            for k in range(i, len(wanted)):
                if wanted[k]:
                    made[k] = tuple([r.copy(fresh=True) if r is not None else None for r in node])
                    n -= 1
                    if not n:
                        break
            copy = made.pop(i)
        return copy


#: what :func:`transitions` yields: (position, step, the state reached, its verdicts, the
#: position of the twin whose state it is); :func:`fingerprinted` adds its fingerprint
Taken = tuple[int, Step, Node | None, tuple[Verdict, ...], int | None]
Fingerprinted = tuple[int, Step, Node | None, tuple[Verdict, ...], int | None, int | None]


def fingerprinted(taken: Iterable[Taken], own: Callable[[tuple[Verdict, ...]], bool] | None = None,
                  node: Node | None = None) -> Iterator[Fingerprinted]:
    """:func:`transitions`' ``taken``, in order, each with the fingerprint of the state
    it reached (None for a twin's or its parent's own): the fingerprints are taken a
    batch of children at a time (up to :data:`BATCH_PAGES`), after their steps, where
    they cost less than between two steps.  ``own``: a step whose state is its parent's
    (:data:`SAME`) with verdicts ``own`` says yes to gets the fingerprint of ``node``,
    taken before a later step may use it up."""
    held: list[Fingerprinted] = []
    room = BATCH_PAGES
    for i, step, child, verdicts, twin in taken:
        if child is None:
            mine = own is not None and twin == SAME and own(verdicts)
            held.append((i, step, child, verdicts, twin, fingerprint(node) if mine else None))  # type: ignore[arg-type]
            continue
        held.append((i, step, child, verdicts, twin, None))
        room -= weight(child)
        if room < 0:
            yield from _fingerprint_all(held)
            held, room = [], BATCH_PAGES
    yield from _fingerprint_all(held)


def _fingerprint_all(held: list[Fingerprinted]) -> Iterator[Fingerprinted]:
    for i, step, child, verdicts, twin, fp in held:
        yield i, step, child, verdicts, twin, fingerprint(child) if child is not None else fp


def _repeated(near: Sequence[int], differ: Sequence[frozenset[str]],
              plain: dict[int, tuple[tuple[Verdict, ...], set[str], bool]]) -> int | None:
    """The nearest of a step's twins (``near``, each ``differ`` apart) already taken
    whose run consulted none of the flags they differ in (nor, apart in FOLL_LONGTERM,
    pinned the zero page R/O): the step repeats it.  None when there is none."""
    for j, d in zip(near, differ):
        seen = plain.get(j)
        if seen is not None and not (seen[1] & d) and not (seen[2] and "longterm" in d):
            return j
    return None


#: what :func:`transitions` yields for the position of a step's state that is its
#: parent's own
SAME = -1
#: core operations that change no state: a device reading through a reference
_READ_ONLY = frozenset({"dma_read"})


def _reads_alone(node: Node) -> bool:
    """Can a read-only step of ``node`` be judged on its state itself?  When it is one
    run, alone (no policy riding along), and no plugin keeps state in it (whose oracle
    checks might keep books on any step)."""
    if len(node) != 1:
        return False
    r = node[0]
    return not (r.engine.riders is not None or r.oracle.following or plugins_keep_state(r))


def _judge_in_place(runner: Runner, step: Step, index: int, copy_metrics: Sequence[str]) -> Verdict:
    """The verdict of a step that changes nothing (a device read), taken on ``runner``'s
    state itself rather than a copy: what :func:`_take_one` would say, with the run's
    violations, counters and place in the scenario as they were."""
    o = runner.oracle
    metrics = runner.engine.metrics
    kept = (o.violations, o._seen, o._step, o._line, o.audited, dict(metrics))
    try:
        _, verdict = _take_one(runner, runner, step, index, copy_metrics)
    finally:
        o.violations, o._seen, o._step, o._line, o.audited, counts = kept
        metrics.clear()
        metrics.update(counts)
    return verdict


def _pins_zero_page(firsts: Sequence[int], child: Node) -> bool:
    """Did the step to ``child`` take a R/O pin of the shared zero page (a reference id
    from ``firsts``, the next ids before it, up)?"""
    for first, c in zip(firsts, child):
        if c is None:
            continue
        m = c.engine.machine
        if any(g.rid >= first and g.pin and not g.write and m.zero_pfn in g.pfns for g in m.refs.values()):
            return True
    return False


def ride(sessions: Sequence[Session], node: Node) -> Node:
    """The start ``node`` (one run per session, at the same state) with every policy
    that can ride along the first's run doing so (:mod:`policykit.engine.riders`): its
    place becomes None, and each transition costs one run while they decide alike."""
    from ..batch import ride_groups, rider

    first = sessions[0]
    group = next(g for g in ride_groups(sessions) if g[0] == 0)
    if len(group) == 1:
        return node
    head = node[0].copy()
    head.engine.riders = [rider(sessions[k], first, k) for k in group[1:]]
    return tuple(head if k == 0 else None if k in group else r for k, r in enumerate(node))


#: the verdict of a step that showed nothing, copies not asked for
_QUIET = Verdict(frozenset(), (), "-")
_NOTHING: frozenset[tuple[str, str, str]] = frozenset()


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
    #: the start states, by id, at depth 0
    _base: dict[int, tuple[Node, int]] = field(default_factory=dict)
    #: start state id -> its position in ``roots``
    root_index: dict[int, int] = field(default_factory=dict)
    _paths: dict[int, tuple[int, list[str]]] = field(default_factory=dict)

    def path(self, gid: int) -> tuple[int, list[str]]:
        """(the position in ``roots`` of the start, the lines of the steps from it) of
        state ``gid``, found again by taking the way there."""
        hit = self._paths.get(gid)
        if hit is None:
            root, way = self.trace.chain(gid)
            node, depth = self._base[root]
            steps = replay_way(self.space, node, way, depth, self.copy_metrics)[1]
            if len(self._paths) > 4096:
                self._paths.clear()
            hit = self._paths[gid] = (self.root_index[root], [st.text for st in steps])
        return hit

    def _ways(self, gid: int) -> tuple[int, int]:
        return self.trace.parents[gid], self.trace.index[gid]

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
        for n, node in enumerate(self.roots):
            if visited.add(fingerprint(node)):
                gid = self.trace.add(-1, 0)
                self._base[gid] = (node, 0)
                self.root_index[gid] = n
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
        # the states of the last level are never expanded: none is kept
        room = self.keep if depth < space.bounds.depth else -1
        for n, (gid, node) in enumerate(frontier):
            if node is None:
                node = rebuild(space, self._base, self._ways, gid, metrics)
            if n % 64 == 0 and n:
                why = self._limits_hit(start)
                if why:
                    st.stopped, st.left = why, len(frontier) - n + len(nxt)
                    return nxt, True, True
                if self.progress is not None:
                    st.elapsed = time.perf_counter() - start
                    st.frontier = len(frontier) - n
                    self.progress(st)
            steps = space.steps(node[0], depth)
            # the last step may use the state up: nothing reads it after its level
            for i, step, child, verdicts, _, fp in fingerprinted(
                    transitions(node, steps, depth, metrics, gid not in self._base)):
                st.generated += 1
                if interesting(verdicts) and judge(gid, step.text, verdicts, depth):
                    st.exhaustive, st.stopped = False, "stopped at the first finding"
                    return nxt, True, False       # the first in the sequential order
                if child is not None and visited.add(fp):
                    st.distinct += 1
                    room -= weight(child)
                    nxt.append((trace.add(gid, i), child if room >= 0 else None))
        return nxt, stop, False

    def _expand_parallel(self, frontier: list[tuple[int, Node]], depth: int, visited: FingerprintSet,
                         start: float) -> tuple[list[tuple[int, Node]], bool, bool]:
        from .parallel import Workers
        if self._workers is None:
            materialized = [(gid, node if node is not None else rebuild(
                self.space, self._base, self._ways, gid, self.copy_metrics)) for gid, node in frontier]
            self._workers = Workers(self, materialized, depth - 1)
        return self._workers.level(depth, visited, start)
