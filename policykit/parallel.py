"""Running many (policy, scenario) pairs on every CPU the process may use.

Runs are independent (each gets a fresh machine), so ``compare`` and ``score`` share
them out between forked workers, the way pytest-xdist shares tests.  A worker sends back
what a comparison reads of a run -- verdict, violations, metrics, warnings, budgets,
rules -- not its step records.  Where ``fork()`` is missing, or with one job, everything
runs in this process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from typing import Any

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
    processes (default: :func:`default_jobs`)."""
    pairs = [(s, i) for i in range(len(scenarios)) for s in range(len(sessions))]
    jobs = default_jobs() if jobs is None else jobs
    jobs = max(1, min(jobs, len(pairs) // MIN_RUNS_PER_WORKER))
    if not hasattr(os, "fork"):
        jobs = 1
    shares = [pairs[k::jobs] for k in range(jobs)]
    results: list[list[Any]] = [[None] * len(scenarios) for _ in sessions]
    with _long_lived_frozen():
        workers = [(*_start(sessions, scenarios, share), share) for share in shares[1:]]
        try:
            mine = shares[0]
            for n, (s, i) in enumerate(mine, 1):
                if progress is not None:
                    progress(n, len(mine), f"{sessions[s].policy.name}: {scenarios[i].name}")
                results[s][i] = sessions[s].run(scenarios[i])
            while workers:
                pid, reader, share = workers.pop(0)
                for (s, i), compact in zip(share, _collect(pid, reader)):
                    results[s][i] = _expand(compact, scenarios[i], sessions[s].policy.name)
        finally:
            for pid, reader, _ in workers:      # this process failed: stop the others
                stop_worker(pid, reader)
    return results


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


def _start(sessions: Sequence[Session], scenarios: Sequence[Scenario],
           share: list[tuple[int, int]]) -> tuple[int, int]:
    return _start_map(lambda pair: _compact(sessions[pair[0]].run(scenarios[pair[1]])), share,
                      list(range(len(share))))


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
    with _long_lived_frozen():
        workers = [(*_start_map(func, items, share), share) for share in shares[1:]]
        try:
            for n, i in enumerate(shares[0], 1):
                if progress is not None:
                    progress(n, len(shares[0]), str(i))
                out[i] = func(items[i])
            while workers:
                pid, reader, share = workers.pop(0)
                for i, value in zip(share, _collect(pid, reader)):
                    out[i] = value
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
