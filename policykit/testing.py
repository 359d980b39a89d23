"""Helpers for testing policies and plugins with pytest (policykit's own plugins use them).

``scenario_params(directory)`` parametrizes a test over every (scenario, policy) pair the
scenarios there state an expectation for; ``assert_passes(path, policy)`` runs one with
the engine's invariants checked after every step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._manager import load_policy
from .engine.mm import Engine, Outcome
from .engine.model import Page
from .run import RunResult, Session


@functools.cache
def session(policy: str) -> Session:
    """A session for a policy (built-in name, .pol or .py), with the installed plugins."""
    return Session(load_policy(policy))


def engine(policy: str = "linux-6.x") -> Engine:
    """A fresh engine deciding with ``policy``."""
    s = session(policy)
    return Engine(s.pm, s.registry)


def apply(engine: Engine, operation: str, **args: Any) -> Outcome:
    """Carry out a registered operation on resolved arguments (pids, page numbers); a
    parameter left out takes its default, as in a scenario."""
    spec = engine.registry.operations[operation]
    for p in spec.params:
        if p.name not in args and p.default is not None:
            args[p.name] = p.default
    return spec.apply(engine, args)


def plugin_refs(engine: Engine) -> Callable[[Page], int] | None:
    """The references plugins hold on a page, for :func:`policykit.check_invariants`."""
    hook = engine.pm.hook.policykit_page_refs
    if not hook.get_hookimpls():
        return None
    return lambda page: sum(hook(machine=engine.machine, page=page))


def scenario_params(directory: str | Path, reference_policy: str = "linux-6.x") -> list[Any]:
    """``pytest.param(path, policy, variant)`` for every expectation of every ``*.scn``
    there (of every variant; ``variant`` is None for a scenario without variants), with
    ``NAME[POLICY]`` (``NAME/VARIANT[POLICY]``) as the test id."""
    import pytest

    out = []
    for path in sorted(Path(directory).glob("*.scn")):
        for scn in session(reference_policy).load_all(str(path)):
            for policy in sorted(scn.expectations):
                out.append(pytest.param(str(path), policy, scn.variant or None, id=f"{scn.name}[{policy}]"))
    return out


def assert_passes(path: str, policy: str, variant: str | None = None) -> RunResult:
    """Run a scenario file (one ``variant`` of it) under a policy, with invariants; fail
    with the details unless it met its expectation and budgets."""
    s = session(policy)
    r = s.run(s.load(path, variant), invariants=True)
    details = "; ".join(f"line {v.line}: {v.cls}: {v.detail}" for v in r.violations)
    assert r.passed, f"{r.scenario.name} under {policy}: got {r.verdict} ({details}); " \
                     f"budgets: {r.budget_failures or 'kept'}"
    return r
