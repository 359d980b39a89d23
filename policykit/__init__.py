"""policykit: judge Linux copy-on-write and page-pinning policies.

The public API.  Everything else is reachable from here or is internal.
"""

from __future__ import annotations

from typing import Any

from ._manager import Policy, get_plugin_manager, load_policy
from .engine.context import Context
from .engine.invariants import check_invariants
from .engine.mm import Engine, Event, OperationFailed, Outcome
from .engine.model import GUP_PIN_COUNTING_BIAS, PAGE_SIZE, GupRef, Machine, Mm, Page, Process, Pte, Vma
from .engine.specs import (
    AttributeSpec,
    Decision,
    DecisionPointSpec,
    Effect,
    MetricSpec,
    OperationSpec,
    Param,
    VariantSpec,
    ViolationClassSpec,
)
from .errors import PluginError, PolicyKitError, PolicyLoadError, ScenarioError, SourceError
from .hookspecs import hookimpl, hookspec
from .oracle import Oracle, Violation
from .run import RunResult, Session

__all__ = [
    "AttributeSpec", "Context", "Decision", "DecisionPointSpec", "Effect", "Engine", "Event",
    "GUP_PIN_COUNTING_BIAS", "GupRef", "Machine", "MetricSpec", "Mm", "Page", "Process", "Pte", "Vma", "OperationFailed", "OperationSpec",
    "Oracle", "Outcome", "PAGE_SIZE", "Param", "PluginError", "Policy", "PolicyKitError",
    "PolicyLoadError", "RunResult", "ScenarioError", "Session", "SourceError", "Violation",
    "VariantSpec", "ViolationClassSpec", "check_invariants", "get_plugin_manager", "hookimpl", "hookspec", "load_policy",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("policykit")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module 'policykit' has no attribute {name!r}")
