"""Live and simulated time of the same scenarios, side by side, in one run.

Run:  python bench/bench_live.py
Floors (issue #13): the whole live-runnable corpus <= 20 s live; the simulator >= 20x
faster than live per scenario (simulated time includes taking the same observations).
Needs what ``policykit validate`` needs (Linux, perf, root for PFNs); says why not
otherwise.  POLICYKIT_BENCH_QUICK=1 runs a few scenarios only.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from policykit import load_policy
from policykit.corpus import corpus_dirs, scenario_files
from policykit.live.backend import why_not_runnable
from policykit.live.system import Capabilities
from policykit.live.validate import validate
from policykit.run import Session

QUICK = bool(os.environ.get("POLICYKIT_BENCH_QUICK"))


def main() -> int:
    caps = Capabilities.probe()
    why = caps.reason or caps.perf_reason or ("" if caps.pfns else "no PFNs in pagemap (needs root)")
    if why:
        print(f"live backend unavailable here: {why}; nothing measured")
        return 0
    session = Session(load_policy("linux-6.x"))
    files = scenario_files([str(d) for d in corpus_dirs(session.pm)], session.pm)
    scenarios = [sc for f in files for sc in session.load_all(str(f))]
    if QUICK:
        scenarios = [sc for sc in scenarios if sc.name.startswith("cow-basic/")][:3]
    # the simulator alone: the same scenario run under the policy, best of three, timed
    # right after validate ran it live (between two scenarios: this machine's speed
    # drifts by 2x within minutes, so the two sides of a ratio are measured together;
    # validate's own simulated side also takes the per-step observations)
    plain: dict[str, float] = {}
    peak: dict[str, int] = {}                   # the most pages a run had at once
    timing = 0.0                                # spent here, not in validate

    def time_previous(done: int, total: int, name: str) -> None:
        nonlocal timing
        if done == 0:
            return
        sc = scenarios[done - 1]
        if why_not_runnable(sc, caps):
            return
        started = time.perf_counter()
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            result = session.run(sc)
            best = min(best, time.perf_counter() - t)
        plain[sc.name] = best
        peak[sc.name] = result.metrics["peak_pages"]
        timing += time.perf_counter() - started

    started = time.perf_counter()
    results = [v for v in validate(session, scenarios, caps, time_previous) if not v.not_runnable]
    wall = time.perf_counter() - started - timing
    live = sum(v.live_time for v in results)
    observed = sum(v.sim_time for v in results)
    ratio = {v.scenario.name: v.live_time / max(plain[v.scenario.name], 1e-9) for v in results}
    ratios = sorted(ratio.values())
    print(f"{len(results)} live-runnable scenarios (of {len(scenarios)}), policy linux-6.x, one process")
    slowest = sorted(results, key=lambda v: ratio[v.scenario.name])[:8]
    width = max(len("scenario"), *(len(v.scenario.name) for v in slowest))
    print(f"  {'scenario':{width}} {'live ms':>9} {'simulated ms':>13} {'observed ms':>12} {'live/sim':>9}")
    for v in slowest:
        print(f"  {v.scenario.name:{width}} {v.live_time * 1000:9.1f} {plain[v.scenario.name] * 1000:13.2f} "
              f"{v.sim_time * 1000:12.2f} {ratio[v.scenario.name]:8.1f}x")
    print("  ... (the 8 smallest ratios; 'observed': the simulated side of validate, with its "
          "per-step observations of every page)")
    print(f"whole corpus live: {live:.2f} s (floor <= 20 s: {'met' if live <= 20 else 'NOT met'}); "
          f"simulated: {sum(plain.values()):.3f} s ({observed:.3f} s observed); validate wall time {wall:.2f} s")
    print(f"simulator faster than live per scenario: median {statistics.median(ratios):.1f}x, "
          f"smallest {ratios[0]:.1f}x (floor >= 20x: {'met' if ratios[0] >= 20 else 'NOT met'}); "
          f"{sum(r >= 20 for r in ratios)} of {len(ratios)} scenarios at 20x or more")
    # what the simulator pays for is pages: a page fault costs it a few microseconds, as
    # it costs the kernel; a scenario's set-up costs the live side milliseconds
    for label, part in (("under 64 pages at peak", [n for n in ratio if peak[n] < 64]),
                        ("64 pages or more", [n for n in ratio if peak[n] >= 64])):
        if part:
            rs = sorted(ratio[n] for n in part)
            print(f"  {label}: {len(part)} scenarios, median {statistics.median(rs):.1f}x, smallest {rs[0]:.1f}x, "
                  f"{sum(r >= 20 for r in rs)} at 20x or more")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
