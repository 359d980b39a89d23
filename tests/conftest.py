from __future__ import annotations

from pathlib import Path

from policykit import Session, load_policy

ROOT = Path(__file__).resolve().parent.parent
PY_POLICIES = ROOT / "policies" / "python"


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
