"""Expanding a scenario with a ``variants`` line into one scenario per memory variant.

cow.c runs each of its tests on a base page, a swapped-out page, a THP and so on; a
scenario does the same by listing ``variants`` and mapping its memory with
``mmap_variant P -> NAME``.  Each variant (a :class:`~policykit.engine.specs.VariantSpec`
declared by the core or a plugin) replaces that line by its own steps.
"""

from __future__ import annotations

import dataclasses
import functools

from ..engine.specs import Registry, VariantSpec, size_pages
from ..errors import PluginError, ScenarioError, Span, did_you_mean, split_lines
from .model import Budget, Expectation, Scenario, Step
from .parse import parse_scenario

#: the step a variant replaces
MMAP_VARIANT = "mmap_variant"


def expand(scn: Scenario, text: str, registry: Registry) -> tuple[list[Scenario], list[tuple[str, str]]]:
    """The scenario for each variant an installed plugin declares (steps not yet checked),
    and ``(NAME/VARIANT, reason)`` for each variant that is skipped.

    A scenario without variants comes back as it is.  A sized variant runs at the size
    named (``VARIANT:SIZE``), at each of its sizes (``VARIANT:*``), or at its default.
    Raises :class:`ScenarioError` for a misused ``variants`` line, ``on`` clause or
    ``mmap_variant`` step.
    """
    _validate(scn, text)
    if not scn.variants:
        return [scn], []
    out: list[Scenario] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for listed, span in scn.variants:
        name, _, size = listed.partition(":")
        spec = registry.variants.get(name)
        if spec is None:
            skipped.append((f"{scn.name}/{listed}", f"no installed plugin declares the variant {name!r}"))
            continue
        for label in _sizes(spec, size, span, text):
            run = variant_name(spec, label)
            if run in seen:
                raise ScenarioError(f"variant {run!r} listed twice", span, text, "list each variant once")
            seen.add(run)
            missing = _missing_operation(spec, label, registry)
            if missing:
                skipped.append((f"{scn.name}/{run}", f"variant {spec.name!r} needs the operation "
                                                     f"{missing!r}, which no installed plugin declares"))
                continue
            out.append(_one(scn, spec, label))
    return out, skipped


def variant_name(spec: VariantSpec, size: str) -> str:
    """How a run of ``spec`` at ``size`` is named: the bare name at the default size."""
    return spec.name if not size or size == spec.sizes[-1] else f"{spec.name}:{size}"


def _sizes(spec: VariantSpec, size: str, span: Span, text: str) -> list[str]:
    """The sizes ``VARIANT:size`` runs at ("" for a variant without sizes)."""
    if not spec.sizes:
        if size:
            raise ScenarioError(f"variant {spec.name!r} has no sizes", span, text,
                                f"name it without ':{size}'")
        return [""]
    if not size:
        return [spec.sizes[-1]]
    if size == "*":
        return list(spec.sizes)
    label = size.lower()
    if label not in spec.sizes:
        raise ScenarioError(f"variant {spec.name!r} has no size {size!r}", span, text,
                            did_you_mean(label, spec.sizes) or f"its sizes: {', '.join(spec.sizes)}")
    return [label]


def _missing_operation(spec: VariantSpec, size: str, registry: Registry) -> str:
    """An operation the variant's steps use that no installed plugin declares ("" none):
    a variant of one plugin may map memory with another's operation."""
    for step in _template(spec, "p", "r", size):
        if step.op not in registry.operations:
            return step.op
    return ""


def _matches(on: str, spec: VariantSpec, size: str) -> bool:
    """Does ``on VARIANT[:SIZE|:*]`` name the run of ``spec`` at ``size``?"""
    name, _, want = on.partition(":")
    if name != spec.name:
        return False
    return want == "*" or variant_name(spec, want.lower()) == variant_name(spec, size)


def _listed(on: str, names: list[str]) -> bool:
    """Does ``on VARIANT[:SIZE|:*]`` name something the ``variants`` line runs?"""
    if on in names:
        return True
    base, _, size = on.partition(":")
    listed = [n for n in names if n.partition(":")[0] == base]
    return bool(listed) and (size == "*" or f"{base}:*" in listed)


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
            if not _listed(name, names):
                raise ScenarioError(f"{name!r} is not one of this scenario's variants", span, text,
                                    did_you_mean(name, names) or f"variants: {', '.join(names)}")


def _one(scn: Scenario, spec: VariantSpec, size: str = "") -> Scenario:
    steps: list[Step] = []
    for step in scn.steps:
        if step.op == MMAP_VARIANT:
            steps.extend(Step(s.op, s.args, s.result, step.span, s.text, step.span if s.result else None, s.params)
                         for s in _template(spec, str(step.args[0].value), step.result, size))  # type: ignore[arg-type]
        else:
            steps.append(step)
    expectations = dict(scn.expectations)
    budgets = dict(scn.budgets)
    # 'on VARIANT:*' first, then the lines naming this size: the more precise line wins
    lines = sorted((line for line in scn.overrides
                    if any(_matches(name, spec, size) for name, _ in line.variants)),
                   key=lambda line: all(name.endswith(":*") for name, _ in line.variants), reverse=True)
    for line in lines:
        if isinstance(line, Expectation):
            expectations[line.policy] = line
        else:
            assert isinstance(line, Budget)
            budgets[line.policy] = line.bounds
    name = variant_name(spec, size)
    title = spec.title + (f" ({_label(size)})" if spec.sizes else "")
    return dataclasses.replace(
        scn, name=f"{scn.name}/{name}", steps=tuple(steps),
        title=f"{scn.title} ({title})" if scn.title else title,
        tags=scn.tags | {spec.name} | spec.tags, expectations=expectations, budgets=budgets,
        overrides=(), variant=name,
    )


def _label(size: str) -> str:
    """``64k`` as cow.c writes it: ``64 KiB``."""
    return f"{size[:-1]} {size[-1].upper()}iB"


@functools.lru_cache(maxsize=256)
def _template(spec: VariantSpec, process: str, region: str, size: str = "") -> tuple[Step, ...]:
    """The variant's steps for ``process`` and ``region`` at ``size``, parsed (once per names)."""
    where = f"<variant {spec.name} of {spec.provider}>"
    nr = size_pages(size) if size else 0
    try:
        text = spec.steps.format(process=process, region=region, nr=nr, half=nr // 2, size=size)
        steps = parse_scenario("\n".join(line.strip() for line in split_lines(text)), where).steps
    except (KeyError, IndexError, ValueError, ScenarioError) as exc:
        raise PluginError(f"variant {spec.name!r}: its steps do not parse: {exc}",
                          plugin=spec.provider) from None
    if not any(s.result == region for s in steps):
        raise PluginError(f"variant {spec.name!r}: its steps never name '{{region}}'", plugin=spec.provider)
    if any(s.op == MMAP_VARIANT for s in steps):
        raise PluginError(f"variant {spec.name!r}: its steps use '{MMAP_VARIANT}'", plugin=spec.provider)
    return steps


__all__ = ["MMAP_VARIANT", "expand", "variant_name"]
