"""How fast policykit mutate judges a policy's mutants on the corpus.

Run:  python bench/bench_mutate.py        (about half a minute on 2 cores)
Floor (issue #11): mutate linux-6.x over the full built-in corpus, without the diverge
step, <= 60 s on this 2-core machine.  Printed beside it: the same mutants on one core,
and the runs a mutant took alone (it rides along the original's runs, and runs alone only
where it decides otherwise, stopping at its first verdict difference).
POLICYKIT_BENCH_QUICK=1 runs a sample (the test suite does, to see it runs).
"""

from __future__ import annotations

import os
import sys
import time

from policykit import Session, dsl, load_policy
from policykit._manager import plugin_registry
from policykit.corpus import scenario_files
from policykit.mutate import mutate
from policykit.parallel import default_jobs
from policykit.scenario import load_scenarios

QUICK = bool(os.environ.get("POLICYKIT_BENCH_QUICK"))
POLICY = "linux-6.x"


def main() -> int:
    session = Session(load_policy(POLICY))
    checked, _ = dsl.check_file(POLICY, plugin_registry(None))
    scenarios = [s for path in scenario_files([], session.pm) for s in load_scenarios(str(path), session.registry)]
    sample = 20 if QUICK else None
    jobs = default_jobs()
    times = {}
    for j in dict.fromkeys((jobs, 1)):
        started = time.perf_counter()
        result = mutate(checked, session, scenarios, sample=sample, jobs=j)
        times[j] = time.perf_counter() - started
        counts = result.counts()
        runs = sum(r.runs for r in result.results)
        print(f"mutate {POLICY}, {len(result.results)} mutants x {len(scenarios)} scenarios, -j {j}: "
              f"{times[j]:6.1f} s  ({len(result.results) / times[j]:5.1f} mutants/s, {runs:,} runs alone, "
              f"{runs / max(1, len(result.results)):.0f} a mutant); score {100 * (result.score(counts) or 0):.1f}%")
        if QUICK:
            break
    if not QUICK:
        verdict = "met" if times[jobs] <= 60 else "NOT met"
        print(f"floor <= 60 s with -j {jobs}: {verdict} ({times[jobs]:.1f} s); one core / -j {jobs}: "
              f"{times[1] / times[jobs]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
