"""Engine benchmark: simple steps per second and fork cost against mapped pages.

Run:  python bench/bench_engine.py
Floors (issue #2): >= 100k simple steps/s on one core; fork cost linear in mapped pages.
Issue #14: the per-folio work stays O(1) per page touched: fork and write of PTE-mapped
2 MiB and 64 KiB folios cost about the same per page.
POLICYKIT_BENCH_QUICK=1 runs it small and once (the test suite does, to see it runs).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from policykit import Engine, Session, load_policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "python" / "anon_exclusive.py"
QUICK = bool(os.environ.get("POLICYKIT_BENCH_QUICK"))


def best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(1 if QUICK else repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    session = Session(load_policy(str(POLICY)), autoload=False)

    def new_engine() -> Engine:
        return Engine(session.pm, session.registry)

    # -- simple steps: one write or read of one mapped page, as a scenario step does --
    n = 2_000 if QUICK else 200_000
    e = new_engine()
    pid = e.spawn("p")
    base = e.mmap(pid, 64)
    e.write(pid, range(base, base + 64))
    vpns = [[base + (i % 64)] for i in range(n)]

    def writes() -> None:
        for v in vpns:
            e.write(pid, v)

    def reads() -> None:
        for v in vpns:
            e.read(pid, v)

    w = best_of(writes)
    r = best_of(reads)

    # -- faulting steps: every write is a COW fault answered by the policy --------------
    def cow_round() -> None:
        x = new_engine()
        p = x.spawn("p")
        b = x.mmap(p, 2000)
        x.write(p, range(b, b + 2000))
        c = x.fork(p, "c")
        for vpn in range(b, b + 2000):
            x.write(c, [vpn])

    t0 = time.perf_counter()
    cow_round()
    cow = time.perf_counter() - t0

    # -- fork cost --------------------------------------------------------------------
    forks = []
    for pages in (1_000, 10_000) if QUICK else (1_000, 10_000, 100_000):
        x = new_engine()
        p = x.spawn("p")
        b = x.mmap(p, pages)
        x.write(p, range(b, b + pages))
        snap = x.machine.copy()

        def fork_once() -> None:
            x.machine = snap.copy()
            t = time.perf_counter()
            x.fork(p, "c")
            fork_once.elapsed = min(getattr(fork_once, "elapsed", 1e9), time.perf_counter() - t)

        for _ in range(3):
            fork_once()
        forks.append((pages, fork_once.elapsed))

    # -- large folios: 4096 pages as PTE-mapped 2 MiB THPs and as 64 KiB mTHPs ----------
    from policykit.testing import apply
    thp_session = Session(load_policy("linux-6.x"))
    npages = 512 if QUICK else 4096

    def folio_round(folio: int) -> tuple[float, float]:
        x = Engine(thp_session.pm, thp_session.registry)
        p = x.spawn("p")
        b = apply(x, "mmap_thp", process=p, pages=npages, folio=folio).result
        for start in range(b, b + npages, folio):
            x.write(p, [start])                      # one fault maps the folio
            if folio == 512:                         # split the PMD: PTE-mapped
                apply(x, "mprotect", process=p, region=[start + 1], prot="ro")
                apply(x, "mprotect", process=p, region=[start + 1], prot="rw")
        t = time.perf_counter()
        x.fork(p, "c")
        forked = time.perf_counter() - t
        t = time.perf_counter()
        x.write(p, range(b, b + npages))             # a COW fault on every page
        return forked, time.perf_counter() - t

    folios = {}
    for folio in (512, 16):
        runs = [folio_round(folio) for _ in range(1 if QUICK else 3)]
        folios[folio] = (min(f for f, _ in runs), min(w for _, w in runs))

    # -- whole runs: the built-in corpus through Session.run (engine + oracle) ---------
    from policykit.cli import scenario_paths
    corpus = [scn for path in scenario_paths([]) for scn in session.load_all(str(path))]
    steps = sum(len(scn.steps) for scn in corpus)

    def corpus_run() -> None:
        for scn in corpus:
            session.run(scn)

    whole = best_of(corpus_run)

    print(f"python {sys.version.split()[0]}, one core")
    print(f"write step (PTE writable):   {n / w:>12,.0f} steps/s")
    print(f"read step (PTE present):     {n / r:>12,.0f} steps/s")
    print(f"write step with COW fault:   {4000 / cow:>12,.0f} steps/s  (2000 faults + 2000 writes + fork)")
    print(f"scenario step, with oracle:  {steps / whole:>12,.0f} steps/s  "
          f"({len(corpus)} corpus scenarios, {steps} steps, {whole * 1e3:.1f} ms)")
    print()
    print(f"{'mapped pages':>12}  {'fork time':>10}  {'us/page':>8}  {'vs 1k, per page':>15}")
    per_page_1k = forks[0][1] / forks[0][0]
    for pages, t in forks:
        print(f"{pages:>12,}  {t * 1e3:>8.1f}ms  {t / pages * 1e6:>8.2f}  {t / pages / per_page_1k:>15.2f}x")
    print()
    print(f"{'PTE-mapped folio':>16}  {'fork us/page':>12}  {'COW write us/page':>17}  ({npages:,} pages)")
    for folio, label in ((512, "2 MiB"), (16, "64 KiB")):
        f, wr = folios[folio]
        print(f"{label:>16}  {f / npages * 1e6:>12.2f}  {wr / npages * 1e6:>17.2f}")
    ratio = max(folios[512][0] / folios[16][0], folios[512][1] / folios[16][1])
    print(f"2 MiB vs 64 KiB per page: {ratio:.2f}x (O(1) per page touched: {'yes' if ratio <= 2.0 else 'NO'})")
    floor_ok = min(n / w, n / r) >= 100_000
    linear = forks[-1][1] / forks[-1][0] <= 2.0 * per_page_1k
    print()
    print(f"floor >= 100k simple steps/s: {'met' if floor_ok else 'NOT met'}; "
          f"fork linear (per-page cost at 100k within 2x of 1k): {'yes' if linear else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
