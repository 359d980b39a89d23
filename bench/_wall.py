"""Timing commands from a cold process, for the benchmarks."""

from __future__ import annotations

import subprocess
import time


def wall(cmd: list[str], rounds: int, ok: tuple[int, ...] = (0,)) -> float:
    """The best wall time of ``rounds`` runs of ``cmd`` (the machine is shared: its speed
    changes from second to second); an exit status outside ``ok`` stops the bench."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
        if done.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed with {done.returncode}")
    return best
