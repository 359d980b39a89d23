from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from policykit import Session, load_policy

ROOT = Path(__file__).resolve().parent.parent
PY_POLICIES = ROOT / "policies" / "python"


def bench(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` small and once (POLICYKIT_BENCH_QUICK), its output captured."""
    env = {**os.environ, "POLICYKIT_BENCH_QUICK": "1"}
    return subprocess.run([sys.executable, str(ROOT / "bench" / script)], capture_output=True, text=True,
                          env=env, timeout=300)


_sessions: dict[str, Session] = {}


def session(policy: str) -> Session:
    """A session for one of the hand-written policies in policies/python/, with the core
    engine only (no entry-point plugins): what these tests exercise is the core."""
    if policy not in _sessions:
        _sessions[policy] = Session(load_policy(str(PY_POLICIES / f"{policy}.py")), autoload=False)
    return _sessions[policy]


def run(policy: str, text: str, trace: bool = False):
    """Run scenario text under a policy with the engine's invariants checked after every step."""
    s = session(policy)
    return s.run(s.parse(text, "test.scn"), trace=trace, invariants=True)


def variant(base: str, name: str, **hooks) -> Session:
    """A session for ``base`` with some decision hooks replaced, e.g. ``policykit_gup=...``."""
    import types

    from policykit._manager import _policy_from_module

    mod = types.ModuleType(name.replace("-", "_"))
    plugin = session(base).policy.plugin
    for attr in dir(plugin):
        if attr.startswith("policykit_"):
            setattr(mod, attr, getattr(plugin, attr))
    for attr, fn in hooks.items():
        setattr(mod, attr, fn)
    return Session(_policy_from_module(mod, name, f"<{name}>"), autoload=False)


def _freeze() -> list[str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, timeout=120)
    return done.stdout.splitlines() if done.returncode == 0 else [f"pip freeze failed: {done.stderr.strip()}"]


@pytest.fixture(scope="session", autouse=True)
def environment_left_as_found():
    """The suite never installs into, or removes from, the environment it runs in: ``pip
    freeze`` after the last test is what it was before the first (a difference fails the
    run, at the teardown of the last test)."""
    before = _freeze()
    yield
    after = _freeze()
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    assert not added and not removed, f"the test suite changed its environment: added {added}, removed {removed}"
