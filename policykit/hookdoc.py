"""The hook reference, rendered from the hookspecs themselves (``policykit hooks``): each
spec's signature and docstring by inspection, its family from :data:`hookspecs.FAMILIES`."""

from __future__ import annotations

import inspect
from typing import Any

from . import hookspecs


def hook_specs() -> list[dict[str, Any]]:
    """Every hookspec, family by family in the order of :data:`hookspecs.FAMILIES`: name,
    family, what holds for the family, options, signature, docstring."""
    specs = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("policykit_")}
    listed = [name for _, _, names in hookspecs.FAMILIES for name in names]
    if sorted(listed) != sorted(specs):
        missing, extra = sorted(set(specs) - set(listed)), sorted(set(listed) - set(specs))
        raise RuntimeError(f"hookspecs.FAMILIES is out of step: not listed {missing}, not specs {extra}")
    out = []
    for family, about, names in hookspecs.FAMILIES:
        for name in names:
            fn = specs[name]
            opts = getattr(fn, "policykit_spec", {})
            out.append({
                "name": name, "family": family, "about": about,
                "line": fn.__code__.co_firstlineno,
                "firstresult": bool(opts.get("firstresult")), "historic": bool(opts.get("historic")),
                "signature": f"{name}{inspect.signature(fn)}".replace("'", ""),
                "doc": inspect.getdoc(fn) or "",
            })
    return out


def render_markdown() -> str:
    lines = ["# Hook reference", "",
             "Generated from `policykit/hookspecs.py` by `policykit hooks --format markdown`.", ""]
    family = None
    for h in hook_specs():
        if h["family"] != family:
            family = h["family"]
            lines += [f"## {family}", "", h["about"][0].upper() + h["about"][1:] + ".", ""]
        marks = [m for m in ("firstresult", "historic") if h[m]]
        lines += [f"### `{h['name']}`" + (f" ({', '.join(marks)})" if marks else ""), "",
                  f"```python\n{h['signature']}\n```", "", h["doc"], ""]
    return "\n".join(lines).rstrip() + "\n"
