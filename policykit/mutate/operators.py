"""One-token mutants of a policy, PIT-style: each changes one thing the policy says.

The policy is taken with its ``extends`` chain resolved (what ``policykit show``
prints), so a mutant of a parent's rule is a mutant of this policy.  Operators:

=================  ==================================================================
``negate``         a rule's guard ``G`` becomes ``not G``
``andor``          an ``and`` becomes ``or``, and back
``cmp``            a comparison operator becomes each other one
``const``          an integer becomes N+1, N-1 and 0; GUP_PIN_COUNTING_BIAS (1024) also
                   1023, 1025 and 512
``drop-rule``      a rule with a guard is dropped
``drop-conjunct``  one operand of an ``and`` is dropped
``action``         a rule's action becomes each other action of its decision point
``attr``           an attribute becomes each other of its object with the same type
``swap``           two adjacent rules with guards change places
``drop-effect``    a ``[set ...]`` or ``[clear ...]`` effect is dropped
=================  ==================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dsl import ast
from ..dsl.check import CheckedPolicy
from ..engine.specs import Registry

OPERATORS = ("negate", "andor", "cmp", "const", "drop-rule", "drop-conjunct", "action", "attr", "swap",
             "drop-effect")
_CMPS = ("==", "!=", "<", "<=", ">", ">=")
GUP_PIN_COUNTING_BIAS = 1024


@dataclass(frozen=True)
class Mutant:
    """One change to a policy: the operator, where (``file:line`` of the rule or
    predicate changed, and the decision point or ``pred NAME``), what it says, and the
    policy's definitions with the change made."""

    index: int
    operator: str
    where: str
    point: str
    rule: str
    description: str
    items: tuple[Any, ...] = dataclasses.field(repr=False, compare=False)


def _loc(span: Any) -> str:
    return f"{Path(span.filename).name}:{span.line}"


def _subexprs(e: ast.Expr, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], ast.Expr]]:
    """Every expression in ``e`` with its path (child positions from the root)."""
    yield path, e
    for i, child in enumerate(ast.children(e)):
        yield from _subexprs(child, path + (i,))


def _with_children(e: ast.Expr, kids: tuple[ast.Expr, ...]) -> ast.Expr:
    if isinstance(e, ast.Call):
        return dataclasses.replace(e, args=kids)
    if isinstance(e, ast.Not):
        return dataclasses.replace(e, operand=kids[0])
    if isinstance(e, ast.BoolOp):
        return dataclasses.replace(e, operands=kids)
    return dataclasses.replace(e, left=kids[0], right=kids[1])


def _replace(e: ast.Expr, path: tuple[int, ...], new: ast.Expr) -> ast.Expr:
    if not path:
        return new
    kids = list(ast.children(e))
    kids[path[0]] = _replace(kids[path[0]], path[1:], new)
    return _with_children(e, tuple(kids))


class _Types:
    """The type of each attribute a mutated expression may name instead of another."""

    def __init__(self, registry: Registry, policy: CheckedPolicy) -> None:
        self.by_owner: dict[tuple[str, str], list[str]] = {}
        self.type_of: dict[tuple[str, str], str] = {}
        names = {bool: "bool", int: "int"}
        for (owner, name), spec in registry.attributes.items():
            if spec.oracle_only and policy.unrealizable is None:
                continue
            t = names.get(spec.type)
            if t is not None:
                self.type_of[(owner, name)] = t
        for (owner, name), flag in policy.flags.items():
            self.type_of[(owner, name)] = flag.type
        for (owner, name), t in sorted(self.type_of.items()):
            self.by_owner.setdefault((owner, t), []).append(name)

    def others(self, owner: str, name: str) -> list[str]:
        t = self.type_of.get((owner, name))
        return [n for n in self.by_owner.get((owner, t), ()) if n != name] if t else []


def _expr_mutants(e: ast.Expr, env: dict[str, str], types: _Types,
                  guard: bool) -> Iterator[tuple[str, str, ast.Expr]]:
    """(operator, description, new expression) for every one-token change of ``e``;
    ``env`` maps names to their owners (to find an attribute's type)."""
    if guard:
        yield "negate", "negate the guard", ast.Not(e)
    for path, x in _subexprs(e):
        if isinstance(x, ast.BoolOp):
            other = "or" if x.op == "and" else "and"
            yield "andor", f"'{x.op}' -> '{other}'", _replace(e, path, dataclasses.replace(x, op=other))
            if x.op == "and":
                for i in range(len(x.operands)):
                    rest = x.operands[:i] + x.operands[i + 1:]
                    new = rest[0] if len(rest) == 1 else dataclasses.replace(x, operands=rest)
                    yield "drop-conjunct", f"drop conjunct {i + 1} of '{x.op}'", _replace(e, path, new)
        elif isinstance(x, ast.Compare):
            for op in _CMPS:
                if op != x.op:
                    yield "cmp", f"'{x.op}' -> '{op}'", _replace(e, path, dataclasses.replace(x, op=op))
        elif isinstance(x, ast.Int):
            for value in _int_mutants(x.value):
                yield "const", f"{x.value} -> {value}", _replace(e, path, dataclasses.replace(x, value=value))
        elif isinstance(x, ast.Attr):
            owner = env.get(x.obj)
            for name in types.others(owner, x.name) if owner else ():
                yield "attr", f"{x.obj}.{x.name} -> {x.obj}.{name}", _replace(e, path, dataclasses.replace(x, name=name))


def _int_mutants(v: int) -> list[int]:
    out = [v + 1, v - 1, 0]
    if v == GUP_PIN_COUNTING_BIAS:
        out += [1023, 1025, 512]
    return [x for x in dict.fromkeys(out) if x != v and x >= 0]


def mutants(policy: CheckedPolicy, registry: Registry, operators: tuple[str, ...] = OPERATORS) -> list[Mutant]:
    """Every one-token mutant of ``policy`` (resolved) by the chosen operators, in a
    fixed order: constants, predicates, then the blocks rule by rule."""
    from ..dsl.fmt import in_force

    preds_used, consts_used = in_force(policy)
    consts = [c for n, c in policy.const_defs.items() if n in consts_used]
    flags = [f.origin for f in policy.flags.values()]
    preds = [p for n, p in policy.preds.items() if n in preds_used]
    blocks = list(policy.blocks.values())
    types = _Types(registry, policy)
    out: list[Mutant] = []

    def add(op: str, where: Any, point: str, rule: str, text: str, items: list[Any]) -> None:
        if op in operators:
            out.append(Mutant(len(out), op, _loc(where), point, rule, text, tuple(items)))

    def items(consts=consts, preds=preds, blocks=blocks) -> list[Any]:  # type: ignore[no-untyped-def]
        return [*consts, *flags, *preds, *blocks]

    for i, c in enumerate(consts):
        for op, text, new in _expr_mutants(c.value, {}, types, guard=False):
            changed = consts[:i] + [dataclasses.replace(c, value=new)] + consts[i + 1:]
            add(op, c.span, f"const {c.name}", _loc(c.span), f"const {c.name}: {text}", items(consts=changed))
    for i, p in enumerate(preds):
        env = {q.name: q.type for q in p.params}
        for op, text, new in _expr_mutants(p.body, env, types, guard=False):
            changed = preds[:i] + [dataclasses.replace(p, body=new)] + preds[i + 1:]
            add(op, p.span, f"pred {p.name}", _loc(p.span), f"pred {p.name}: {text}", items(preds=changed))
    spec_of = registry.decision_points
    for b, block in enumerate(blocks):
        env = {o: o for o in (spec_of[block.point].context if block.point in spec_of else ())}
        actions = spec_of[block.point].actions if block.point in spec_of else ()
        rules = list(block.rules)

        def with_rules(new_rules: list[ast.Rule], b: int = b, block: ast.Block = block) -> list[Any]:
            return items(blocks=blocks[:b] + [dataclasses.replace(block, rules=tuple(new_rules))] + blocks[b + 1:])

        for r, rule in enumerate(rules):
            here = _loc(rule.span)

            def put(new: ast.Rule, r: int = r) -> list[Any]:
                return with_rules(rules[:r] + [new] + rules[r + 1:])

            if rule.condition is not None:
                for op, text, new in _expr_mutants(rule.condition, env, types, guard=True):
                    add(op, rule.span, block.point, here, text, put(dataclasses.replace(rule, condition=new)))
                add("drop-rule", rule.span, block.point, here, "drop the rule", with_rules(rules[:r] + rules[r + 1:]))
                nxt = rules[r + 1] if r + 1 < len(rules) else None
                if nxt is not None and nxt.condition is not None:
                    add("swap", rule.span, block.point, here, f"swap with the rule at line {nxt.span.line}",
                        with_rules(rules[:r] + [nxt, rule] + rules[r + 2:]))
            for action in actions:
                if action != rule.action:
                    add("action", rule.span, block.point, here, f"-> {rule.action} becomes -> {action}",
                        put(dataclasses.replace(rule, action=action)))
            for e, eff in enumerate(rule.effects):
                if eff.kind in ("set", "clear"):
                    rest = rule.effects[:e] + rule.effects[e + 1:]
                    add("drop-effect", rule.span, block.point, here, f"drop [{eff.kind} {eff.owner}.{eff.name}]",
                        put(dataclasses.replace(rule, effects=rest)))
    return out


def mutant_name(policy: str, mutant: Mutant) -> str:
    """The mutant's policy name: ``linux-6.x.mutant-12``."""
    return f"{policy}.mutant-{mutant.index}"


def mutant_file(policy: CheckedPolicy, mutant: Mutant) -> ast.PolicyFile:
    """The mutant as a policy file's AST (one file, no extends), to check and compile."""
    headers = [ast.Header("policy", mutant_name(policy.name, mutant))]
    if policy.unrealizable is not None:
        headers.append(ast.Header("unrealizable", policy.unrealizable))
    return ast.PolicyFile(policy.filename, (*headers, *mutant.items))


def mutant_text(policy: CheckedPolicy, mutant: Mutant) -> str:
    """The mutant as ``.pol`` text (for a report, or to keep a survivor)."""
    from ..dsl.fmt import _Printer

    body = _Printer(dataclasses.replace(mutant_file(policy, mutant), filename="<mutant>")).run()
    return f"# {policy.name}, mutant {mutant.index}: {mutant.where} ({mutant.point}): {mutant.description}\n{body}"


