"""Policy AST: frozen dataclasses, each with the span it came from.

Spans are left out of equality (``compare=False``), so two ASTs are equal when they say
the same thing however they are laid out: ``policykit fmt`` relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Span

_NOSPAN = Span("<none>", 0, 0)


def _span() -> Span:
    return field(default=_NOSPAN, compare=False, repr=False)


# -- expressions ------------------------------------------------------------------------

@dataclass(frozen=True)
class Expr:
    pass


@dataclass(frozen=True)
class Int(Expr):
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Bool(Expr):
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class Name(Expr):
    """A constant, a predicate parameter, or a context object (``page``, ``mm``...)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Attr(Expr):
    """``obj.name``: an attribute of a context object or of a parameter."""

    obj: str
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class BoolOp(Expr):
    """``and`` / ``or`` over two or more operands."""

    op: str
    operands: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Arith(Expr):
    """``+``, ``-`` or ``*``."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


def children(e: Expr) -> tuple[Expr, ...]:
    """The expressions directly inside ``e``, left to right."""
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Not):
        return (e.operand,)
    if isinstance(e, BoolOp):
        return e.operands
    if isinstance(e, (Compare, Arith)):
        return (e.left, e.right)
    return ()


def walk(e: Expr | None) -> list[Expr]:
    """``e`` and every expression inside it, outermost first (empty for None)."""
    out: list[Expr] = []
    todo = [e] if e is not None else []
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(reversed(children(x)))
    return out


# -- definitions ----------------------------------------------------------------------

@dataclass(frozen=True)
class Const:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Flag:
    """``flag page.anon_exclusive = true "doc"``: policy-owned state with its initial value."""

    owner: str
    name: str
    default: Expr
    doc: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    span: Span = _span()


@dataclass(frozen=True)
class Pred:
    name: str
    params: tuple[Param, ...]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Effect:
    """``set owner.name [= value]``, ``clear owner.name`` or ``warn "text"``."""

    kind: str                       # set | clear | warn
    owner: str = ""
    name: str = ""
    value: Expr | None = None
    text: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class Rule:
    """``condition -> action [effects]``; ``condition`` None is ``otherwise``."""

    condition: Expr | None
    action: str
    effects: tuple[Effect, ...] = ()
    span: Span = _span()
    action_span: Span = _span()


@dataclass(frozen=True)
class Block:
    """``on point { rules }``."""

    point: str
    rules: tuple[Rule, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Header:
    kind: str                       # policy | summary | era | source | extends | unrealizable
    value: str
    span: Span = _span()
    quoted: bool = False            # written as a "string" (for extends: a path)


@dataclass(frozen=True)
class PolicyFile:
    """One ``.pol`` file as written, items in source order."""

    filename: str
    items: tuple[Header | Const | Flag | Pred | Block, ...]
    source: str = field(default="", compare=False, repr=False)

    def headers(self, kind: str) -> list[Header]:
        return [i for i in self.items if isinstance(i, Header) and i.kind == kind]
