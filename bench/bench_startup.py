"""Start-up: `policykit --version`, `policykit check FILE` and `policykit policies` from a
cold process, next to `python -c pass` measured in the same run.

Run:  python bench/bench_startup.py
Floor (issue #12): --version and check FILE <= 100 ms on this machine.
POLICYKIT_BENCH_QUICK=1 runs each command once (the test suite does, to see it runs).

Best of ROUNDS runs each, the package byte-compiled first (as pip does).  FILE is a user
policy that extends linux-6.x (a chain of seven files), checked again unchanged (its
syntax tree, like the chain's, read back from the user's cache) and just edited.
"""

from __future__ import annotations

import compileall
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _wall

ROUNDS = 1 if os.environ.get("POLICYKIT_BENCH_QUICK") else 15
ROOT = Path(__file__).resolve().parent.parent


def wall(cmd: list[str]) -> float:
    return _wall.wall(cmd, ROUNDS)


def edited(policykit: str, mine: Path) -> float:
    """check of a file changed since it was last checked (its syntax tree is not in the
    user's cache: lark is imported and parses it; the chain it extends is cached)."""
    best = float("inf")
    for n in range(ROUNDS):
        mine.write_text(f'policy mine\nsummary "6.x, edit {n} at {time.time()}"\nextends linux-6.x\n',
                        encoding="utf-8")
        best = min(best, _wall.wall([policykit, "check", str(mine)], 1))
    return best


def main() -> int:
    for tree in ("policykit", "plugins", "policies"):
        compileall.compile_dir(ROOT / tree, quiet=1)
    policykit = shutil.which("policykit") or os.path.join(os.path.dirname(sys.executable), "policykit")
    with tempfile.TemporaryDirectory() as tmp:
        mine = Path(tmp) / "mine.pol"
        mine.write_text('policy mine\nsummary "6.x"\nextends linux-6.x\n', encoding="utf-8")
        nothing = wall([sys.executable, "-c", "pass"])
        rows = [("policykit --version", wall([policykit, "--version"]), 0.1),
                ("policykit check mine.pol", wall([policykit, "check", str(mine)]), 0.1),
                ("  ... mine.pol just edited", edited(policykit, mine), None),
                ("policykit policies", wall([policykit, "policies"]), None)]
    print(f"{'python -c pass':<28}{nothing * 1e3:7.1f} ms")
    for name, t, floor in rows:
        verdict = "" if floor is None else f"; floor <= {floor * 1e3:.0f} ms: {'met' if t <= floor else 'NOT met'}"
        print(f"{name:<28}{t * 1e3:7.1f} ms  ({t / nothing:.1f}x python startup{verdict})")
    print(f"best of {ROUNDS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
