"""The benchmarks run (small, once): a bench that breaks should fail here, not when a
figure is wanted.  Their figures are not judged here.  bench_live runs with the live
backend's tests (tests/test_live.py), which run alone: it changes swap and hugetlb pools."""

from __future__ import annotations

import pytest
from conftest import bench


@pytest.mark.parametrize("script,prints", [
    ("bench_engine.py", "floor >= 100k simple steps/s"),
    ("bench_dsl.py", "parse + check + compile of every built-in policy"),
    ("bench_compare.py", "python startup; floor <= 1000 ms"),
    ("bench_explore.py", "new distinct states/s"),
    ("bench_mutate.py", "mutants/s"),
    ("bench_startup.py", "policykit check mine.pol"),
])
def test_benchmark_runs(script, prints):
    done = bench(script)
    assert done.returncode == 0, done.stderr
    assert prints in done.stdout
