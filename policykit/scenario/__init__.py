"""Scenario files: syntax (:mod:`.parse`), variants (:mod:`.variants`), names and arguments
(:mod:`.check`), AST (:mod:`.model`); checked files kept between processes (:mod:`.cache`).
The parser and checker are imported when a file is not in the cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from typing import TYPE_CHECKING, Any

from ..errors import PolicyKitError, ScenarioError
from .model import Expectation, Scenario, Step

if TYPE_CHECKING:
    from ..engine.specs import Registry
    from .check import check_scenario
    from .parse import parse_scenario

__all__ = ["Scenario", "Step", "load_scenario", "load_scenarios", "parse_scenario", "check_scenario",
           "scenario_from_text", "scenarios_from_text", "unknown_policies"]


def scenarios_from_text(text: str, filename: str, registry: Registry,
                        skipped: list[tuple[str, str]] | None = None) -> list[Scenario]:
    """Parse and check scenario text: one scenario, or one per variant it lists.  Variants
    no installed plugin declares are left out and, with ``skipped``, appended to it as
    ``(NAME/VARIANT, reason)``."""
    from .check import check_scenario
    from .parse import parse_scenario
    from .variants import expand

    scenarios, left_out = expand(parse_scenario(text, filename), text, registry)
    if skipped is not None:
        skipped.extend(left_out)
    return _shared([check_scenario(scn, text, registry) for scn in scenarios])


def _shared(scenarios: list[Scenario]) -> list[Scenario]:
    """The scenarios with each step that several of them take alike (the lines after a
    variant's own, checked to the same parameters) one object: a file's variants share
    most of their steps (the built-in corpus: 3,466 step objects instead of 8,442, its
    cached pickles a quarter smaller)."""
    if len(scenarios) < 2:
        return scenarios
    seen: dict[tuple[Step, tuple[tuple[str, object], ...]], Step] = {}
    out = []
    for scn in scenarios:
        steps = []
        for step in scn.steps:
            key = (step, tuple(step.params.items()))
            try:
                steps.append(seen.setdefault(key, step))
            except TypeError:               # a parameter that cannot be hashed: its own
                steps.append(step)
        out.append(dataclasses.replace(scn, steps=tuple(steps)))
    return out


def scenario_from_text(text: str, filename: str, registry: Registry, variant: str | None = None) -> Scenario:
    """Parse and check scenario text that makes one scenario (or pick ``variant``)."""
    from .check import check_scenario
    from .parse import parse_scenario
    from .variants import expand

    scn = parse_scenario(text, filename)
    scenarios, skipped = expand(scn, text, registry)
    if variant is not None:
        scenarios = [s for s in scenarios if s.variant == variant]
        if not scenarios:
            reason = next((why for name, why in skipped if name.endswith("/" + variant)),
                          f"it lists variants {', '.join(n for n, _ in scn.variants) or '(none)'}")
            raise PolicyKitError(f"{filename}: no variant {variant!r}: {reason}")
    elif scn.variants:
        raise ScenarioError(f"{scn.name!r} has {len(scn.variants)} variants", scn.variants[0][1], text,
                            f"name one ('policykit explain --variant V'): {', '.join(n for n, _ in scn.variants)}")
    return check_scenario(scenarios[0], text, registry)


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyKitError(f"{path}: cannot read scenario: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyKitError(f"{path}: not a text file") from None


def load_scenario(path: str | Path, registry: Registry, variant: str | None = None) -> Scenario:
    """Read, parse and check a scenario file that makes one scenario (or pick ``variant``)."""
    return scenario_from_text(_read(path), str(path), registry, variant)


def load_scenarios(path: str | Path, registry: Registry,
                   skipped: list[tuple[str, str]] | None = None) -> list[Scenario]:
    """Read, parse and check a scenario file: its scenario, or one per variant (kept
    checked between processes: :mod:`.cache`)."""
    from . import cache

    text, filename = _read(path), str(path)
    entry = cache.load(text, filename, registry)
    if entry is None:
        left_out: list[tuple[str, str]] = []
        entry = (scenarios_from_text(text, filename, registry, left_out), left_out)
        cache.store(text, filename, registry, entry)
    if skipped is not None:
        skipped.extend(entry[1])
    return entry[0]


class UnknownPolicy(ScenarioError):
    """A warning: an ``expect`` or ``budget`` line names no known policy."""

    severity = "warning"
    code = "PK451"


def unknown_policies(scenarios: list[Scenario], known: set[str] | frozenset[str]) -> list[ScenarioError]:
    """Warnings for the ``expect`` and ``budget`` lines that name a policy not in ``known``
    (a typo there would never be checked): one per line, with a did-you-mean."""
    from ..errors import did_you_mean

    out: list[ScenarioError] = []
    seen: set[tuple[str, int]] = set()
    texts: dict[str, str] = {}
    for scn in scenarios:
        lines = [(e.policy, e.span, "expect") for e in scn.expectations.values()]
        lines += [(policy, bounds[0].span, "budget") for policy, bounds in scn.budgets.items() if bounds]
        lines += [(o.policy, o.span, "expect" if isinstance(o, Expectation) else "budget") for o in scn.overrides]
        for policy, span, kind in lines:
            if policy in known or (span.filename, span.line) in seen:
                continue
            seen.add((span.filename, span.line))
            hint = did_you_mean(policy, known)
            if span.filename not in texts:
                try:
                    texts[span.filename] = Path(span.filename).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    texts[span.filename] = ""
            out.append(UnknownPolicy(f"'{kind} {policy}' names no known policy, so it is never checked", span,
                                     texts[span.filename], hint or "name a policy on the policy path "
                                     "('policykit policies'), or add its directory with --policy-path"))
    out.sort(key=lambda w: (w.span.filename, w.span.line))
    return out


def __getattr__(name: str) -> Any:
    if name in ("check_scenario", "parse_scenario"):     # imported when first asked for
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{name.split('_')[0]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
