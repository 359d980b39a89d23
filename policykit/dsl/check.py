"""Semantic check of a policy and its ``extends`` chain against the engine's registry.

Resolves the chain, merges it (a later file overrides constants, predicates and blocks of
an earlier one; predicates bind late, so a parent's rules call the child's override),
type-checks every expression, and checks every decision point is decided with a
fall-through.  Produces a :class:`CheckedPolicy` and diagnostics: errors, and warnings
for rules that never fire and definitions never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.context import name_problem
from ..engine.specs import OWNERS, Registry
from ..errors import PolicyKitError, SourceError, Span, did_you_mean
from ..limits import MAX_CALL_DEPTH, MAX_CALL_EXPANSION, MAX_DEFINITIONS, MAX_EXTENDS
from . import ast
from ._errors import PolicyCheckError
from .parse import parse_policy
from .resolve import PolicyResolver

#: attributes the engine plugins of policykit provide, to name the plugin to install
PLUGIN_ATTRIBUTES = {
    ("page", "ksm"): "policykit-ksm",
    ("page", "swapcache"): "policykit-swap",
    ("page", "swapcount"): "policykit-swap",
    ("page", "writeback"): "policykit-swap",
    ("page", "lru"): "policykit-lru",
    ("pte", "swp_exclusive"): "policykit-swap",
    ("pte", "pmd"): "policykit-thp",
    ("vma", "thp"): "policykit-thp",
    ("vma", "mergeable"): "policykit-ksm",
    ("page", "hugetlb"): "policykit-hugetlb",
    ("vma", "hugetlb"): "policykit-hugetlb",
    ("page", "file"): "policykit-file",
}

FLAG_OWNERS = ("page", "mm")
_SCALARS = {bool: "bool", int: "int"}


@dataclass(frozen=True)
class Diagnostic:
    severity: str                  # error | warning
    error: SourceError

    @property
    def code(self) -> str:
        """The message's stable code (:mod:`policykit.codes`)."""
        return self.error.code

    def render(self) -> str:
        return self.error.render()


@dataclass(frozen=True)
class FlagDef:
    owner: str
    name: str
    type: str
    default: bool | int
    doc: str
    origin: ast.Flag


@dataclass
class CheckedPolicy:
    """A policy with its chain merged and checked, ready to compile."""

    name: str
    summary: str
    era: str
    sources: list[str]
    files: list[ast.PolicyFile]            # root first, this policy last
    consts: dict[str, bool | int]
    flags: dict[tuple[str, str], FlagDef]
    preds: dict[str, ast.Pred]
    blocks: dict[str, ast.Block]
    unrealizable: str | None = None
    warnings: list[Diagnostic] = field(default_factory=list)
    #: owner -> the registry's attribute names at check time (what compiled code may read)
    attributes: dict[str, frozenset[str]] = field(default_factory=dict)
    #: the constants as written (the last definition of each along the chain)
    const_defs: dict[str, ast.Const] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.files[-1].filename


#: the errors an unread ``extends`` can cause: names, attributes, predicates and flags the
#: missing policy would have defined
_FOLLOW_FROM_THE_CHAIN = frozenset({"PK213", "PK214", "PK215", "PK216", "PK218", "PK219", "PK228", "PK310"})


class _Check:
    def __init__(self, registry: Registry, resolver: PolicyResolver) -> None:
        self.registry = registry
        self.resolver = resolver
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.sources: dict[str, str] = {}
        self._reported: set[tuple[str, str, int, int]] = set()
        #: an ``extends`` could not be followed: what the policy lacks is not news
        self.chain_broken = False
        #: errors left out because they may follow from a broken chain
        self.suppressed = 0

    # -- diagnostics ---------------------------------------------------------------------

    def error(self, code: str, msg: str, span: Span, hint: str) -> None:
        key = (msg, span.filename, span.line, span.column)
        if key in self._reported:          # predicate bodies are typed twice
            return
        self._reported.add(key)
        if self.chain_broken and code in _FOLLOW_FROM_THE_CHAIN:
            self.suppressed += 1            # what the policy extends was not read: not news
            return
        self.errors.append(Diagnostic("error", self._located(code, msg, span, hint)))

    def warn(self, code: str, msg: str, span: Span, hint: str) -> None:
        err = self._located(code, msg, span, hint)
        err.severity = "warning"
        self.warnings.append(Diagnostic("warning", err))

    def _located(self, code: str, msg: str, span: Span, hint: str) -> PolicyCheckError:
        err = PolicyCheckError(msg, span, self.sources.get(span.filename, ""), hint)
        err.code = code
        return err

    # -- the chain ---------------------------------------------------------------------------

    def chain(self, top: ast.PolicyFile) -> list[ast.PolicyFile]:
        errors = len(self.errors)
        files = self._chain(top)
        self.chain_broken = len(self.errors) > errors
        return files

    def _chain(self, top: ast.PolicyFile) -> list[ast.PolicyFile]:
        files = [top]
        seen = {str(Path(top.filename).resolve()) if top.filename[:1] != "<" else top.filename}
        self.sources[top.filename] = top.source
        current = top
        while True:
            ext = current.headers("extends")
            if not ext:
                break
            for extra in ext[1:]:
                self.error("PK201", "a policy extends one other policy", extra.span,
                           "chain variants: A extends B, B extends C")
            h = ext[0]
            try:
                path = self.resolver.resolve(h.value, h.quoted, current.filename)
            except PolicyKitError as exc:       # one name, two policies
                self.error("PK202", str(exc).split(";")[0], h.span, "a name on the policy path must mean one policy")
                break
            if path is None:
                names = self.resolver.names()
                hint = did_you_mean(h.value, names)
                self.error("PK203", f"unknown policy {h.value!r} in extends", h.span,
                           hint or f"policies: {', '.join(names)}; or give a path in quotes")
                break
            key = str(path.resolve())
            if key in seen:
                self.error("PK204", f"extends cycle: {h.value!r} is already in the chain "
                           f"({' -> '.join(Path(f.filename).name for f in reversed(files))})",
                           h.span, "a policy cannot extend itself, directly or through others")
                break
            if len(files) > MAX_EXTENDS:
                self.error("PK205", f"the extends chain is longer than {MAX_EXTENDS} policies", h.span,
                           "extend a policy closer to the root")
                break
            seen.add(key)
            text, why = self.resolver.read(path)
            if text is None:
                self.error("PK206", f"cannot extend {h.value!r}: {why}", h.span,
                           "extends takes a built-in policy's name or the path of a .pol file, "
                           "relative to this one")
                break
            self.sources[str(path)] = text
            try:
                parent = parse_policy(text, str(path))
            except SourceError as exc:
                self.errors.append(Diagnostic("error", exc))
                break
            files.insert(0, parent)
            current = parent
        return files

    # -- merge ---------------------------------------------------------------------------

    def merge(self, files: list[ast.PolicyFile]) -> CheckedPolicy:
        top = files[-1]
        consts: dict[str, ast.Const] = {}
        flags: dict[tuple[str, str], ast.Flag] = {}
        preds: dict[str, ast.Pred] = {}
        blocks: dict[str, ast.Block] = {}
        unrealizable = None
        defined = 0
        for f in files:
            local: dict[tuple[str, str], Span] = {}
            singles: dict[str, Span] = {}
            for item in f.items:
                if isinstance(item, ast.Header):
                    if item.kind in ("policy", "summary", "era", "extends", "unrealizable"):
                        if item.kind in singles:
                            self.error("PK207", f"'{item.kind}' given twice", item.span, "each header appears once")
                        singles[item.kind] = item.span
                    if item.kind == "unrealizable":
                        unrealizable = item.value
                    continue
                kind, key = _key(item)
                defined += 1
                if defined == MAX_DEFINITIONS + 1:
                    self.error("PK208", f"more than {MAX_DEFINITIONS:,} constants, flags, predicates and blocks",
                               item.span, "split the policy, or say it with fewer definitions")
                for name, span in _names_defined(item):
                    if name.startswith("_"):
                        self.error("PK209", f"name {name!r} starts with '_'", span,
                                   "names starting with '_' are reserved; start with a letter")
                if isinstance(item, ast.Const) and item.name in OWNERS:
                    self.error("PK210", f"a constant cannot be named {item.name!r}", item.span,
                               f"{item.name} is a context object; choose another name")
                if (kind, key) in local:
                    first = local[(kind, key)]
                    self.error("PK211", f"{kind} {key!r} is defined twice in this file", item.span,
                               f"the first definition is at line {first.line}")
                    continue
                local[(kind, key)] = item.span
                if isinstance(item, ast.Const):
                    consts[item.name] = item
                elif isinstance(item, ast.Flag):
                    flags[(item.owner, item.name)] = item
                elif isinstance(item, ast.Pred):
                    preds[item.name] = item
                else:
                    blocks[item.point] = item
        names = top.headers("policy")
        name = names[0].value if names else Path(top.filename).stem
        summary = next((h.value for f in reversed(files) for h in f.headers("summary")), "")
        era = next((h.value for h in top.headers("era")), "")
        sources = [h.value for h in top.headers("source")]
        policy = CheckedPolicy(name, summary, era, sources, files, {}, {}, preds, blocks, unrealizable,
                               const_defs=consts)
        self._consts = consts
        self._flag_asts = flags
        return policy

    # -- types ---------------------------------------------------------------------------

    def const_value(self, name: str) -> bool | int | None:
        """A constant's value (None when it has an error); see :meth:`eval_consts`."""
        return self._const_values.get(name)

    def eval_consts(self) -> None:
        """Every constant's value, in an order where each comes after those it names
        (found without recursion, so a chain of any length costs its length); a
        constant on a cycle gets an error and no value."""
        consts = self._consts
        deps = {name: [x.name for x in ast.walk(c.value) if isinstance(x, ast.Name) and x.name in consts]
                for name, c in consts.items()}
        state: dict[str, int] = {}              # 1: on the path, 2: done
        order: list[str] = []
        cyclic: set[str] = set()
        for root in consts:
            if root in state:
                continue
            state[root] = 1
            path = [(root, iter(deps[root]))]
            while path:
                name, todo = path[-1]
                nxt = next(todo, None)
                if nxt is None:
                    path.pop()
                    state[name] = 2
                    order.append(name)
                elif state.get(nxt) == 1:
                    cyclic.add(nxt)
                elif nxt not in state:
                    state[nxt] = 1
                    path.append((nxt, iter(deps[nxt])))
        for name in order:
            c = consts[name]
            if name in cyclic:
                self.error("PK301", f"constant {name!r} is defined in terms of itself", c.span, "constants cannot be cyclic")
                self._const_values[name] = None
            else:
                self._const_values[name] = self.fold(c.value, c.span)

    def fold(self, e: ast.Expr, where: Span) -> bool | int | None:
        """Evaluate a constant expression (literals, constants, arithmetic, logic)."""
        if isinstance(e, (ast.Int, ast.Bool)):
            return e.value
        if isinstance(e, ast.Name) and e.name in self._consts:
            return self._const_values.get(e.name)
        if isinstance(e, ast.Not):
            v = self.fold(e.operand, where)
            return None if v is None else (not v)
        if isinstance(e, ast.Arith):
            a, b = self.fold(e.left, where), self.fold(e.right, where)
            if type(a) is int and type(b) is int:
                v = a + b if e.op == "+" else a - b if e.op == "-" else a * b
                if abs(v) > 2**63 - 1:
                    self.error("PK302", "constant expression overflows 64 bits", e.span, "use smaller numbers")
                    return None
                return v
            return None
        if isinstance(e, ast.Compare):
            a, b = self.fold(e.left, where), self.fold(e.right, where)
            if a is None or b is None or type(a) is not type(b):
                return None
            return _compare(e.op, a, b)
        if isinstance(e, ast.BoolOp):
            vals = [self.fold(x, where) for x in e.operands]
            if any(v is None for v in vals):
                return None
            return all(vals) if e.op == "and" else any(vals)
        return None

    def attr_type(self, owner: str, name: str, span: Span) -> str | None:
        spec = self.registry.attributes.get((owner, name))
        if spec is not None:
            if spec.oracle_only and self._unrealizable is None:
                self.error("PK212", f"{owner}.{name} is engine-private truth", span,
                           "only a policy that declares 'unrealizable \"why\"' may read it")
            return _SCALARS.get(spec.type, spec.type.__name__)
        flag = self._flags.get((owner, name))
        if flag is not None:
            self._used_flags.add((owner, name))
            return flag.type
        plugin = PLUGIN_ATTRIBUTES.get((owner, name))
        if plugin is not None:
            self.error("PK213", f"{owner}.{name} is provided by the plugin {plugin}, which is not installed",
                       span, f"install {plugin} (pip install plugins/{plugin.removeprefix('policykit-')})")
            return None
        known = [n for (o, n) in self.registry.attributes if o == owner] + \
                [n for (o, n) in self._flags if o == owner]
        hint = did_you_mean(name, known)
        self.error("PK214", f"{owner} has no attribute {name!r}", span,
                   hint or f"{owner} attributes: {', '.join(sorted(known))}")
        return None

    def expr(self, e: ast.Expr, env: dict[str, str]) -> str | None:
        """Type of ``e`` (``int``, ``bool`` or an object kind), or None after an error."""
        if isinstance(e, ast.Int):
            return "int"
        if isinstance(e, ast.Bool):
            return "bool"
        if isinstance(e, ast.Name):
            if e.name in env:
                return env[e.name]
            if e.name in self._consts:
                self._used_consts.add(e.name)
                v = self.const_value(e.name)
                return None if v is None else _SCALARS[type(v)]
            if e.name in ("else", "default"):
                self.error("PK215", f"unknown name {e.name!r}", e.span, "the fall-through rule is 'otherwise -> ACTION'")
                return None
            if e.name in self._preds:
                self.error("PK216", f"{e.name!r} is a predicate", e.span, f"call it: {e.name}(...)")
                return None
            if e.name in OWNERS:
                self.error("PK217", f"{e.name!r} is not available here", e.span,
                           f"available: {', '.join(sorted(env)) or 'nothing'}")
                return None
            hint = did_you_mean(e.name, list(env) + list(self._consts) + list(self._preds))
            self.error("PK215", f"unknown name {e.name!r}", e.span, hint or "names are constants, parameters and context objects")
            return None
        if isinstance(e, ast.Attr):
            owner = env.get(e.obj)
            if owner is None:
                if e.obj in OWNERS:
                    self.error("PK217", f"{e.obj!r} is not available here", e.span,
                               f"available: {', '.join(sorted(env)) or 'nothing'}")
                else:
                    hint = did_you_mean(e.obj, list(env))
                    self.error("PK215", f"unknown name {e.obj!r}", e.span, hint or f"available: {', '.join(sorted(env))}")
                return None
            if owner not in OWNERS:
                self.error("PK218", f"{e.obj!r} is a {owner}, which has no attributes", e.span,
                           "attributes belong to page, pte, vma, mm and foll")
                return None
            return self.attr_type(owner, e.name, e.span)
        if isinstance(e, ast.Call):
            pred = self._preds.get(e.name)
            if pred is None:
                hint = did_you_mean(e.name, list(self._preds))
                self.error("PK219", f"unknown predicate {e.name!r}", e.span, hint or "define it with 'pred NAME(PARAMS) = ...'")
                return None
            self._calls.setdefault(self._current, set()).add(e.name)
            self._used_preds.add(e.name)
            if len(e.args) != len(pred.params):
                self.error("PK303", f"{e.name} takes {len(pred.params)} argument{'s' * (len(pred.params) != 1)}, "
                           f"got {len(e.args)}", e.span,
                           f"{e.name}({', '.join(p.name + ': ' + p.type for p in pred.params)})")
                return self._pred_types.get(e.name)
            for arg, param in zip(e.args, pred.params):
                t = self.expr(arg, env)
                if t is not None and t != param.type:
                    self.error("PK304", f"argument {param.name!r} of {e.name} is a {param.type}, got a {t}",
                               getattr(arg, "span", e.span), f"pass a {param.type}")
            return self._pred_types.get(e.name)
        if isinstance(e, ast.Not):
            self.want(e.operand, env, "bool", "'not' applies to a condition")
            return "bool"
        if isinstance(e, ast.BoolOp):
            for x in e.operands:
                self.want(x, env, "bool", f"'{e.op}' joins conditions")
            return "bool"
        if isinstance(e, ast.Arith):
            self.want(e.left, env, "int", f"'{e.op}' works on numbers")
            self.want(e.right, env, "int", f"'{e.op}' works on numbers")
            return "int"
        if isinstance(e, ast.Compare):
            a, b = self.expr(e.left, env), self.expr(e.right, env)
            if a is None or b is None:
                return "bool"
            if e.op in ("==", "!="):
                if a != b or a not in ("int", "bool"):
                    self.error("PK305", f"cannot compare a {a} with a {b}", e.span, "compare numbers with numbers, conditions with conditions")
            elif a != "int" or b != "int":
                self.error("PK306", f"'{e.op}' compares numbers, not a {a} and a {b}", e.span,
                           "use == or != for conditions")
            return "bool"
        raise AssertionError(f"unknown expression {e!r}")  # pragma: no cover

    def want(self, e: ast.Expr, env: dict[str, str], kind: str, hint: str) -> None:
        t = self.expr(e, env)
        if t is not None and t != kind:
            self.error("PK307", f"expected a {'condition' if kind == 'bool' else 'number'}, got a {t}",
                       getattr(e, "span", Span("", 0, 0)), hint)

    # -- the whole policy -------------------------------------------------------------------

    def run(self, top: ast.PolicyFile) -> CheckedPolicy:
        files = self.chain(top)
        p = self.merge(files)
        self._unrealizable = p.unrealizable
        self._preds = p.preds
        self._const_values: dict[str, bool | int | None] = {}
        self._used_consts: set[str] = set()
        self._used_preds: set[str] = set()
        self._used_flags: set[tuple[str, str]] = set()
        self._calls: dict[str, set[str]] = {}
        self._current = ""
        # constants
        self.eval_consts()
        for name, c in self._consts.items():
            v = self.const_value(name)
            if v is None and not self.errors:
                self.error("PK308", f"constant {name!r} is not a constant expression", c.span,
                           "constants are numbers, true/false, and arithmetic on other constants")
            if v is not None:
                p.consts[name] = v
        # flags
        self._flags: dict[tuple[str, str], FlagDef] = {}
        for (owner, name), f in self._flag_asts.items():
            if owner not in FLAG_OWNERS:
                self.error("PK220", f"flags live on page or mm, not {owner}", f.span, "declare 'flag page.NAME = ...'")
                continue
            if (owner, name) in self.registry.attributes:
                self.error("PK221", f"{owner}.{name} is an engine attribute, not a policy flag", f.span,
                           "choose another name for the flag")
                continue
            problem = name_problem(owner, name, flag=True)
            if problem is None and (owner, name) in PLUGIN_ATTRIBUTES:
                problem = f"the plugin {PLUGIN_ATTRIBUTES[(owner, name)]} uses {name!r}"
            if problem is not None:
                self.error("PK222", f"flag {owner}.{name}: {problem}", f.span, "choose another name for the flag")
                continue
            v = self.fold(f.default, f.span)
            if v is None:
                self.error("PK309", "a flag's initial value must be a constant", f.default.span if hasattr(f.default, "span") else f.span,
                           "write true, false or a number")
                continue
            self._flags[(owner, name)] = FlagDef(owner, name, _SCALARS[type(v)], v, f.doc, f)
        p.flags = self._flags
        # predicate signatures, then bodies
        self._pred_types: dict[str, str | None] = {}
        for name, pred in p.preds.items():
            for param in pred.params:
                if param.type not in OWNERS and param.type not in ("int", "bool"):
                    hint = did_you_mean(param.type, list(OWNERS) + ["int", "bool"])
                    self.error("PK223", f"unknown parameter type {param.type!r}", param.span,
                               hint or f"a parameter named like an object ({', '.join(OWNERS)}) has that type; "
                               "otherwise write NAME: TYPE")
        for name, pred in p.preds.items():
            self._current = name
            env = {param.name: param.type for param in pred.params}
            self._pred_types[name] = None
            self._pred_types[name] = self.expr(pred.body, env)
        for name, pred in p.preds.items():   # second pass: call types now known
            self._current = name
            self._pred_types[name] = self.expr(pred.body, {q.name: q.type for q in pred.params})
        if self._check_recursion(p):
            self._check_expansion(p)
        # blocks
        self._current = ""
        for point, block in p.blocks.items():
            self.block(block, p)
        for point, spec in self.registry.decision_points.items():
            if point not in p.blocks and spec.default is None and not self.chain_broken:
                where = (top.headers("policy") or [None])[0]
                span = where.span if where else Span(top.filename, 1, 1)
                self.error("PK310", f"policy {p.name!r} does not decide {point!r}", span,
                           f"add 'on {point} {{ otherwise -> {spec.actions[0]} }}' or extend a policy that does")
        self._unused(p, top)
        p.warnings = self.warnings
        p.attributes = {owner: frozenset(n for (o, n) in self.registry.attributes if o == owner)
                        for owner in OWNERS}
        return p

    def _check_recursion(self, p: CheckedPolicy) -> bool:
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                pred = p.preds[name]
                self.error("PK311", f"recursive predicate: {' -> '.join(cycle)}", pred.span,
                           "predicates cannot call themselves, directly or through others")
                raise _Stop
            state[name] = 1
            for callee in sorted(self._calls.get(name, ())):
                if callee in p.preds:
                    visit(callee, path + [name])
            state[name] = 2

        try:
            for name in p.preds:
                visit(name, [])
        except _Stop:
            return False
        return True

    def _check_expansion(self, p: CheckedPolicy) -> None:
        """No chain of predicate calls deeper than MAX_CALL_DEPTH, and no rule whose
        condition (or effect) may make more than MAX_CALL_EXPANSION calls in all.  The
        call graph has no cycle (checked first); each predicate is costed once."""
        depth: dict[str, int] = {}
        cost: dict[str, int] = {}
        for root in p.preds:
            if root in depth:
                continue
            path = [(root, iter(_calls_in(p.preds[root].body)))]
            while path:
                name, todo = path[-1]
                callee = next(todo, None)
                if callee is not None:
                    if callee in p.preds and callee not in depth:
                        path.append((callee, iter(_calls_in(p.preds[callee].body))))
                    continue
                path.pop()
                calls = [c for c in _calls_in(p.preds[name].body) if c in p.preds]
                depth[name] = 1 + max((depth[c] for c in calls), default=0)
                cost[name] = min(sum(1 + cost[c] for c in calls), MAX_CALL_EXPANSION + 1)
        for name, d in depth.items():
            if d > MAX_CALL_DEPTH:
                self.error("PK312", f"predicate {name!r} calls predicates {d - 1} deep", p.preds[name].span,
                           f"at most {MAX_CALL_DEPTH} levels of predicates calling predicates")
                return
        for block in p.blocks.values():
            for rule in block.rules:
                for e in [rule.condition] + [eff.value for eff in rule.effects]:
                    calls = [c for c in _calls_in(e) if c in p.preds]
                    total = sum(1 + cost[c] for c in calls)
                    if total > MAX_CALL_EXPANSION:
                        self.error("PK313", f"this rule may make more than {MAX_CALL_EXPANSION:,} predicate calls",
                                   rule.span, "a predicate that calls another twice doubles the work at "
                                   "each level; call it once and name the result with 'pred'")
                        return

    def block(self, block: ast.Block, p: CheckedPolicy) -> None:
        spec = self.registry.decision_points.get(block.point)
        if spec is None:
            hint = did_you_mean(block.point, self.registry.decision_points)
            self.error("PK224", f"unknown decision point {block.point!r}", block.span,
                       hint or f"decision points: {', '.join(self.registry.decision_points)}")
            return
        env = {owner: owner for owner in spec.context}
        seen: dict[ast.Expr, int] = {}
        always: ast.Rule | None = None
        for rule in block.rules:
            if always is not None:
                self.warn("PK401", "this rule never fires", rule.span,
                          f"the rule at line {always.span.line} always fires before it")
            if rule.condition is not None:
                self.want(rule.condition, env, "bool", "a rule's condition is true or false")
                value = self.fold(rule.condition, rule.span)
                if value is False:
                    self.warn("PK402", "this rule's condition is always false", rule.span, "remove the rule")
                elif value is True and always is None:
                    always = rule
                if rule.condition in seen:
                    self.warn("PK401", "this rule never fires", rule.span,
                              f"the rule at line {seen[rule.condition]} has the same condition")
                else:
                    seen[rule.condition] = rule.span.line
            elif always is None:
                always = rule
            if rule.action not in spec.actions:
                hint = did_you_mean(rule.action, spec.actions)
                self.error("PK225", f"{block.point} has no action {rule.action!r}", rule.action_span,
                           hint or f"actions of {block.point}: {', '.join(spec.actions)}")
            elif rule.action in spec.unrealizable_actions and self._unrealizable is None:
                self.error("PK314", f"no kernel can {rule.action!r} at {block.point}", rule.action_span,
                           "only a policy that declares 'unrealizable \"why\"' may take this action")
            for eff in rule.effects:
                self.effect(eff, env, block.point)
        if all(rule.condition is not None for rule in block.rules):
            last = block.rules[-1].span if block.rules else block.span
            self.error("PK315", f"the rules of {block.point} have no fall-through", last,
                       f"end the block with 'otherwise -> {spec.actions[0]}' (or another action)")

    def effect(self, eff: ast.Effect, env: dict[str, str], point: str) -> None:
        if eff.kind == "warn":
            return
        if eff.owner not in env:
            self.error("PK226", f"{eff.owner!r} is not available at {point}", eff.span,
                       f"available: {', '.join(sorted(env))}")
            return
        flag = self._flags.get((eff.owner, eff.name))
        if flag is None:
            if (eff.owner, eff.name) in self.registry.attributes:
                self.error("PK227", f"{eff.owner}.{eff.name} belongs to the engine; policies set only their own flags",
                           eff.span, "declare a flag with 'flag OWNER.NAME = VALUE'")
            else:
                hint = did_you_mean(eff.name, [n for (o, n) in self._flags if o == eff.owner])
                self.error("PK228", f"{eff.owner}.{eff.name} is not a declared flag", eff.span,
                           hint or f"declare it: flag {eff.owner}.{eff.name} = false")
            return
        self._used_flags.add((eff.owner, eff.name))
        if eff.kind == "clear" and flag.type != "bool":
            self.error("PK316", f"'clear' applies to true/false flags; {eff.owner}.{eff.name} is a number",
                       eff.span, f"write 'set {eff.owner}.{eff.name} = 0'")
        if eff.kind == "set":
            if eff.value is None:
                if flag.type != "bool":
                    self.error("PK317", f"{eff.owner}.{eff.name} is a number: say which", eff.span,
                               f"write 'set {eff.owner}.{eff.name} = VALUE'")
            else:
                self.want(eff.value, env, flag.type, f"{eff.owner}.{eff.name} holds a {flag.type}")

    def _unused(self, p: CheckedPolicy, top: ast.PolicyFile) -> None:
        mine = set(top.items)
        for name, pred in p.preds.items():
            if pred in mine and name not in self._used_preds:
                self.warn("PK403", f"predicate {name!r} is never used", pred.span, "remove it or call it from a rule")
        in_defaults = _names_in_defaults(self._consts, self._flag_asts)
        for name, c in self._consts.items():
            if c in mine and name not in self._used_consts and name not in in_defaults:
                self.warn("PK404", f"constant {name!r} is never used", c.span, "remove it or use it")
        for key, f in self._flags.items():
            if f.origin in mine and key not in self._used_flags:
                self.warn("PK405", f"flag {key[0]}.{key[1]} is never read or set", f.origin.span, "remove it or use it")


class _Stop(Exception):
    pass


def _key(item: ast.Const | ast.Flag | ast.Pred | ast.Block) -> tuple[str, str]:
    if isinstance(item, ast.Const):
        return "constant", item.name
    if isinstance(item, ast.Flag):
        return "flag", f"{item.owner}.{item.name}"
    if isinstance(item, ast.Pred):
        return "predicate", item.name
    return "block", item.point


def _names_defined(item: ast.Const | ast.Flag | ast.Pred | ast.Block) -> list[tuple[str, Span]]:
    if isinstance(item, ast.Const):
        return [(item.name, item.span)]
    if isinstance(item, ast.Flag):
        return [(item.name, item.span)]
    if isinstance(item, ast.Pred):
        return [(item.name, item.span)] + [(p.name, p.span) for p in item.params]
    return []


def _compare(op: str, a: bool | int, b: bool | int) -> bool:
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _names_in_defaults(consts: dict[str, ast.Const], flags: dict) -> set[str]:
    """The names a constant's or a flag's initial value mentions."""
    values = [c.value for c in consts.values()] + [f.default for f in flags.values()]
    return {x.name for v in values for x in ast.walk(v) if isinstance(x, ast.Name)}


def _calls_in(e: ast.Expr | None) -> list[str]:
    """The predicates ``e`` calls, once per call."""
    return [x.name for x in ast.walk(e) if isinstance(x, ast.Call)]


def check_policy(top: ast.PolicyFile, registry: Registry, resolver: PolicyResolver) -> tuple[CheckedPolicy, list[Diagnostic]]:
    """Check ``top`` and its chain; return the checked policy and every diagnostic
    (errors first, then warnings).  The policy is only usable when no error came back."""
    c = _Check(registry, resolver)
    policy = c.run(top)
    if c.suppressed and c.errors:
        first = c.errors[0].error
        more = f"{c.suppressed} more error{'s' * (c.suppressed != 1)} about names it would define not shown"
        first.hint = f"{first.hint} ({more})" if first.hint else more
    return policy, c.errors + c.warnings
