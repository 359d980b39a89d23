"""Checked policy to Python source to a pluggy plugin.

The generated module uses a fixed set of constructs: function definitions, ``if``,
``return``, ``and``/``or``/``not``, comparisons, ``+ - *``, integer and boolean
literals, attribute reads on context objects, and calls of its own predicates.  Every
name in it is either fixed by the compiler or a policy name behind a prefix
(``p_`` for predicates, ``v_`` for parameters); attribute names are checked against the
registry and the policy's flags; strings enter only through ``repr()``.  It runs with no
builtins, so a policy file can compute decisions and nothing else.

The rules are written twice: on the views a context hands over (``decide_POINT``), and
reading the engine's objects themselves (``raw_rules``), as the views would
(:mod:`policykit.engine.reads`), which the engine calls when the policy alone answers;
there an object's plain fields, its flags (``flags.get``) and the field readers are all
the verifier lets a rule read.
"""

from __future__ import annotations

import ast as pyast
import functools
import importlib.util
import marshal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

from .._parse_cache import code_stamp, entry_path, read_entry, store_entry
from ..engine.context import FLAG_PREFIX
from ..engine.reads import HELPERS, PLAIN_FIELDS, RAW_READS
from ..engine.specs import OWNERS, AttributeSpec
from . import ast
from .check import CheckedPolicy
from .plugin import policy_plugin

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


def verify_source(source: str, attributes: Mapping[str, Iterable[str]] | None = None) -> None:
    """Check a generated module against the whitelist: node types, no name or attribute
    starting with '_', no attribute set, calls only of predicates, rules (``decide_*``),
    Decision, Effect, the field readers of :mod:`policykit.engine.reads` and
    ``OBJ.flags.get(NAME, CONSTANT)``; constants only numbers, booleans, None and
    strings.  With ``attributes`` (owner -> the names a policy may read: the registry's
    attributes and the policy's ``f_`` flags), every attribute read is on ``ctx`` (a
    context object), on a context object ``c_OWNER`` (one of that owner's names) or on a
    parameter ``v_X`` (one of any owner's names) -- or, in the rules that read the
    engine's objects themselves, on an object ``OWNER`` or a parameter ``r_X``: their
    plain fields (:data:`~policykit.engine.reads.PLAIN_FIELDS`) and the policy's flags."""
    allowed = {owner: frozenset(names) for owner, names in (attributes or {}).items()}
    anywhere = frozenset().union(*allowed.values()) if allowed else frozenset()
    tree = pyast.parse(source)
    flag_reads: set[int] = set()            # the attribute nodes of OBJ.flags.get(...)
    for node in pyast.walk(tree):
        if not isinstance(node, pyast.Call):
            continue
        f = node.func
        if isinstance(f, pyast.Name) and (f.id.startswith(("p_", "decide_", "q_")) or f.id in _CALLABLE):
            if node.keywords:
                raise UnsafeCodeError("generated code passes a keyword argument")
            continue
        if not _flag_read(node, allowed if attributes is not None else None, anywhere):
            raise UnsafeCodeError("generated code calls something other than a predicate")
        flag_reads.update((id(f), id(f.value)))  # type: ignore[attr-defined]
    for node in pyast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise UnsafeCodeError(f"generated code contains {type(node).__name__}")
        if isinstance(node, pyast.Attribute):
            if node.attr.startswith("_"):
                raise UnsafeCodeError(f"generated code reads attribute {node.attr!r}")
            if not isinstance(node.ctx, pyast.Load):
                raise UnsafeCodeError(f"generated code sets attribute {node.attr!r}")
            if attributes is not None and id(node) not in flag_reads:
                _check_read(node, allowed, anywhere)
        if isinstance(node, pyast.Name) and node.id.startswith("_"):
            raise UnsafeCodeError(f"generated code names {node.id!r}")
        if isinstance(node, pyast.Constant) and not isinstance(node.value, (bool, int, str, type(None))):
            raise UnsafeCodeError(f"generated code holds a {type(node.value).__name__} constant")


#: the functions generated code may call by name besides its own
_CALLABLE = frozenset({"Decision", "Effect", *HELPERS})


def _flag_read(node: pyast.Call, allowed: dict[str, frozenset[str]] | None, anywhere: frozenset[str]) -> bool:
    """Is ``node`` ``OBJ.flags.get('NAME', CONSTANT)``: a policy flag read from a page or
    an mm itself (or a predicate's parameter ``r_X``), one the policy may read?"""
    f = node.func
    if not (isinstance(f, pyast.Attribute) and f.attr == "get" and isinstance(f.value, pyast.Attribute)
            and f.value.attr == "flags" and isinstance(f.value.value, pyast.Name)):
        return False
    obj = f.value.value.id
    if obj not in ("page", "mm") and not obj.startswith("r_") or node.keywords or len(node.args) != 2:
        return False
    name, default = node.args
    if not (isinstance(name, pyast.Constant) and type(name.value) is str
            and isinstance(default, pyast.Constant) and type(default.value) in (bool, int)):
        return False
    if allowed is None:
        return True
    return FLAG_PREFIX + name.value in (anywhere if obj.startswith("r_") else allowed.get(obj, ()))


def _check_read(node: pyast.Attribute, allowed: dict[str, frozenset[str]], anywhere: frozenset[str]) -> None:
    obj = node.value
    if not isinstance(obj, pyast.Name):
        raise UnsafeCodeError(f"generated code reads {node.attr!r} of an expression")
    if obj.id == "ctx":
        ok = node.attr in OWNERS
    elif obj.id.startswith("c_"):
        ok = node.attr in allowed.get(obj.id[2:], ())
    elif obj.id.startswith("v_"):
        ok = node.attr in anywhere
    elif obj.id in PLAIN_FIELDS:            # raw rules: an object itself
        ok = node.attr in PLAIN_FIELDS[obj.id]
    elif obj.id.startswith("r_"):           # a raw predicate's parameter
        ok = any(node.attr in names for names in PLAIN_FIELDS.values())
    else:
        ok = False
    if not ok:
        raise UnsafeCodeError(f"generated code reads {obj.id}.{node.attr}, which no policy may read")


def _safe(text: str) -> str:
    """Text fit for a comment line: no line breaks or other control characters."""
    return text.encode("unicode_escape").decode("ascii")


#: a compile environment: each name in scope -> (its Python name, its type); no policy
#: name is used bare: ``c_page`` is a context object, ``v_x`` a predicate's parameter
Env = dict[str, tuple[str, str]]


@dataclass
class CompiledPolicy:
    """The generated source, and the plugin object built from it."""

    checked: CheckedPolicy
    source: str
    plugin: Any
    #: the source compiled (verified), and the flags the plugin declares
    code: CodeType | None = None
    flags: list[AttributeSpec] = field(default_factory=list)


#: the parameters of the raw rules' factory, in order: each owner's attribute defaults
#: (Views.raw passes them so)
_RAW_DEFAULTS = {"page": "DP", "pte": "DT", "vma": "DV", "mm": "DM"}


class _NoRaw(Exception):
    """A policy reads something the raw rules cannot (they are left out: the views read it)."""


#: how tightly each construct binds in Python (and in the policy language, which has the
#: same order): a child is parenthesised only when it binds less tightly than its place needs
_OR, _AND, _NOT, _CMP, _SUM, _PRODUCT, _ATOM = range(7)
_LEVEL = {"or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT}


class _Gen:
    def __init__(self, policy: CheckedPolicy) -> None:
        self.p = policy
        self.lines: list[str] = []
        self.constants: list[str] = []
        self.nconst = 0
        #: emitting the raw rules: attribute reads of the engine's objects themselves
        self.raw = False
        self.made: dict[int, str] = {}          # id(rule) -> its Decision's constant

    def expr(self, e: ast.Expr, env: Env, top: bool = False) -> str:
        """Python for ``e``; ``env`` maps the names in scope (context objects, or a
        predicate's parameters) to their kind, resolved as the checker resolves them."""
        return self._emit(e, env)[0]

    def _emit(self, e: ast.Expr, env: Env) -> tuple[str, int]:
        if isinstance(e, ast.Bool):
            return ("True" if e.value else "False"), _ATOM
        if isinstance(e, ast.Int):
            return str(int(e.value)), _ATOM
        if isinstance(e, ast.Name):
            if e.name in env:
                return env[e.name][0], _ATOM
            value = self.p.consts[e.name]
            return ("True" if value is True else "False" if value is False else str(int(value))), _ATOM
        if isinstance(e, ast.Attr):
            local, owner = env[e.obj]
            if self.raw:
                return self._raw_read(local, owner, e.name), _ATOM
            name = FLAG_PREFIX + e.name if (owner, e.name) in self.p.flags else e.name
            return f"{local}.{name}", _ATOM
        if isinstance(e, ast.Call):
            args = [self._emit(a, env)[0] for a in e.args]
            if self.raw:
                return f"q_{e.name}({', '.join(args + ['machine', 'mm', 'vpn'])})", _ATOM
            return f"p_{e.name}({', '.join(args)})", _ATOM
        if isinstance(e, ast.Not):
            return f"not {self._child(e.operand, env, _NOT)}", _NOT
        if isinstance(e, ast.BoolOp):
            level = _LEVEL[e.op]
            return f" {e.op} ".join(self._child(x, env, level + 1) for x in e.operands), level
        if isinstance(e, ast.Compare):       # never chained: both sides bind tighter
            return f"{self._child(e.left, env, _CMP + 1)} {e.op} {self._child(e.right, env, _CMP + 1)}", _CMP
        if isinstance(e, ast.Arith):         # left-associative
            level = _LEVEL[e.op]
            return f"{self._child(e.left, env, level)} {e.op} {self._child(e.right, env, level + 1)}", level
        raise AssertionError(f"cannot compile {e!r}")  # pragma: no cover

    def _raw_read(self, local: str, owner: str, name: str) -> str:
        """How a raw rule reads ``name`` of the object ``local`` (an ``owner``'s): as
        the owner's view would (:mod:`policykit.engine.reads`)."""
        flag = self.p.flags.get((owner, name))
        if flag is not None:                    # (flags live on pages and mms only)
            if owner not in ("page", "mm"):
                raise _NoRaw(f"{owner}.{name}")
            return f"{local}.flags.get({name!r}, {flag.default!r})"
        how = RAW_READS[owner].get(name)
        if how is not None:
            return how.format(o=local)
        defaults = _RAW_DEFAULTS.get(owner)
        if defaults is None:
            raise _NoRaw(f"{owner}.{name}")
        # a plugin's attribute (of a page or an mm: else a flag of that name), else its default
        return f"{'a_attr_or_flag' if owner in ('page', 'mm') else 'a_attr'}({local}, {name!r}, {defaults})"

    def _child(self, e: ast.Expr, env: Env, need: int) -> str:
        text, level = self._emit(e, env)
        return text if level >= need else f"({text})"

    def decision(self, rule: ast.Rule, point: str, env: Env) -> str:
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
                value = self.expr(eff.value, env)
                dynamic = dynamic or not isinstance(eff.value, (ast.Int, ast.Bool)) and \
                    not (isinstance(eff.value, ast.Name) and eff.value.name in self.p.consts)
            effects.append(f"Effect({eff.owner!r}, {eff.name!r}, {value})")
        eff_src = "(" + "".join(f"{x}, " for x in effects) + ")"
        make = f"Decision({rule.action!r}, {eff_src}, {warn!r}, {where!r})"
        if dynamic:
            return make
        name = self.made.get(id(rule))
        if name is None:                        # the raw rules return the same Decision
            name = self.made[id(rule)] = f"D_{point}_{self.nconst}"
            self.nconst += 1
            self.constants.append(f"{name} = {make}")
        return name

    def rules(self, block: ast.Block, point: str, env: Env, indent: str) -> list[str]:
        """The body of a point's rules: the first whose condition holds returns its
        decision (``otherwise``, the last, returns it unconditionally)."""
        lines = []
        for rule in block.rules:
            result = self.decision(rule, point, env)
            if rule.condition is None:
                lines.append(f"{indent}return {result}")
                break
            lines += [f"{indent}if {self.expr(rule.condition, env)}:", f"{indent}    return {result}"]
        return lines

    def module(self) -> str:
        p = self.p
        files = ", ".join(_safe(Path(f.filename).name) for f in p.files)
        out = [f"# policy {_safe(p.name)}: compiled by policykit from {files}", ""]
        live = _reachable(p)
        for name, pred in p.preds.items():
            if name not in live:
                continue
            params = {q.name: (f"v_{q.name}", q.type) for q in pred.params}
            args = ", ".join(f"v_{q.name}" for q in pred.params)
            out += [f"def p_{name}({args}):",
                    f"    # {_safe(Path(pred.span.filename).name)}:{pred.span.line}",
                    f"    return {self.expr(pred.body, params)}", "", ""]
        for point, block in p.blocks.items():
            used = _objects_used(block)
            env = {obj: (f"c_{obj}", obj) for obj in OWNERS if obj in used}
            # the rules take the context objects they read (the engine passes them
            # directly); the hook hands them over from its context
            body = [f"def decide_{point}({', '.join(local for local, _ in env.values())}):",
                    *self.rules(block, point, env, "    ")]
            body += ["", "", f"def policykit_{point}(ctx):",
                     f"    return decide_{point}({', '.join(f'ctx.{obj}' for obj in env)})"]
            out += body + ["", ""]
        try:
            out += self._raw_rules(live)
        except _NoRaw:
            pass
        return "\n".join(out[:2] + self.constants + ([""] if self.constants else []) + out[2:]).rstrip() + "\n"

    def _raw_rules(self, live: set[str]) -> list[str]:
        """The rules again, reading the engine's objects themselves instead of views:
        ``raw_rules(DP, DT, DV, DM)`` (each owner's attribute defaults) makes them, one
        per point of ``RAW_POINTS``, each called as ``(page, pte, vma, mm, foll, machine,
        vpn)`` (see :meth:`policykit.engine.context.Views.raw`)."""
        p = self.p
        self.raw = True
        try:
            out = [f"def raw_rules({', '.join(_RAW_DEFAULTS.values())}):"]
            for name, pred in p.preds.items():
                if name not in live:
                    continue
                params = {q.name: (f"r_{q.name}", q.type) for q in pred.params}
                args = ", ".join([local for local, _ in params.values()] + ["machine", "mm", "vpn"])
                out += [f"    def q_{name}({args}):",
                        f"        # {_safe(Path(pred.span.filename).name)}:{pred.span.line}",
                        f"        return {self.expr(pred.body, params)}", ""]
            for point, block in p.blocks.items():
                env = {obj: (obj, obj) for obj in OWNERS}
                out += [f"    def raw_{point}(page, pte, vma, mm, foll, machine, vpn):",
                        *self.rules(block, point, env, "        "), ""]
            points = list(p.blocks)
            out += [f"    return ({''.join(f'raw_{point}, ' for point in points)})", "", "",
                    f"RAW_POINTS = ({''.join(f'{point!r}, ' for point in points)})"]
        finally:
            self.raw = False
        return out


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


def readable(policy: CheckedPolicy) -> dict[str, frozenset[str]]:
    """Owner -> the attribute names the policy's compiled code may read: the registry's
    (as the checker saw it) and the policy's own flags, by their compiled name."""
    return {owner: policy.attributes.get(owner, frozenset())
            | {FLAG_PREFIX + name for (o, name) in policy.flags if o == owner}
            for owner in OWNERS}


def generate_source(policy: CheckedPolicy) -> str:
    """The readable Python module a policy compiles to."""
    return _Gen(policy).module()


def _verified(source: str, attributes: Mapping[str, Iterable[str]], filename: str) -> CodeType:
    """``source`` verified (:func:`verify_source`) and compiled.  The code of a source
    verified before is read back from the user's cache directory, as Python reads its
    own bytecode from ``__pycache__`` (see :mod:`policykit._parse_cache`): only for the
    same source, readable attributes, file name, compiler and Python."""
    allowed = repr(sorted((owner, sorted(names)) for owner, names in attributes.items()))
    stamp = _compiler_stamp()
    path = entry_path("compiled", stamp, filename, allowed, source)
    saved = read_entry(path) if path is not None else None
    if isinstance(saved, tuple) and len(saved) == 5 and saved[:4] == (stamp, filename, allowed, source):
        try:
            code = marshal.loads(saved[4])
        except (EOFError, ValueError, TypeError):
            code = None
        if isinstance(code, CodeType):
            return code
    verify_source(source, attributes)
    code = compile(source, filename, "exec")
    if path is not None:
        store_entry(path, (stamp, filename, allowed, source, marshal.dumps(code)))
    return code


@functools.cache
def _compiler_stamp() -> str:
    # the generated code reads fields as engine/reads.py says
    return (f"{importlib.util.MAGIC_NUMBER.hex()}|{code_stamp(Path(__file__).parent, ('compile.py',))}"
            f"|{code_stamp(Path(__file__).parent.parent / 'engine', ('reads.py',))}")


def compile_policy(policy: CheckedPolicy) -> CompiledPolicy:
    """Compile a checked policy into a plugin object implementing its decision hooks and
    declaring its flags."""
    source = generate_source(policy)
    code = _verified(source, readable(policy), f"<policy {policy.name}>")
    flags = policy_flags(policy)
    return CompiledPolicy(policy, source, policy_plugin(policy.name, policy.filename, code, flags), code, flags)


def policy_flags(policy: CheckedPolicy) -> list[AttributeSpec]:
    """The flags ``policy`` declares, as the attributes its plugin adds."""
    return [AttributeSpec(f.owner, f.name, _PY_TYPES[f.type], f.default, f.doc, flag=True,
                          provider=f"policy:{policy.name}") for f in policy.flags.values()]
