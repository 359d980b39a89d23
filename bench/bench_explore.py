"""How fast explore searches, and what its visited set and frontier cost.

Run:  python bench/bench_explore.py            (a few minutes)
      python bench/bench_explore.py --depth8   (adds the depth-8 search: many minutes)
Floors (issue #9):
  * >= 10,000 new distinct states/s (~40,000 transitions/s) on one core: core
    operations, linux-6.x, 2 processes x 2 pages; printed with the per-transition split
    on the deepest level (next steps, restore, apply, oracle, canonical form + hash);
  * 2 processes x 1 page x depth 6, exhaustive: <= 30 s on this 2-core machine;
    depth 8: <= 10 min;
  * the visited set <= 64 bytes a state (the frontier's cost printed apart).
POLICYKIT_BENCH_QUICK=1 runs everything small (the test suite does, to see it runs).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import time
import tracemalloc

from policykit import load_policy
from policykit.explore import Bounds, Space, starts
from policykit.explore.canonical import fingerprint
from policykit.explore.search import Search, audit, take
from policykit.explore.visited import FingerprintSet
from policykit.parallel import default_jobs
from policykit.run import Session

QUICK = bool(os.environ.get("POLICYKIT_BENCH_QUICK"))
POLICY = "linux-6.x"


def search(session: Session, bounds: Bounds, jobs: int = 1) -> Search:
    space = Space.build(session.registry, bounds, policies=[session.policy])
    s = Search(space, [st.node for st in starts([session], bounds)], lambda *a: False, jobs=jobs)
    s.run()
    return s


def one_core(session: Session) -> None:
    depth = 3 if QUICK else 4
    s = search(session, Bounds(procs=2, pages=2, depth=depth))
    st = s.stats
    print(f"one core, 2 processes x 2 pages, depth {depth}: {st.distinct:,} states, {st.generated:,} transitions "
          f"in {st.elapsed:.2f} s")
    rate = st.distinct / st.elapsed
    print(f"  {rate:10,.0f} new distinct states/s   "
          + (f"(floor >= 10,000: {'met' if rate >= 10_000 else 'NOT met'})" if not QUICK else "(quick run: no floor)"))
    print(f"  {st.generated / st.elapsed:10,.0f} transitions/s          (~40,000 wanted)")
    split(session, Bounds(procs=2, pages=2, depth=depth))


def split(session: Session, bounds: Bounds) -> None:
    """The time of a transition, part by part, on the deepest level (where the search
    spends most of its time): the steps of every 8th state of the level before it."""
    space = Space.build(session.registry, bounds, policies=[session.policy])
    timed = {"next steps": 0.0, "restore": 0.0, "apply": 0.0, "oracle": 0.0, "canonical form + hash": 0.0}
    registry = session.registry
    original = dict(registry.operations)
    clock = time.perf_counter

    def wrap(fn):  # type: ignore[no-untyped-def]
        def apply(engine, args):  # type: ignore[no-untyped-def]
            t = clock()
            try:
                return fn(engine, args)
            finally:
                timed["apply"] += clock() - t
        return apply

    frontier = [st.node for st in starts([session], bounds)]
    visited = FingerprintSet()
    gc.disable()
    try:
        for depth in range(1, bounds.depth):            # the levels before, untimed
            nxt = []
            for node in frontier:
                for step in space.steps(node[0], depth):
                    child = take(node, step, depth)[0]
                    if visited.add(fingerprint(child)):
                        nxt.append(child)
            frontier = nxt
        registry.operations.update({n: dataclasses.replace(s, apply=wrap(s.apply)) for n, s in original.items()})
        n = 0
        for node in frontier[::8]:
            t = clock()
            steps = space.steps(node[0], bounds.depth)
            timed["next steps"] += clock() - t
            # as the search takes them: a state's copies together, then its steps, then
            # the children's fingerprints (search.BATCH_PAGES: about all of them, for
            # states this small)
            t = clock()
            copies = [node[0].copy(fresh=True) for _ in steps]
            timed["restore"] += clock() - t
            for r, step in zip(copies, steps):
                t = clock()
                before = timed["apply"]
                r.step(bounds.depth, step)
                audit(r)
                timed["oracle"] += (clock() - t) - (timed["apply"] - before)
            t = clock()
            for r in copies:
                visited.add(fingerprint((r,)))
            timed["canonical form + hash"] += clock() - t
            n += len(steps)
    finally:
        gc.enable()
        registry.operations.clear()
        registry.operations.update(original)
    total = sum(timed.values())
    print(f"  a transition at depth {bounds.depth}, {total / n * 1e6:.1f} us measured part by part ({n:,} "
          "transitions, twins taken too): " + ", ".join(f"{k} {v / n * 1e6:.1f} us ({v / total:.0%})"
                                                     for k, v in timed.items()))
    hot(space, bounds.depth, frontier[::8][:300], timed["restore"] / n, timed["canonical form + hash"] / n)


def hot(space: Space, depth: int, nodes: list, restore: float, canonical: float) -> None:
    """The same restore and canonical form, each repeated on one state at a time (a
    parent's copy; the form of its first child): what they cost with that state and
    their code in the caches, beside what the search pays for them (its canonical
    form's figure includes the visited set's insert)."""
    clock = time.perf_counter
    reps = 2 if QUICK else 20
    copying = hashing = 0.0
    gc.disable()
    nodes = [node for node in nodes if space.steps(node[0], depth)]     # (some have none)
    try:
        for node in nodes:
            r = node[0]
            child = take(node, space.steps(r, depth)[0], depth)[0]
            t = clock()
            for _ in range(reps):
                r.copy()
            t1 = clock()
            for _ in range(reps):
                fingerprint(child)
            copying += t1 - t
            hashing += clock() - t1
    finally:
        gc.enable()
    k = len(nodes) * reps
    print(f"  the same, repeated on one state at a time ({len(nodes)} states x {reps}): restore "
          f"{copying / k * 1e6:.1f} us (search {restore * 1e6:.1f}), canonical form + hash "
          f"{hashing / k * 1e6:.1f} us (search {canonical * 1e6:.1f}, with the visited set): the difference is "
          "what the other parts, in between, cost the caches")


def exhaustive(session: Session, depth: int, floor: float) -> None:
    jobs = default_jobs()
    s = search(session, Bounds(procs=2, pages=1, depth=depth), jobs)
    st = s.stats
    print(f"2 processes x 1 page, depth {depth}, exhaustive, -j {jobs}: {st.distinct:,} states, "
          f"{st.generated:,} transitions in {st.elapsed:.1f} s ({st.distinct / st.elapsed:,.0f} states/s); "
          + (f"floor <= {floor:g} s: {'met' if st.elapsed <= floor else 'NOT met'}" if not QUICK
             else "(quick run: no floor)"))


def memory(session: Session) -> None:
    depth = 3 if QUICK else 4
    bounds = Bounds(procs=2, pages=1, depth=depth)
    s = search(session, bounds)
    table = s.stats.visited_bytes
    print(f"visited set: {table / s.stats.distinct:.1f} bytes/state in its table ({s.stats.distinct:,} states; "
          + (f"floor <= 64: {'met' if table / s.stats.distinct <= 64 else 'NOT met'}" if not QUICK
             else "quick run: no floor") + "); the trace store "
          f"(parent and step position of each state) "
          f"{(s.trace.parents.itemsize + s.trace.index.itemsize):d} bytes/state more")
    # the frontier: states of one level, measured on their own
    space = Space.build(session.registry, bounds)
    level = [starts([session], bounds)[0].node]
    for d in range(1, 4):
        level = [take(n, step, d)[0] for n in level for step in space.steps(n[0], d)][:2000]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = [tuple(r.copy() for r in n) for n in level]
    size = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del kept
    print(f"frontier: {size / len(level):,.0f} bytes/state kept in memory (a machine and an oracle; "
          f"{len(level):,} states at depth 3); past Search.keep pages' worth a level keeps only the "
          f"way to each (taken again when expanded)")
    # what taking states again costs: the same search keeping 100 pages' worth a level
    t = time.perf_counter()
    lean = Search(space, [st.node for st in starts([session], bounds)], lambda *a: False, keep=100)
    lean.run()
    print(f"  depth {depth} keeping every state: {s.stats.elapsed:.2f} s; keeping 100 pages' worth: "
          f"{time.perf_counter() - t:.2f} s (same {lean.stats.distinct:,} states)")


def main() -> int:
    session = Session(load_policy(POLICY))
    print(f"policy {POLICY}, core operations: {Space.build(session.registry, Bounds()).describe_ops()}")
    one_core(session)
    exhaustive(session, 3 if QUICK else 6, 30.0)
    if "--depth8" in sys.argv[1:] and not QUICK:
        exhaustive(session, 8, 600.0)
    memory(session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
