"""Wall time of `policykit compare linux-5.9 linux-5.19` on the built-in corpus, from a
cold process, next to `python -c pass` measured in the same run.

Run:  python bench/bench_compare.py
Floor (issue #5): <= 1.0 s on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

ROUNDS = 5


def wall(cmd: list[str]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed with {done.returncode}")
    return best


def main() -> int:
    policykit = shutil.which("policykit") or os.path.join(os.path.dirname(sys.executable), "policykit")
    nothing = wall([sys.executable, "-c", "pass"])
    compare = wall([policykit, "compare", "linux-5.9", "linux-5.19"])
    count = subprocess.run([policykit, "corpus", "--format", "json"], capture_output=True, text=True).stdout
    scenarios = count.count('"scenario":')
    print(f"python -c pass:                         {nothing * 1e3:7.1f} ms")
    print(f"policykit compare linux-5.9 linux-5.19: {compare * 1e3:7.1f} ms  ({scenarios} scenarios, "
          f"3 policies run with ideal; best of {ROUNDS})")
    print(f"ratio {compare / nothing:.1f}x python startup; floor <= 1000 ms: {'met' if compare <= 1.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
