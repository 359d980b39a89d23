"""Scenario AST: frozen dataclasses with source positions."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import Span


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument as written: a word, a number, or a name with ``[i]`` / ``[i:j]``."""

    kind: str                                   # word | int | index | slice
    value: Any                                  # str for names, int for numbers
    index: tuple[int | None, int | None] | None = None
    span: Span | None = None

    def __str__(self) -> str:
        if self.kind == "index":
            return f"{self.value}[{self.index[0]}]"  # type: ignore[index]
        if self.kind == "slice":
            lo, hi = self.index  # type: ignore[misc]
            return f"{self.value}[{'' if lo is None else lo}:{'' if hi is None else hi}]"
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Step:
    """One operation line.  ``params`` is filled by the checker: parameter name to value
    (process/ref/region names, ``(name, (lo, hi))`` for regions and refs, ints, words,
    frozensets of flags)."""

    op: str
    args: tuple[Arg, ...]
    result: str | None
    span: Span
    text: str
    result_span: Span | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def line(self) -> int:
        return self.span.line


@dataclass(frozen=True, slots=True)
class Expectation:
    """``expect POLICY: ok`` or ``expect POLICY: CLASS...``; with ``on VARIANT...`` it
    holds only on those variants."""

    policy: str
    classes: frozenset[str]
    span: Span
    class_spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False)
    variants: tuple[tuple[str, Span], ...] = field(default=(), compare=False)

    def describe(self) -> str:
        return " ".join(sorted(self.classes)) or "ok"


@dataclass(frozen=True, slots=True)
class Bound:
    metric: str
    cmp: str
    value: int
    span: Span

    def holds(self, actual: int) -> bool:
        return {"<=": actual <= self.value, ">=": actual >= self.value,
                "==": actual == self.value, "<": actual < self.value,
                ">": actual > self.value}[self.cmp]

    def __str__(self) -> str:
        return f"{self.metric} {self.cmp} {self.value}"


@dataclass(frozen=True, slots=True)
class Budget:
    """``budget POLICY [on VARIANT...]: BOUND, ...``."""

    policy: str
    bounds: tuple[Bound, ...]
    span: Span
    variants: tuple[tuple[str, Span], ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario as run: ``expectations`` and ``budgets`` by policy name.

    A scenario file with a ``variants`` line parses to one Scenario carrying ``variants``
    (names and spans) and ``overrides`` (the ``on VARIANT`` lines); expanding it gives one
    Scenario per variant, named ``NAME/VARIANT``, with ``variant`` set.
    """

    name: str
    steps: tuple[Step, ...]
    filename: str
    title: str = ""
    tags: frozenset[str] = frozenset()
    source: str = ""
    expectations: dict[str, Expectation] = field(default_factory=dict)
    budgets: dict[str, tuple[Bound, ...]] = field(default_factory=dict)
    variants: tuple[tuple[str, Span], ...] = ()
    overrides: tuple[Expectation | Budget, ...] = ()
    variant: str = ""


def _by_position(cls: type) -> None:
    """Pickle instances of ``cls`` as a call with their fields in order: the checked
    corpus is cached pickled (:mod:`.cache`), and a slots dataclass otherwise pickles
    through a Python-level state dict per object, several times slower to load."""
    names = tuple(f.name for f in fields(cls))

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, tuple([getattr(self, n) for n in names])
    cls.__reduce__ = __reduce__  # type: ignore[method-assign]


for _cls in (Arg, Step, Expectation, Bound, Budget, Scenario):
    _by_position(_cls)
