"""Running many (policy, scenario) pairs on every CPU the process may use.

Runs are independent (each gets a fresh machine), so ``compare`` and ``score`` share
them out between forked workers, the way pytest-xdist shares tests: in chunks of
scenarios that begin alike, which :func:`policykit.batch.run_group` runs taking their
common first steps once, under every policy of a group at once where the others can
ride along the first's runs (:func:`policykit.batch.ride_groups`).  A worker sends back
what a comparison reads of a run -- verdict, violations, metrics, warnings, budgets,
rules -- not its step records.  Where ``fork()`` is missing, or with one job,
everything runs in this process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .batch import ride_groups, run_group
from .errors import PolicyKitError
from .run import RunResult, Session
from .scenario.model import Scenario

#: below this many runs a worker costs more than it saves
MIN_RUNS_PER_WORKER = 20


class WorkerError(PolicyKitError):
    """A worker process failed: a bug in policykit or a plugin."""

    exit_code = 3


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_pairs(sessions: Sequence[Session], scenarios: Sequence[Scenario], jobs: int | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> list[list[RunResult]]:
    """``results[s][i]``: ``scenarios[i]`` run under ``sessions[s]``, on up to ``jobs``
    processes (default: :func:`default_jobs`).  Each process runs chunks of scenarios
    that begin alike with :func:`policykit.batch.run_group`, which takes their first
    steps once, and once for the policies that can ride along each other's runs."""
    total = len(sessions) * len(scenarios)
    jobs = default_jobs() if jobs is None else jobs
    jobs = max(1, min(jobs, total // MIN_RUNS_PER_WORKER))
    if not hasattr(os, "fork"):
        jobs = 1
    groups = ride_groups(sessions)
    shares = _shares(len(groups), scenarios, jobs)
    results: list[list[Any]] = [[None] * len(scenarios) for _ in sessions]
    done = Counters(jobs)
    with _long_lived_frozen():
        workers = [(*_start(sessions, groups, scenarios, share, done, k), share)
                   for k, share in enumerate(shares[1:], 1)]
        try:
            for g, chunk in shares[0]:
                def told(k: int, n: int, result: RunResult, g: int = g, chunk: list[int] = chunk) -> None:
                    done.add(0)
                    if progress is not None:
                        progress(done.total(), total,
                                 f"{sessions[groups[g][k]].policy.name}: {scenarios[chunk[n]].name}")
                for k, runs in enumerate(_run_chunk(sessions, groups[g], scenarios, chunk, told)):
                    for i, result in zip(chunk, runs):
                        results[groups[g][k]][i] = result
            for (pid, reader, share), values in _gather(workers, done, total, progress):
                for (g, chunk), per_session in zip(share, values):
                    for s, compacts in zip(groups[g], per_session):
                        for i, compact in zip(chunk, compacts):
                            results[s][i] = _expand(compact, scenarios[i], sessions[s].policy.name)
            if progress is not None:
                progress(total, total, "")
        finally:
            for pid, reader, _ in workers:      # this process failed: stop the others
                stop_worker(pid, reader)
    return results


def _run_chunk(sessions: Sequence[Session], group: list[int], scenarios: Sequence[Scenario], chunk: list[int],
               on_result: Callable[[int, int, RunResult], None] | None) -> list[list[RunResult]]:
    """The scenarios of ``chunk`` under the sessions of ``group``, run together."""
    first = sessions[group[0]]
    return run_group([sessions[s] for s in group], [scenarios[i] for i in chunk], False, first.timeout,
                     first.max_pages, on_result)


def _shares(ngroups: int, scenarios: Sequence[Scenario], jobs: int) -> list[list[tuple[int, list[int]]]]:
    """What each process runs: chunks of (session group, scenario indices).  The
    scenarios go in the order of their steps, so that those that begin alike stay
    together, cut into chunks of about equal weight (the pages a scenario maps stand for
    its cost), a few per process for each group; each chunk goes to the process with the
    least weight so far, the heaviest first."""
    order = sorted(range(len(scenarios)), key=lambda i: [(st.text, st.line) for st in scenarios[i].steps])
    weight = [1 + sum(p for st in scn.steps if isinstance(p := st.params.get("pages"), int)) for scn in scenarios]
    if jobs == 1:
        return [[(g, order) for g in range(ngroups)]]
    target = sum(weight) / (_CHUNKS_PER_JOB * jobs)
    cuts: list[list[int]] = [[]]
    load = 0.0
    for i in order:
        if load >= target:
            cuts.append([])
            load = 0.0
        cuts[-1].append(i)
        load += weight[i]
    chunks = sorted(((sum(weight[i] for i in c), g, c) for g in range(ngroups) for c in cuts if c),
                    key=lambda t: -t[0])
    shares: list[list[tuple[int, list[int]]]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for w, g, c in chunks:
        k = loads.index(min(loads))
        shares[k].append((g, c))
        loads[k] += w
    return shares


#: chunks per process and session: more balance the processes, fewer share more steps
_CHUNKS_PER_JOB = 4


class Counters:
    """How many items each worker has done, in memory the forked workers share with this
    process (an anonymous shared mapping made before the fork): each writes only its
    own slot, so no lock is needed, and the parent reads the true total at any time."""

    def __init__(self, slots: int) -> None:
        import mmap

        self._mem = mmap.mmap(-1, 8 * max(1, slots))
        self._slots = max(1, slots)

    def add(self, slot: int, n: int = 1) -> None:
        (v,) = _SLOT.unpack_from(self._mem, 8 * slot)
        _SLOT.pack_into(self._mem, 8 * slot, v + n)

    def total(self) -> int:
        return sum(_SLOT.unpack_from(self._mem, 8 * k)[0] for k in range(self._slots))


_SLOT = struct.Struct("<Q")


def _gather(workers: list[tuple[int, int, Any]], done: Counters, total: int,
            progress: Callable[[int, int, str], None] | None) -> Any:
    """Each worker's (entry, values) as it finishes, reporting the true progress of all
    of them while waiting; a finished worker leaves ``workers``."""
    import select

    while workers:
        ready, _, _ = select.select([w[1] for w in workers], [], [], 0.2)
        if progress is not None:
            progress(done.total(), total, "")
        for entry in [w for w in workers if w[1] in ready]:
            workers.remove(entry)
            yield entry, _collect(entry[0], entry[1])


def stop_worker(pid: int, reader: int) -> None:
    """Close the pipe from a forked worker, end it and reap it."""
    os.close(reader)
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass


@contextlib.contextmanager
def _long_lived_frozen() -> Any:
    """Runs allocate many short-lived objects and few cycles: keep the collector off what
    was loaded before them (``gc.freeze()``, which also spares forked workers copying
    pages the collector would touch) and let it run less often."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _start(sessions: Sequence[Session], groups: list[list[int]], scenarios: Sequence[Scenario],
           share: list[tuple[int, list[int]]], done: Counters, slot: int) -> tuple[int, int]:
    def run(chunk: tuple[int, list[int]]) -> list[list[tuple[Any, ...]]]:
        g, indices = chunk
        runs = _run_chunk(sessions, groups[g], scenarios, indices, lambda k, n, r: done.add(slot))
        return [[_compact(r) for r in results] for results in runs]
    return _start_map(run, share, list(range(len(share))))


def _collect(pid: int, reader: int) -> list[tuple[Any, ...]]:
    with os.fdopen(reader, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise WorkerError(f"a worker process died (wait status {status}) before reporting its runs")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise WorkerError(f"a worker process failed: {value}")
    return value


def _compact(r: RunResult) -> tuple[Any, ...]:
    return (r.violations, r.metrics, r.warnings, r.budget_failures, r.rules)


def _expand(compact: tuple[Any, ...], scenario: Scenario, policy: str) -> RunResult:
    violations, metrics, warnings, budget_failures, rules = compact
    return RunResult(scenario, policy, violations, metrics, [], warnings, budget_failures, rules)


def fork_map(func: Callable[[Any], Any], items: Sequence[Any], jobs: int | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> list[Any]:
    """``[func(x) for x in items]``, the items shared out between up to ``jobs`` forked
    workers (interleaved, so cheap and costly items mix); results come back pickled, in
    the items' order.  ``func`` runs in the workers with what this process had loaded."""
    jobs = default_jobs() if jobs is None else jobs
    jobs = max(1, min(jobs, len(items)))
    if not hasattr(os, "fork"):
        jobs = 1
    shares = [list(range(k, len(items), jobs)) for k in range(jobs)]
    out: list[Any] = [None] * len(items)
    done = Counters(jobs)

    def counted(slot: int) -> Callable[[Any], Any]:
        def call(item: Any) -> Any:
            value = func(item)
            done.add(slot)
            return value
        return call

    with _long_lived_frozen():
        workers = [(*_start_map(counted(k), items, share), share) for k, share in enumerate(shares[1:], 1)]
        try:
            for i in shares[0]:
                if progress is not None:
                    progress(done.total(), len(items), str(i))
                out[i] = func(items[i])
                done.add(0)
            for (pid, reader, share), values in _gather(workers, done, len(items), progress):
                for i, value in zip(share, values):
                    out[i] = value
            if progress is not None:
                progress(len(items), len(items), "")
        finally:
            for pid, reader, _ in workers:
                stop_worker(pid, reader)
    return out


def _start_map(func: Callable[[Any], Any], items: Sequence[Any], share: list[int]) -> tuple[int, int]:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid:
        os.close(writer)
        return pid, reader
    os.close(reader)
    status = 0
    try:
        try:
            payload: Any = ("ok", [func(items[i]) for i in share])
        except BaseException as exc:             # noqa: BLE001 - reported to the parent
            payload = ("error", f"{type(exc).__name__}: {exc}")
        with os.fdopen(writer, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:                        # noqa: BLE001 - nothing left to tell
        status = 1
    finally:
        os._exit(status)
