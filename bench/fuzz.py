"""Fuzz policies, scenarios and valid operation sequences for minutes (see policykit/fuzz.py).

Run:  python bench/fuzz.py --minutes 10        (the time is shared by the three kinds)
      python bench/fuzz.py --minutes 1 --seed 7
Prints how many cases of each kind ran and how far they got (syntax error / check error /
ran), and the first input that broke a property, if any; exit 1 then.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from policykit import fuzz


def fuzz_for(seconds: float, strategy, prop, seed: int) -> tuple[list[str], str | None]:  # type: ignore[no-untyped-def]
    stages: list[str] = []
    broken: list[str] = []
    end = time.monotonic() + seconds

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=["generate"])
    @given(text=strategy)
    def one(text: str) -> None:
        if time.monotonic() > end:
            raise _TimeUp
        try:
            stages.append(prop(text))
        except fuzz.Broken as exc:
            broken.append(f"{exc}\n--- input ---\n{text}")
            raise _TimeUp from None

    try:
        random.seed(seed)
        one()
    except _TimeUp:
        pass
    except Unsatisfiable:
        pass
    return stages, (broken[0] if broken else None)


class _TimeUp(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args()
    share = ns.minutes * 60 / 3
    failed = False
    with fuzz.workdir() as d:
        work = Path(d)
        kinds = [
            ("policies", fuzz.policy_texts(), lambda t: fuzz.check_policy_text(t, work)),
            ("scenarios", fuzz.scenario_texts(), lambda t: fuzz.check_scenario_text(t, work)),
            ("valid runs", _walks(), _run_walk),
        ]
        total = 0
        for name, strategy, prop in kinds:
            started = time.monotonic()
            stages, broken = fuzz_for(share, strategy, prop, ns.seed)
            total += len(stages)
            print(f"{name:<10} {len(stages):>7,} cases in {time.monotonic() - started:5.0f} s: "
                  f"{fuzz.summarize(stages) or '-'}", flush=True)
            if broken:
                failed = True
                print(f"BROKEN by a {name[:-1]}:\n{broken}")
        print(f"{total:,} cases, {'a property broke' if failed else '0 tracebacks, 0 broken properties'}")
    return 1 if failed else 0


def _walks():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st
    return st.integers(0, 2**32).map(lambda seed: fuzz.random_scenario(random.Random(seed), length=16))


def _run_walk(text: str) -> str:
    fuzz.check_random_run(text)
    return "ran under every built-in policy"


if __name__ == "__main__":
    sys.exit(main())
