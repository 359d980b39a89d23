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

import os
import pickle
import signal
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .batch import ride_groups, run_group
from .errors import PolicyKitError
from .oracle import Violation
from .run import RunResult, Session, collector_for_runs
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
              progress: Callable[[int, int, str], None] | None = None,
              idle: Callable[[], object] | None = None) -> list[list[RunResult]]:
    """``results[s][i]``: ``scenarios[i]`` run under ``sessions[s]``, on up to ``jobs``
    processes (default: :func:`default_jobs`).  Each process takes chunks of scenarios
    that begin alike from a shared queue, the heaviest first, until none is left, and
    runs each with :func:`policykit.batch.run_group`, which takes their first steps once,
    and once for the policies that can ride along each other's runs.  ``idle()`` is
    called once in this process when it finds no chunk left while workers still run:
    what the caller needs next, done while it waits for the last of them."""
    total = len(sessions) * len(scenarios)
    jobs = default_jobs() if jobs is None else jobs
    jobs = max(1, min(jobs, total // MIN_RUNS_PER_WORKER))
    if not hasattr(os, "fork"):
        jobs = 1
    # from here on the collector leaves alone what was loaded (see collector_for_runs):
    # one full pass over the corpus before the workers start cost 20-40 ms
    with collector_for_runs():
        return _run_pairs(sessions, scenarios, jobs, progress, idle)


def _run_pairs(sessions: Sequence[Session], scenarios: Sequence[Scenario], jobs: int,
               progress: Callable[[int, int, str], None] | None,
               idle: Callable[[], object] | None) -> list[list[RunResult]]:
    total = len(sessions) * len(scenarios)
    groups = ride_groups(sessions)
    chunks = _chunks([len(g) for g in groups], scenarios, jobs)
    results: list[list[Any]] = [[None] * len(scenarios) for _ in sessions]
    done = Counters(jobs)

    def put(c: int, per_session: Sequence[Sequence[Any]], compact: bool) -> None:
        g, chunk = chunks[c]
        for s, runs in zip(groups[g], per_session):
            for i, result in zip(chunk, runs):
                results[s][i] = _expand(result, scenarios[i], sessions[s].policy.name) if compact else result

    with _Queue(len(chunks), jobs > 1) as queue:
        def work(slot: int) -> list[tuple[int, list[list[tuple[Any, ...]]]]]:
            queue.close_writer()                # this worker's copy: the queue can end
            out = []
            for c in queue.take():
                g, chunk = chunks[c]
                runs = _run_chunk(sessions, groups[g], scenarios, chunk, lambda k, n, r: done.add(slot))
                out.append((c, [[_compact(r) for r in rs] for rs in runs]))
            return out
        workers = [(*_start_worker(lambda k=k: work(k)), None) for k in range(1, jobs)]
        queue.close_writer()
        try:
            for c in queue.take():
                g, chunk = chunks[c]

                def told(k: int, n: int, result: RunResult, g: int = g, chunk: list[int] = chunk) -> None:
                    done.add(0)
                    if progress is not None:
                        progress(done.total(), total,
                                 f"{sessions[groups[g][k]].policy.name}: {scenarios[chunk[n]].name}")
                put(c, _run_chunk(sessions, groups[g], scenarios, chunk, told), False)
            if workers and idle is not None:
                idle()
            for _, taken in _gather(workers, done, total, progress):
                for c, per_session in taken:
                    put(c, per_session, True)
            if progress is not None:
                progress(total, total, "")
        finally:
            for pid, reader, _ in workers:      # this process failed: stop the others
                stop_worker(pid, reader)
    return results


class _Queue:
    """The chunk numbers ``0 .. n-1``, in order, in a pipe that every process reads
    (forked workers and this one): each read takes one whole number (4 bytes, written
    before anyone reads; a pipe hands each read its bytes under its lock), so each chunk
    goes to exactly one process, whichever is free first.  ``shared=False``: no pipe,
    this process takes them all."""

    def __init__(self, n: int, shared: bool) -> None:
        self._n = n
        self._fds: tuple[int, int] | None = None
        if shared:
            if 4 * n > 65_536:
                raise ValueError(f"{n} chunks do not fit in a pipe")
            self._fds = os.pipe()
            os.write(self._fds[1], b"".join(_CHUNK.pack(c) for c in range(n)))

    def __enter__(self) -> _Queue:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fds is not None:
            for fd in self._fds:
                if fd >= 0:
                    os.close(fd)
            self._fds = None

    def close_writer(self) -> None:
        """After the workers are forked: the queue ends when its numbers are taken."""
        if self._fds is not None and self._fds[1] >= 0:
            os.close(self._fds[1])
            self._fds = (self._fds[0], -1)

    def take(self) -> Any:
        if self._fds is None:
            yield from range(self._n)
            return
        while data := os.read(self._fds[0], 4):
            yield _CHUNK.unpack(data)[0]


_CHUNK = struct.Struct("<I")


def _run_chunk(sessions: Sequence[Session], group: list[int], scenarios: Sequence[Scenario], chunk: list[int],
               on_result: Callable[[int, int, RunResult], None] | None) -> list[list[RunResult]]:
    """The scenarios of ``chunk`` under the sessions of ``group``, run together."""
    first = sessions[group[0]]
    return run_group([sessions[s] for s in group], [scenarios[i] for i in chunk], False, first.timeout,
                     first.max_pages, on_result)


def _chunks(sizes: Sequence[int], scenarios: Sequence[Scenario], jobs: int) -> list[tuple[int, list[int]]]:
    """The chunks (session group, scenario indices) the processes take, the heaviest
    first; ``sizes``: the sessions in each group.  The scenarios go in the order of their
    steps, so that those that begin alike stay together, cut into chunks of about equal
    weight (the pages a scenario maps stand for its cost), a few per process for each
    group.  A policy riding along a group's runs adds about half a run to a chunk's
    weight (its decisions, and the runs it takes again alone where it falls off)."""
    ngroups = len(sizes)
    order = sorted(range(len(scenarios)), key=lambda i: [(st.text, st.line) for st in scenarios[i].steps])
    if jobs == 1:
        return [(g, order) for g in range(ngroups)]
    weight = [1 + sum(p for st in scn.steps if isinstance(p := st.params.get("pages"), int)) for scn in scenarios]
    target = sum(weight) / (_CHUNKS_PER_JOB * jobs)
    cuts: list[list[int]] = [[]]
    load = 0.0
    for i in order:
        if load >= target:
            cuts.append([])
            load = 0.0
        cuts[-1].append(i)
        load += weight[i]
    chunks = sorted((((1 + _RIDER_WEIGHT * (sizes[g] - 1)) * sum(weight[i] for i in c), g, c)
                     for g in range(ngroups) for c in cuts if c),
                    key=lambda t: -t[0])
    return [(g, c) for _, g, c in chunks]


#: what a policy riding along a run adds to its cost (measured on the corpus: 0.5-0.6)
_RIDER_WEIGHT = 0.5
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
    """What a worker sends back of a run.  Violations go as rows of their fields: a
    THP's scenario reports one a page, and pickling ~17,000 objects (each with a state
    dict) cost 25 ms in a worker and 70 ms to load here, against 6 and 7 as tuples."""
    return ([(v.cls, v.step, v.line, v.detail, v.seen, v.expected) for v in r.violations],
            r.metrics, r.warnings, r.budget_failures, r.rules)


def _expand(compact: tuple[Any, ...], scenario: Scenario, policy: str) -> RunResult:
    rows, metrics, warnings, budget_failures, rules = compact
    return RunResult(scenario, policy, [_violation(row) for row in rows], metrics, [], warnings,
                     budget_failures, rules)


def _violation(row: tuple[Any, ...]) -> Violation:
    """A violation from its fields, as unpickling makes one (the frozen dataclass's own
    ``__init__`` sets each field through ``object.__setattr__``: three times slower)."""
    v = _new(Violation)
    d = v.__dict__
    d["cls"], d["step"], d["line"], d["detail"], d["seen"], d["expected"] = row
    return v


_new = object.__new__


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

    with collector_for_runs():
        workers = [(*_start_worker(lambda f=counted(k), share=share: [f(items[i]) for i in share]), share)
                   for k, share in enumerate(shares[1:], 1)]
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


def _start_worker(work: Callable[[], Any]) -> tuple[int, int]:
    """Fork a worker that runs ``work()`` and sends back its value, pickled (or what it
    raised); (its pid, the pipe to read it from)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid:
        os.close(writer)
        return pid, reader
    os.close(reader)
    status = 0
    try:
        try:
            payload: Any = ("ok", work())
        except BaseException as exc:             # noqa: BLE001 - reported to the parent
            payload = ("error", f"{type(exc).__name__}: {exc}")
        with os.fdopen(writer, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:                        # noqa: BLE001 - nothing left to tell
        status = 1
    finally:
        os._exit(status)
