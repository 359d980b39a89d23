"""The hook reference, rendered from the hookspecs' own docstrings (``policykit hooks``)."""

from __future__ import annotations

import inspect
import re
from typing import Any

from . import hookspecs

_SECTION = re.compile(r"^# (Registration hooks|Decision hooks|Mechanism hooks|Observer hooks)", re.M)


def hook_specs() -> list[dict[str, Any]]:
    """Every hookspec in source order: name, family, options, signature, docstring."""
    source = inspect.getsource(hookspecs)
    families = [(m.start(), m.group(1)) for m in _SECTION.finditer(source)]
    out = []
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("policykit_"):
            continue
        _, line = inspect.getsourcelines(fn)
        offset = len("".join(source.splitlines(True)[: line - 1]))
        family = next((f for pos, f in reversed(families) if pos < offset), "")
        opts = getattr(fn, "policykit_spec", {})
        out.append({
            "name": name, "family": family, "line": line,
            "firstresult": bool(opts.get("firstresult")), "historic": bool(opts.get("historic")),
            "signature": f"{name}{inspect.signature(fn)}".replace("'", ""),
            "doc": inspect.getdoc(fn) or "",
        })
    return sorted(out, key=lambda h: h["line"])


def render_markdown() -> str:
    lines = ["# Hook reference", "",
             "Generated from `policykit/hookspecs.py` by `policykit hooks --format markdown`.", ""]
    family = None
    for h in hook_specs():
        if h["family"] != family:
            family = h["family"]
            lines += [f"## {family}", ""]
        marks = [m for m in ("firstresult", "historic") if h[m]]
        lines += [f"### `{h['name']}`" + (f" ({', '.join(marks)})" if marks else ""), "",
                  f"```python\n{h['signature']}\n```", "", h["doc"], ""]
    return "\n".join(lines).rstrip() + "\n"
