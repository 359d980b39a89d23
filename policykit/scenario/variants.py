"""Expanding a scenario with a ``variants`` line into one scenario per memory variant.

cow.c runs each of its tests on a base page, a swapped-out page, a THP and so on; a
scenario does the same by listing ``variants`` and mapping its memory with
``mmap_variant P -> NAME``.  Each variant (a :class:`~policykit.engine.specs.VariantSpec`
declared by the core or a plugin) replaces that line by its own steps.
"""

from __future__ import annotations

import dataclasses
import functools

from ..engine.specs import Registry, VariantSpec
from ..errors import PluginError, ScenarioError, did_you_mean, split_lines
from .model import Budget, Expectation, Scenario, Step
from .parse import parse_scenario

#: the step a variant replaces
MMAP_VARIANT = "mmap_variant"


def expand(scn: Scenario, text: str, registry: Registry) -> tuple[list[Scenario], list[tuple[str, str]]]:
    """The scenario for each variant an installed plugin declares (steps not yet checked),
    and ``(NAME/VARIANT, reason)`` for each variant that is skipped.

    A scenario without variants comes back as it is.  Raises :class:`ScenarioError` for a
    misused ``variants`` line, ``on`` clause or ``mmap_variant`` step.
    """
    _validate(scn, text)
    if not scn.variants:
        return [scn], []
    out: list[Scenario] = []
    skipped: list[tuple[str, str]] = []
    for name, _ in scn.variants:
        spec = registry.variants.get(name)
        if spec is None:
            skipped.append((f"{scn.name}/{name}", f"no installed plugin declares the variant {name!r}"))
            continue
        out.append(_one(scn, spec))
    return out, skipped


def _validate(scn: Scenario, text: str) -> None:
    uses = [s for s in scn.steps if s.op == MMAP_VARIANT]
    names = [n for n, _ in scn.variants]
    if not scn.variants:
        if uses:
            raise ScenarioError(f"'{MMAP_VARIANT}' in a scenario without variants", uses[0].span, text,
                                "list the memory to run on: variants base swapped thp ...")
        if scn.overrides:
            first = scn.overrides[0].variants[0]
            raise ScenarioError(f"'on {first[0]}' in a scenario without variants", first[1], text,
                                "'on VARIANT' is for scenarios with a 'variants' line")
        return
    for i, (name, span) in enumerate(scn.variants):
        if name in names[:i]:
            raise ScenarioError(f"variant {name!r} listed twice", span, text, "list each variant once")
    if not uses:
        raise ScenarioError(f"variants without '{MMAP_VARIANT}'", scn.variants[0][1], text,
                            f"map the memory under test with '{MMAP_VARIANT} PROCESS -> NAME'")
    for step in uses:
        if len(step.args) != 1 or step.args[0].kind != "word" or step.result is None:
            raise ScenarioError(f"'{MMAP_VARIANT}' takes a process and names the memory", step.span, text,
                                f"usage: {MMAP_VARIANT} PROCESS -> NAME")
    for line in scn.overrides:
        for name, span in line.variants:
            if name not in names:
                raise ScenarioError(f"{name!r} is not one of this scenario's variants", span, text,
                                    did_you_mean(name, names) or f"variants: {', '.join(names)}")


def _one(scn: Scenario, spec: VariantSpec) -> Scenario:
    steps: list[Step] = []
    for step in scn.steps:
        if step.op == MMAP_VARIANT:
            steps.extend(dataclasses.replace(s, span=step.span, result_span=step.span if s.result else None)
                         for s in _template(spec, str(step.args[0].value), step.result))  # type: ignore[arg-type]
        else:
            steps.append(step)
    expectations = dict(scn.expectations)
    budgets = dict(scn.budgets)
    for line in scn.overrides:
        if any(name == spec.name for name, _ in line.variants):
            if isinstance(line, Expectation):
                expectations[line.policy] = line
            else:
                assert isinstance(line, Budget)
                budgets[line.policy] = line.bounds
    return dataclasses.replace(
        scn, name=f"{scn.name}/{spec.name}", steps=tuple(steps),
        title=f"{scn.title} ({spec.title})" if scn.title else spec.title,
        tags=scn.tags | {spec.name} | spec.tags, expectations=expectations, budgets=budgets,
        overrides=(), variant=spec.name,
    )


@functools.lru_cache(maxsize=256)
def _template(spec: VariantSpec, process: str, region: str) -> tuple[Step, ...]:
    """The variant's steps for ``process`` and ``region``, parsed (once per names)."""
    where = f"<variant {spec.name} of {spec.provider}>"
    try:
        text = spec.steps.format(process=process, region=region)
        steps = parse_scenario("\n".join(line.strip() for line in split_lines(text)), where).steps
    except (KeyError, IndexError, ValueError, ScenarioError) as exc:
        raise PluginError(f"variant {spec.name!r}: its steps do not parse: {exc}",
                          plugin=spec.provider) from None
    if not any(s.result == region for s in steps):
        raise PluginError(f"variant {spec.name!r}: its steps never name '{{region}}'", plugin=spec.provider)
    if any(s.op == MMAP_VARIANT for s in steps):
        raise PluginError(f"variant {spec.name!r}: its steps use '{MMAP_VARIANT}'", plugin=spec.provider)
    return steps


__all__ = ["MMAP_VARIANT", "expand"]
