"""policykit: judge Linux copy-on-write and page-pinning policies.

The public API.  Everything else is reachable from here or is internal.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

#: public name -> the module that defines it; imported on first use (PEP 562), so that
#: ``policykit --version`` and ``policykit check`` start without the engine
_PUBLIC = {
    "Policy": "_manager", "get_plugin_manager": "_manager", "load_policy": "_manager",
    "Context": "engine.context", "check_invariants": "engine.invariants",
    "Engine": "engine.mm", "Event": "engine.mm", "OperationFailed": "engine.mm", "Outcome": "engine.mm",
    **dict.fromkeys(("GUP_PIN_COUNTING_BIAS", "PAGE_SIZE", "GupRef", "Machine", "Mm", "Page", "Process",
                     "Pte", "Vma"), "engine.model"),
    **dict.fromkeys(("AttributeSpec", "Decision", "DecisionPointSpec", "Effect", "MetricSpec",
                     "OperationSpec", "Param", "VariantSpec", "ViolationClassSpec"), "engine.specs"),
    **dict.fromkeys(("PluginError", "PolicyKitError", "PolicyLoadError", "ScenarioError", "SourceError"),
                    "errors"),
    "hookimpl": "hookspecs", "hookspec": "hookspecs",
    "Oracle": "oracle", "Violation": "oracle",
    "RunResult": "run", "Session": "run",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'policykit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
