"""Checked policy to Python source to a pluggy plugin.

The generated module uses a fixed set of constructs: function definitions, ``if``,
``return``, ``and``/``or``/``not``, comparisons, ``+ - *``, integer and boolean
literals, attribute reads on context objects, and calls of its own predicates.  Every
name in it is either fixed by the compiler or a policy name behind a prefix
(``p_`` for predicates, ``v_`` for parameters); attribute names are checked against the
registry and the policy's flags; strings enter only through ``repr()``.  It runs with no
builtins, so a policy file can compute decisions and nothing else.
"""

from __future__ import annotations

import ast as pyast
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.specs import AttributeSpec, Decision, Effect
from . import ast
from .check import CheckedPolicy

_PY_TYPES = {"bool": bool, "int": int}

#: the Python constructs a generated module may contain
_ALLOWED = (
    pyast.Module, pyast.FunctionDef, pyast.arguments, pyast.arg, pyast.Return, pyast.If,
    pyast.Assign, pyast.BoolOp, pyast.And, pyast.Or, pyast.UnaryOp, pyast.Not, pyast.Compare,
    pyast.Eq, pyast.NotEq, pyast.Lt, pyast.LtE, pyast.Gt, pyast.GtE, pyast.BinOp, pyast.Add,
    pyast.Sub, pyast.Mult, pyast.Constant, pyast.Name, pyast.Load, pyast.Store,
    pyast.Attribute, pyast.Call, pyast.Tuple,
)


class UnsafeCodeError(AssertionError):
    """The generated module contains something outside the whitelist: a compiler bug."""


def verify_source(source: str) -> None:
    """Check a generated module against the whitelist: node types, no name or attribute
    starting with '_', calls only of predicates, Decision and Effect, constants only
    numbers, booleans, None and strings."""
    for node in pyast.walk(pyast.parse(source)):
        if not isinstance(node, _ALLOWED):
            raise UnsafeCodeError(f"generated code contains {type(node).__name__}")
        if isinstance(node, pyast.Attribute) and node.attr.startswith("_"):
            raise UnsafeCodeError(f"generated code reads attribute {node.attr!r}")
        if isinstance(node, pyast.Name) and node.id.startswith("_"):
            raise UnsafeCodeError(f"generated code names {node.id!r}")
        if isinstance(node, pyast.Call):
            f = node.func
            if not (isinstance(f, pyast.Name) and (f.id.startswith("p_") or f.id in ("Decision", "Effect"))) \
                    or node.keywords:
                raise UnsafeCodeError("generated code calls something other than a predicate")
        if isinstance(node, pyast.Constant) and not isinstance(node.value, (bool, int, str, type(None))):
            raise UnsafeCodeError(f"generated code holds a {type(node.value).__name__} constant")


def _safe(text: str) -> str:
    """Text fit for a comment line: no line breaks or other control characters."""
    return text.encode("unicode_escape").decode("ascii")


@dataclass
class CompiledPolicy:
    """The generated source, and the plugin object built from it."""

    checked: CheckedPolicy
    source: str
    plugin: Any


class _Gen:
    def __init__(self, policy: CheckedPolicy) -> None:
        self.p = policy
        self.lines: list[str] = []
        self.constants: list[str] = []
        self.nconst = 0

    def expr(self, e: ast.Expr, params: set[str], top: bool = False) -> str:
        if isinstance(e, ast.Bool):
            return "True" if e.value else "False"
        if isinstance(e, ast.Int):
            return str(int(e.value))
        if isinstance(e, ast.Name):
            if e.name in params:
                return f"v_{e.name}"
            if e.name in self.p.consts:
                return repr(self.p.consts[e.name])
            return e.name                       # a context object: page, pte, vma, mm, foll
        if isinstance(e, ast.Attr):
            obj = f"v_{e.obj}" if e.obj in params else e.obj
            return f"{obj}.{e.name}"
        if isinstance(e, ast.Call):
            return f"p_{e.name}({', '.join(self.expr(a, params, True) for a in e.args)})"
        if isinstance(e, ast.Not):
            return self._wrap(f"not {self.expr(e.operand, params)}", top)
        if isinstance(e, ast.BoolOp):
            return self._wrap(f" {e.op} ".join(self.expr(x, params) for x in e.operands), top)
        if isinstance(e, (ast.Compare, ast.Arith)):
            return self._wrap(f"{self.expr(e.left, params)} {e.op} {self.expr(e.right, params)}", top)
        raise AssertionError(f"cannot compile {e!r}")  # pragma: no cover

    @staticmethod
    def _wrap(text: str, top: bool) -> str:
        return text if top else f"({text})"

    def decision(self, rule: ast.Rule, point: str) -> str:
        where = f"{Path(rule.span.filename).name}:{rule.span.line}"
        warn = next((e.text for e in rule.effects if e.kind == "warn"), None)
        effects = []
        dynamic = False
        for eff in rule.effects:
            if eff.kind == "warn":
                continue
            if eff.kind == "clear":
                value = "False"
            elif eff.value is None:
                value = "True"
            else:
                value = self.expr(eff.value, set(), True)
                dynamic = dynamic or not isinstance(eff.value, (ast.Int, ast.Bool)) and \
                    not (isinstance(eff.value, ast.Name) and eff.value.name in self.p.consts)
            effects.append(f"Effect({eff.owner!r}, {eff.name!r}, {value})")
        eff_src = "(" + "".join(f"{x}, " for x in effects) + ")"
        make = f"Decision({rule.action!r}, {eff_src}, {warn!r}, {where!r})"
        if dynamic:
            return make
        name = f"D_{point}_{self.nconst}"
        self.nconst += 1
        self.constants.append(f"{name} = {make}")
        return name

    def module(self) -> str:
        p = self.p
        files = ", ".join(_safe(Path(f.filename).name) for f in p.files)
        out = [f"# policy {_safe(p.name)}: compiled by policykit from {files}", ""]
        live = _reachable(p)
        for name, pred in p.preds.items():
            if name not in live:
                continue
            params = {q.name for q in pred.params}
            args = ", ".join(f"v_{q.name}" for q in pred.params)
            out += [f"def p_{name}({args}):",
                    f"    # {_safe(Path(pred.span.filename).name)}:{pred.span.line}",
                    f"    return {self.expr(pred.body, params, True)}", "", ""]
        for point, block in p.blocks.items():
            used = _objects_used(block)
            body = [f"def policykit_{point}(ctx):"]
            body += [f"    {obj} = ctx.{obj}" for obj in ("page", "pte", "vma", "mm", "foll") if obj in used]
            for rule in block.rules:
                result = self.decision(rule, point)
                if rule.condition is None:
                    body.append(f"    return {result}")
                    break
                body += [f"    if {self.expr(rule.condition, set(), True)}:", f"        return {result}"]
            out += body + ["", ""]
        return "\n".join(out[:2] + self.constants + ([""] if self.constants else []) + out[2:]).rstrip() + "\n"


def _reachable(p: CheckedPolicy) -> set[str]:
    """Predicates some rule calls, directly or through other predicates."""
    todo = [c for block in p.blocks.values() for c in _calls(block)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen and name in p.preds:
            seen.add(name)
            todo.extend(_calls_in(p.preds[name].body))
    return seen


def _calls(block: ast.Block) -> list[str]:
    out = []
    for rule in block.rules:
        out += _calls_in(rule.condition)
        for eff in rule.effects:
            out += _calls_in(eff.value)
    return out


def _calls_in(e: ast.Expr | None) -> list[str]:
    return [x.name for x in ast.walk(e) if isinstance(x, ast.Call)]


def _objects_used(block: ast.Block) -> set[str]:
    """Names of the context objects a block's rules read."""
    used: set[str] = set()
    for rule in block.rules:
        for e in [rule.condition] + [eff.value for eff in rule.effects]:
            for x in ast.walk(e):
                if isinstance(x, ast.Name):
                    used.add(x.name)
                elif isinstance(x, ast.Attr):
                    used.add(x.obj)
    return used


def generate_source(policy: CheckedPolicy) -> str:
    """The readable Python module a policy compiles to."""
    return _Gen(policy).module()


def compile_policy(policy: CheckedPolicy) -> CompiledPolicy:
    """Compile a checked policy into a plugin object implementing its decision hooks and
    declaring its flags."""
    source = generate_source(policy)
    verify_source(source)
    code = compile(source, f"<policy {policy.name}>", "exec")
    namespace: dict[str, Any] = {"__builtins__": {}, "Decision": Decision, "Effect": Effect}
    exec(code, namespace)  # noqa: S102 - generated from a checked AST, see the module docstring
    flags = [AttributeSpec(f.owner, f.name, _PY_TYPES[f.type], f.default, f.doc, flag=True,
                           provider=f"policy:{policy.name}") for f in policy.flags.values()]
    hooks = {k: v for k, v in namespace.items() if k.startswith("policykit_")}

    def policykit_add_attributes() -> list[AttributeSpec]:
        return flags

    plugin = types.SimpleNamespace(__name__=f"policy:{policy.name}", __file__=policy.filename,
                                   policykit_add_attributes=policykit_add_attributes, **hooks)
    return CompiledPolicy(policy, source, plugin)
