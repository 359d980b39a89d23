"""A compiled policy's code made a pluggy plugin: its decision hooks, and the flags it
declares.  Shared by the compiler (:mod:`.compile`) and the cache of compiled policies
(:mod:`.cache`), which must not need the compiler's imports."""

from __future__ import annotations

import types
from types import CodeType
from typing import Any

from ..engine.reads import HELPERS
from ..engine.specs import AttributeSpec, Decision, Effect


def policy_plugin(name: str, filename: str, code: CodeType, flags: list[AttributeSpec]) -> Any:
    """Run the verified ``code`` of policy ``name`` (a module of rule functions, with no
    builtins) and make its hooks a plugin object that declares ``flags``."""
    namespace: dict[str, Any] = {"__builtins__": {}, "Decision": Decision, "Effect": Effect, **HELPERS}
    exec(code, namespace)  # noqa: S102 - verified generated code, see policykit.dsl.compile
    hooks = {k: v for k, v in namespace.items() if k.startswith("policykit_")}
    raw = namespace.get("raw_rules")
    raw_points = namespace.get("RAW_POINTS", ())
    for hook, fn in hooks.items():
        fn.bounded = True       # checked code: no loop, no call out, a bounded cost (PK3xx)
        point = hook[len("policykit_"):]
        rules = namespace[f"decide_{point}"]
        #: the rules without the context: (function, the context objects it takes, in
        #: order); the engine calls it with those objects' views (Dispatch.direct)
        fn.direct = (rules, tuple(a[2:] for a in rules.__code__.co_varnames[:rules.__code__.co_argcount]))
        #: the same rules reading the engine's objects themselves: (the factory of every
        #: point's, this point's place in what it makes), see Views.raw
        fn.raw = (raw, raw_points.index(point)) if raw is not None and point in raw_points else None

    def policykit_add_attributes() -> list[AttributeSpec]:
        return flags

    return types.SimpleNamespace(__name__=f"policy:{name}", __file__=filename,
                                 policykit_add_attributes=policykit_add_attributes, **hooks)
