"""compare's runs shared out between forked workers give what one process gives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from policykit import parallel
from policykit.cli import ExitCode, main
from policykit.testing import session

ROOT = Path(__file__).resolve().parent.parent


def test_parallel_compare_is_the_serial_compare(capsys):
    outputs = []
    for jobs in ("1", "2"):
        assert main(["compare", "linux-5.9", "linux-5.19", "--tag", "cow.c", "-j", jobs,
                     "--format", "json"]) == ExitCode.OK
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]["scenarios"]) > 2 * parallel.MIN_RUNS_PER_WORKER


def test_workers_take_shares_of_the_runs(monkeypatch):
    forks = []
    real_fork = parallel.os.fork
    monkeypatch.setattr(parallel.os, "fork", lambda: forks.append(1) or real_fork())
    s = session("linux-6.x")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:40]
    [results] = parallel.run_pairs([s], scenarios, jobs=2)
    assert forks == [1]
    assert [r.scenario.name for r in results] == [scn.name for scn in scenarios]
    assert [r.verdict for r in results] == [s.run(scn).verdict for scn in scenarios]


def test_a_workers_runs_come_back_whole():
    from policykit.oracle import Violation

    s = session("linux-5.9")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:60]
    [results] = parallel.run_pairs([s], scenarios, jobs=2)
    alone = [s.run(scn) for scn in scenarios]
    assert sum(len(r.violations) for r in results) > 100       # a THP's scenario: one a page
    assert [r.violations for r in results] == [r.violations for r in alone]
    assert all(type(v) is Violation and hash(v) == hash(Violation(v.cls, v.step, v.line, v.detail, v.seen,
                                                                     v.expected))
               for r in results for v in r.violations)
    assert [(r.metrics, r.warnings, r.budget_failures, r.rules) for r in results] == \
        [(r.metrics, r.warnings, r.budget_failures, r.rules) for r in alone]


def test_this_process_works_while_it_waits_for_the_last_worker():
    s = session("linux-6.x")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:40]
    waits = []
    [results] = parallel.run_pairs([s], scenarios, jobs=2, idle=lambda: waits.append(len(waits)))
    assert waits == [0]                     # once, between its last chunk and the workers' results
    assert [r.verdict for r in results] == [s.run(scn).verdict for scn in scenarios]
    parallel.run_pairs([s], scenarios, jobs=1, idle=lambda: waits.append(len(waits)))
    assert waits == [0]                     # alone, it never waits


def test_chunks_of_a_group_with_riders_go_first():
    # a chunk that a policy rides along costs more than the same scenarios run under one
    s = session("linux-6.x")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:60]
    chunks = parallel._chunks([1, 2], scenarios, jobs=2)
    cuts = [c for g, c in chunks if g == 0]
    assert sorted(c for g, c in chunks if g == 1) == sorted(cuts)
    assert sorted(i for c in cuts for i in c) == list(range(len(scenarios)))
    place = {(g, tuple(c)): n for n, (g, c) in enumerate(chunks)}
    assert all(place[1, tuple(c)] < place[0, tuple(c)] for c in cuts)


def _wait_for(path):
    """Until ``path`` exists (another process made it), for at most ten seconds."""
    for _ in range(1000):
        if path.exists():
            return
        time.sleep(0.01)


def test_a_failing_worker_is_an_internal_error(monkeypatch, tmp_path):
    s = session("linux-6.x")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:40]
    real_run = parallel._run_chunk
    here, failed = parallel.os.getpid(), tmp_path / "failed"

    def run_chunk(sessions, group, scns, chunk, on_result):
        if parallel.os.getpid() != here:          # the worker, whichever chunk it takes
            failed.touch()
            raise RuntimeError("boom")
        _wait_for(failed)                         # this process leaves it one to take
        return real_run(sessions, group, scns, chunk, on_result)
    monkeypatch.setattr(parallel, "_run_chunk", run_chunk)
    with pytest.raises(parallel.WorkerError, match="a worker process failed: RuntimeError: boom") as info:
        parallel.run_pairs([s], scenarios, jobs=2)
    assert info.value.exit_code == 3


def test_a_failure_here_stops_the_workers(monkeypatch, tmp_path):
    s = session("linux-6.x")
    from policykit.corpus import scenario_files
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][:40]
    real_run = parallel._run_chunk
    here, failed = parallel.os.getpid(), tmp_path / "failed"

    def run_chunk(sessions, group, scns, chunk, on_result):
        if parallel.os.getpid() == here:
            failed.touch()
            raise RuntimeError("here")
        _wait_for(failed)                         # the worker leaves this process one
        return real_run(sessions, group, scns, chunk, on_result)
    monkeypatch.setattr(parallel, "_run_chunk", run_chunk)
    with pytest.raises(RuntimeError, match="here"):
        parallel.run_pairs([s], scenarios, jobs=2)
    with pytest.raises(ChildProcessError):       # no worker left behind, not even a zombie
        parallel.os.waitpid(-1, parallel.os.WNOHANG)


def test_runs_tune_the_collector_and_leave_it_as_they_found_it():
    import gc

    from policykit.run import collector_for_runs

    before = gc.get_threshold(), gc.get_freeze_count()
    with collector_for_runs():
        threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
        assert threshold[0] > before[0][0] and frozen > before[1]
        with collector_for_runs():                  # nested (a run inside compare): the outer's
            assert gc.get_threshold() == threshold
        assert gc.get_freeze_count() >= frozen      # the inner one unfroze nothing
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    s = session("linux-6.x")
    s.run(s.load_all(str(ROOT / "policykit" / "corpus" / "cow-basic.scn"))[0])
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    gc.disable()
    try:
        with collector_for_runs():                  # switched off by the caller: left off
            assert not gc.isenabled() and gc.get_threshold() == before[0]
    finally:
        gc.enable()


def test_a_corpus_is_read_back_with_the_collector_paused(monkeypatch, capsys):
    import gc

    from policykit import scenario
    from policykit.run import collector_paused

    seen = []
    real = scenario.load_scenarios

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    monkeypatch.setattr(scenario, "load_scenarios", spy)
    assert main(["corpus", "--format", "json"]) == ExitCode.OK
    assert len(json.loads(capsys.readouterr().out)["scenarios"]) > 100
    assert seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        with collector_paused():                    # switched off by the caller: left off
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
