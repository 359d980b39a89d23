"""The canonical layout of a policy file.  Text to text: parse, print, keep comments.

Formatting never changes the AST (``parse(format(t)) == parse(t)``) and is idempotent.
Comments stay with the statement or rule they precede or end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import split_lines
from . import ast
from .parse import parse_policy

if TYPE_CHECKING:
    from .check import CheckedPolicy

INDENT = "    "
WIDTH = 96
_HEADERS = ("policy", "summary", "era", "source", "extends", "unrealizable")
#: binding strength, loosest first
_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "atom": 7}


@dataclass
class _Comment:
    line: int
    text: str
    own_line: bool
    blank_after: bool = False       # a blank line follows it in the source
    used: bool = False


def _comments(text: str) -> list[_Comment]:
    out = []
    lines = split_lines(text)
    for n, line in enumerate(lines, 1):
        in_str = False
        i = 0
        while i < len(line):
            ch = line[i]
            if in_str and ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_str = not in_str
            elif ch == "#" and not in_str:
                blank = n < len(lines) and not lines[n].strip()
                out.append(_Comment(n, line[i:].rstrip(), not line[:i].strip(), blank))
                break
            i += 1
    return out


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _prec(e: ast.Expr) -> int:
    if isinstance(e, ast.BoolOp):
        return _PREC[e.op]
    if isinstance(e, ast.Not):
        return _PREC["not"]
    if isinstance(e, ast.Compare):
        return _PREC["cmp"]
    if isinstance(e, ast.Arith):
        return _PREC[e.op]
    return _PREC["atom"]


def expr(e: ast.Expr) -> str:
    """An expression with the fewest parentheses that parse back to the same AST."""
    if isinstance(e, ast.Int):
        return str(e.value)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.Attr):
        return f"{e.obj}.{e.name}"
    if isinstance(e, ast.Call):
        return f"{e.name}({', '.join(expr(a) for a in e.args)})"
    if isinstance(e, ast.Not):
        inner = e.operand
        return "not " + _paren(inner, _prec(inner) < _PREC["not"])
    if isinstance(e, ast.BoolOp):
        return f" {e.op} ".join(_operand(e, x) for x in e.operands)
    if isinstance(e, ast.Compare):
        return f"{_paren(e.left, _prec(e.left) <= _PREC['cmp'])} {e.op} " \
               f"{_paren(e.right, _prec(e.right) <= _PREC['cmp'])}"
    if isinstance(e, ast.Arith):
        mine = _PREC[e.op]
        return f"{_paren(e.left, _prec(e.left) < mine)} {e.op} {_paren(e.right, _prec(e.right) <= mine)}"
    raise AssertionError(f"cannot format {e!r}")  # pragma: no cover


def _paren(e: ast.Expr, needed: bool) -> str:
    return f"({expr(e)})" if needed else expr(e)


def _operand(chain: ast.BoolOp, x: ast.Expr) -> str:
    # A nested chain of the same operator was written in parentheses: keep them.  An
    # 'and' inside an 'or' gets them too, for the reader (as gcc's -Wparentheses asks).
    return _paren(x, _prec(x) <= _PREC[chain.op] or (chain.op == "or" and _prec(x) == _PREC["and"]))


def _wrapped(head: str, e: ast.Expr, indent: str) -> list[str]:
    """``head`` + expression, broken after 'or'/'and' when the line is too long."""
    text = head + expr(e)
    if len(text) <= WIDTH or not isinstance(e, ast.BoolOp):
        return [text]
    lines = [head.rstrip()]
    parts = [_operand(e, x) for x in e.operands]
    for i, part in enumerate(parts):
        lines.append(indent + INDENT + part + (f" {e.op}" if i < len(parts) - 1 else ""))
    return lines


def _effects(rule: ast.Rule) -> str:
    if not rule.effects:
        return ""
    out = []
    for eff in rule.effects:
        if eff.kind == "warn":
            out.append(f"warn {_quote(eff.text)}")
        elif eff.kind == "clear":
            out.append(f"clear {eff.owner}.{eff.name}")
        elif eff.value is None:
            out.append(f"set {eff.owner}.{eff.name}")
        else:
            out.append(f"set {eff.owner}.{eff.name} = {expr(eff.value)}")
    return " [" + ", ".join(out) + "]"


class _Printer:
    def __init__(self, tree: ast.PolicyFile) -> None:
        self.tree = tree
        self.comments = _comments(tree.source)
        self.out: list[str] = []

    def leading(self, before_line: int, indent: str = "") -> None:
        for c in self.comments:
            if not c.used and c.own_line and c.line < before_line:
                self.out.append(indent + c.text)
                if c.blank_after and not indent:
                    self.out.append("")
                c.used = True

    def trailing(self, first: int, last: int) -> str:
        found = [c for c in self.comments if not c.used and not c.own_line and first <= c.line <= last]
        for c in found:
            c.used = True
        return "".join("  " + c.text for c in found)

    def emit(self, lines: list[str], first: int, last: int) -> None:
        tail = self.trailing(first, last)
        lines[0] += tail
        self.out.extend(lines)

    def item(self, item: object) -> list[str]:
        if isinstance(item, ast.Header):
            value = _quote(item.value) if (item.quoted or item.kind not in ("policy", "extends")) else item.value
            return [f"{item.kind} {value}"]
        if isinstance(item, ast.Const):
            return [f"const {item.name} = {expr(item.value)}"]
        if isinstance(item, ast.Flag):
            doc = f" {_quote(item.doc)}" if item.doc else ""
            return [f"flag {item.owner}.{item.name} = {expr(item.default)}{doc}"]
        if isinstance(item, ast.Pred):
            params = ", ".join(p.name if p.type == p.name else f"{p.name}: {p.type}" for p in item.params)
            return _wrapped(f"pred {item.name}({params}) = ", item.body, "")
        raise AssertionError(item)  # pragma: no cover

    def block(self, block: ast.Block, end: int) -> None:
        self.emit([f"on {block.point} {{"], block.span.line, block.span.line)
        heads = [("otherwise" if r.condition is None else expr(r.condition)) for r in block.rules]
        width = max((len(h) for h in heads), default=0)
        align = width <= 60
        for rule, head in zip(block.rules, heads):
            self.leading(rule.span.line, INDENT)
            pad = " " * (width - len(head)) if align else ""
            tail = f"-> {rule.action}{_effects(rule)}"
            if rule.condition is not None and len(head) > WIDTH and isinstance(rule.condition, ast.BoolOp):
                # the first operand on the rule's own line, the others indented below it
                e = rule.condition
                parts = [_operand(e, x) for x in e.operands]
                lines = [(INDENT if i == 0 else INDENT * 2) + part + (f" {e.op}" if i < len(parts) - 1 else "")
                         for i, part in enumerate(parts)]
                lines[-1] += " " + tail
            else:
                lines = [f"{INDENT}{head}{pad} {tail}"]
            self.emit(lines, rule.span.line, rule.span.end_line or rule.span.line)
        self.leading(end, INDENT)
        self.out.append("}")

    def run(self) -> str:
        items = list(self.tree.items)
        prev: object = None
        for i, item in enumerate(items):
            start = item.span.line
            if prev is not None and not _grouped(prev, item):
                self.out.append("")
            self.leading(start)
            if isinstance(item, ast.Block):
                self.block(item, item.span.end_line or start)
            else:
                last = item.span.end_line or start
                self.emit(self.item(item), start, last)
            prev = item
        rest = [c for c in self.comments if not c.used]
        if rest:
            if self.out:
                self.out.append("")
            self.out.extend(c.text for c in rest)
        return "\n".join(self.out).rstrip() + "\n"


def _grouped(a: object, b: object) -> bool:
    """Kept together without a blank line between them."""
    if isinstance(a, ast.Header) and isinstance(b, ast.Header):
        return True
    if type(a) is type(b) and isinstance(a, (ast.Const, ast.Flag)):
        return True
    return False


def format_resolved(policy: CheckedPolicy) -> str:
    """One ``.pol`` text saying what ``policy`` and its ``extends`` chain say together:
    the headers of the policy, then every constant, flag, predicate and block that is in
    force (an override replaces what it overrides, where the parent had it).  It checks,
    and runs exactly as the chain does."""
    from pathlib import Path

    headers = [ast.Header("policy", policy.name)]
    headers += [ast.Header("summary", policy.summary)] if policy.summary else []
    headers += [ast.Header("era", policy.era)] if policy.era else []
    headers += [ast.Header("source", s) for s in policy.sources]
    if policy.unrealizable is not None:
        headers.append(ast.Header("unrealizable", policy.unrealizable))
    preds, consts = in_force(policy)
    items: list[Any] = [*headers, *(c for n, c in policy.const_defs.items() if n in consts),
                        *(f.origin for f in policy.flags.values()),
                        *(p for n, p in policy.preds.items() if n in preds), *policy.blocks.values()]
    chain = ", ".join(Path(f.filename).name for f in reversed(policy.files))
    body = _Printer(ast.PolicyFile("<resolved>", tuple(items))).run()
    return f"# {policy.name} with its extends chain resolved ({chain}): policykit show\n{body}"


def in_force(policy: CheckedPolicy) -> tuple[set[str], set[str]]:
    """The predicates and constants the blocks and flags use, directly or through others
    (an override can leave a parent's definition unused: it is dropped).  Flags stay
    all: plugins may read and set a flag no rule mentions."""
    exprs = [e for b in policy.blocks.values() for r in b.rules
             for e in [r.condition, *(eff.value for eff in r.effects)] if e is not None]
    exprs += [f.origin.default for f in policy.flags.values()]
    preds: set[str] = set()
    consts: set[str] = set()
    while exprs:
        for x in ast.walk(exprs.pop()):
            if isinstance(x, ast.Call) and x.name in policy.preds and x.name not in preds:
                preds.add(x.name)
                exprs.append(policy.preds[x.name].body)
            elif isinstance(x, ast.Name) and x.name in policy.const_defs and x.name not in consts:
                consts.add(x.name)
                exprs.append(policy.const_defs[x.name].value)
    return preds, consts


def format_policy(text: str, filename: str = "<policy>") -> str:
    """The canonical text of a policy; raises PolicySyntaxError if it does not parse."""
    return _Printer(parse_policy(text, filename)).run()
