"""The built-in corpus: scenario directories the core and the installed plugins declare,
and selecting scenarios by tag and name."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import Path

import pluggy

from .errors import PolicyKitError, did_you_mean
from .scenario.model import Scenario


def corpus_dirs(pm: pluggy.PluginManager) -> list[Path]:
    """The directories of the built-in corpus, core first."""
    dirs: list[Path] = []
    for found in reversed(pm.hook.policykit_add_scenario_dirs()):
        dirs.extend(Path(d) for d in found or ())
    return list(dict.fromkeys(dirs))


def scenario_files(args: Sequence[str], pm: pluggy.PluginManager) -> list[Path]:
    """Files as given; directories expand to their ``*.scn``; none: the project's corpus
    (``[tool.policykit] corpus``), or else the built-in one."""
    from .config import project

    paths = [Path(a) for a in args] if args else list(project().corpus) or corpus_dirs(pm)
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("*.scn")) if p.is_dir() else [p])
    return out


def select(scenarios: Iterable[Scenario], tags: Sequence[str] = (), pattern: str | None = None,
           variants: Sequence[str] = ()) -> list[Scenario]:
    """Scenarios carrying every tag in ``tags``; with ``pattern``, whose name (``NAME`` or
    ``NAME/VARIANT``) matches it (a glob, or a substring); with ``variants``, the scenarios
    without variants and those variants of the others.  A variant (at a size:
    ``thp:64k``) no scenario runs is an error: a typo would quietly leave every variant out."""
    scenarios = list(scenarios)
    run = {scn.variant for scn in scenarios if scn.variant}
    for name in variants:
        if name not in run:
            hint = did_you_mean(name, run)
            raise PolicyKitError(f"--variant {name!r}: no scenario runs that variant"
                                 + (f"; {hint}" if hint else "")
                                 + " (see 'policykit corpus' for the variants and sizes each runs)")
    out = []
    for scn in scenarios:
        if any(t not in scn.tags for t in tags):
            continue
        if pattern and not (fnmatch.fnmatch(scn.name, pattern) or pattern in scn.name):
            continue
        if variants and scn.variant and scn.variant not in variants:
            continue
        out.append(scn)
    return out
