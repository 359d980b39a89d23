"""Policy text to :class:`~policykit.dsl.ast.PolicyFile` with lark (syntax only); reached
through :func:`policykit.dsl.parse.parse_policy`, which caches what it returns."""

from __future__ import annotations

import functools
import re
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError

from .._parse_cache import lark_cache
from ..errors import Span, split_lines
from ..limits import MAX_EXPR_DEPTH, MAX_EXPR_NODES, MAX_INT, MAX_INT_DIGITS, MAX_POLICY_BYTES
from ._lark_errors import source_error
from . import ast
from ._errors import PolicySyntaxError
from ._syntax_errors import hint_for

#: deepest nesting of lark's tree accepted before it is turned into an AST (the
#: transformer recurses on it); the AST itself is bounded by :mod:`policykit.limits`
MAX_DEPTH = MAX_EXPR_DEPTH

TERMINALS = {
    "ARROW": "'->'", "OTHERWISE": "'otherwise'", "OR": "'or'", "AND": "'and'", "NOT": "'not'",
    "TRUE": "'true'", "FALSE": "'false'", "CMP": "a comparison", "ADD": "'+' or '-'",
    "MUL": "'*'", "LBRACE": "'{'", "RBRACE": "'}'", "EQUAL": "'='", "DOT": "'.'",
    "POLICY": "a policy name", "NAME": "a name",
}


@functools.cache
def _parser() -> Lark:
    # Built once per process; the tables are kept in the user's cache (see _parse_cache).
    return Lark.open(
        "policy.lark", rel_to=__file__, cache=lark_cache("policy"),
        parser="lalr",              # linear time; errors say what was expected
        lexer="contextual",         # 'extends linux-5.9' lexes the name as POLICY
        propagate_positions=True,   # every node knows where it came from
        maybe_placeholders=True,    # optional [..] parts arrive as None
    )


class _ToAst(Transformer):
    """Tree to AST; no semantics."""

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.f = filename

    def _tok(self, tok: Token) -> Span:
        return Span(self.f, tok.line or 1, tok.column or 1, (tok.column or 1) + len(str(tok)))

    def _meta(self, meta: Any) -> Span:
        end_line = getattr(meta, "end_line", None)
        end = meta.end_column if end_line == meta.line else None
        return Span(self.f, meta.line, meta.column, end, end_line)

    # headers
    def _header(self, kind: str, tok: Token) -> ast.Header:
        quoted = tok.type == "STRING"
        return ast.Header(kind, _unquote(tok) if quoted else str(tok), self._tok(tok), quoted)

    def policy_name(self, c: list) -> ast.Header:
        return self._header("policy", c[0])

    def summary(self, c: list) -> ast.Header:
        return self._header("summary", c[0])

    def era(self, c: list) -> ast.Header:
        return self._header("era", c[0])

    def source(self, c: list) -> ast.Header:
        return self._header("source", c[0])

    def extends(self, c: list) -> ast.Header:
        return self._header("extends", c[0])

    def unrealizable(self, c: list) -> ast.Header:
        return self._header("unrealizable", c[0])

    # definitions
    @v_args(meta=True)
    def const(self, meta: Any, c: list) -> ast.Const:
        return ast.Const(str(c[0]), c[1], self._with_end(self._tok(c[0]), meta))

    def _with_end(self, span: Span, meta: Any) -> Span:
        return Span(span.filename, span.line, span.column, span.end_column, getattr(meta, "end_line", None))

    @v_args(meta=True)
    def flag(self, meta: Any, c: list) -> ast.Flag:
        owner, name, default, doc = c
        return ast.Flag(str(owner), str(name), default, _unquote(doc) if doc else "",
                        Span(self.f, owner.line, owner.column, name.end_column, getattr(meta, "end_line", None)))

    def param(self, c: list) -> ast.Param:
        name, typ = c
        return ast.Param(str(name), str(typ) if typ is not None else str(name), self._tok(name))

    @v_args(meta=True)
    def pred(self, meta: Any, c: list) -> ast.Pred:
        name, *params, body = c
        params = tuple(p for p in params if p is not None)
        return ast.Pred(str(name), params, body, self._with_end(self._tok(name), meta))

    @v_args(meta=True)
    def block(self, meta: Any, c: list) -> ast.Block:
        name, *rules = c
        return ast.Block(str(name), tuple(rules), self._with_end(self._tok(name), meta))

    @v_args(meta=True)
    def rule(self, meta: Any, c: list) -> ast.Rule:
        cond, _arrow, action, effects = c
        return ast.Rule(cond, str(action), tuple(effects or ()), self._meta(meta), self._tok(action))

    @v_args(meta=True)
    def otherwise(self, meta: Any, c: list) -> ast.Rule:
        _kw, _arrow, action, effects = c
        return ast.Rule(None, str(action), tuple(effects or ()), self._meta(meta), self._tok(action))

    def effects(self, c: list) -> list:
        return c

    @v_args(meta=True)
    def set(self, meta: Any, c: list) -> ast.Effect:
        owner, name, value = c
        return ast.Effect("set", str(owner), str(name), value, span=self._meta(meta))

    @v_args(meta=True)
    def clear(self, meta: Any, c: list) -> ast.Effect:
        owner, name = c
        return ast.Effect("clear", str(owner), str(name), span=self._meta(meta))

    @v_args(meta=True)
    def warn(self, meta: Any, c: list) -> ast.Effect:
        return ast.Effect("warn", text=_unquote(c[0]), span=self._meta(meta))

    # expressions
    def int(self, c: list) -> ast.Int:
        tok = c[0]
        # the length first: converting a 5,000-digit string is itself refused by CPython
        value = int(tok) if len(tok) <= MAX_INT_DIGITS else MAX_INT + 1
        if value > MAX_INT:
            raise PolicySyntaxError(f"integer {str(tok)[:20]}{'...' if len(tok) > 20 else ''} is too large",
                                    self._tok(tok), "", f"integers go up to {MAX_INT}")
        return ast.Int(value, self._tok(tok))

    def true(self, c: list) -> ast.Bool:
        return ast.Bool(True, self._tok(c[0]))

    def false(self, c: list) -> ast.Bool:
        return ast.Bool(False, self._tok(c[0]))

    def name(self, c: list) -> ast.Name:
        return ast.Name(str(c[0]), self._tok(c[0]))

    def attr(self, c: list) -> ast.Attr:
        obj, name = c
        return ast.Attr(str(obj), str(name), Span(self.f, obj.line, obj.column, name.end_column))

    @v_args(meta=True)
    def call(self, meta: Any, c: list) -> ast.Call:
        name, *args = c
        return ast.Call(str(name), tuple(a for a in args if a is not None), self._meta(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, c: list) -> ast.Not:
        return ast.Not(c[1], self._meta(meta))

    def _chain(self, meta: Any, c: list, kind: str) -> ast.Expr:
        operands = c[0::2]
        return ast.BoolOp(kind, tuple(operands), self._meta(meta))

    @v_args(meta=True)
    def or_expr(self, meta: Any, c: list) -> ast.Expr:
        return self._chain(meta, c, "or")

    @v_args(meta=True)
    def and_expr(self, meta: Any, c: list) -> ast.Expr:
        return self._chain(meta, c, "and")

    @v_args(meta=True)
    def comparison(self, meta: Any, c: list) -> ast.Expr:
        left, op, right = c
        return ast.Compare(str(op), left, right, self._meta(meta))

    def _arith(self, meta: Any, c: list) -> ast.Expr:
        expr = c[0]
        for op, right in zip(c[1::2], c[2::2]):
            expr = ast.Arith(str(op), expr, right, Span(self.f, meta.line, meta.column, None))
        return expr

    @v_args(meta=True)
    def sum(self, meta: Any, c: list) -> ast.Expr:
        return self._arith(meta, c)

    @v_args(meta=True)
    def product(self, meta: Any, c: list) -> ast.Expr:
        return self._arith(meta, c)


def _unquote(tok: Token) -> str:
    return str(tok)[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _depth(tree: Tree) -> tuple[int, Any]:
    """Deepest nesting of the tree, and a node there; without recursion."""
    deepest, where = 0, tree
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        if d > deepest:
            deepest, where = d, node
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, d + 1))
    return deepest, where


_ITEM_START = re.compile(r"\s*(on|const|flag|pred|policy|summary|era|source|extends)\b")


def _unclosed_block(err: PolicySyntaxError, text: str, filename: str) -> PolicySyntaxError | None:
    """A syntax error on a line that starts a new item (or at the end of the file) while a
    ``{`` is still open is that ``{``'s fault: say so at the ``{``."""
    lines = split_lines(text)
    line = err.span.line
    at_end = line > len(lines) or not "".join(lines[line - 1:]).strip() or err.message.startswith("unexpected end")
    if not at_end and not _ITEM_START.match(lines[line - 1]):
        return None
    open_braces: list[tuple[int, int]] = []
    for n, row in enumerate(lines[:line - 1] if not at_end else lines, 1):
        in_string = False
        for col, ch in enumerate(row, 1):
            if ch == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif ch == "#":
                break
            elif ch == "{":
                open_braces.append((n, col))
            elif ch == "}" and open_braces:
                open_braces.pop()
    if not open_braces:
        return None
    n, col = open_braces[-1]
    return PolicySyntaxError("this '{' is not closed", Span(filename, n, col, col + 1), text,
                             f"close the block with '}}' before line {line}" if not at_end
                             else "close the block with '}' at its end")


def parse_text(text: str, filename: str = "<policy>") -> ast.PolicyFile:
    """Parse policy text; raise :class:`PolicySyntaxError` on a syntax error."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicySyntaxError(f"the policy is larger than {MAX_POLICY_BYTES:,} bytes",
                                Span(filename, 1, 1), text, "split it: a policy can extend another")
    parser = _parser()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as exc:
        err = source_error(exc, text, filename, PolicySyntaxError, TERMINALS)
        err = _unclosed_block(err, text, filename) or err
        if err.hint is None:
            err.hint = hint_for(exc, parser.parse, text)
        raise err from None
    depth, node = _depth(tree)
    if depth > MAX_DEPTH:
        meta = node.meta
        raise PolicySyntaxError("expression nested too deeply", Span(filename, meta.line, meta.column),
                                text, f"at most {MAX_DEPTH} levels; name parts of it with 'pred'")
    try:
        items = _ToAst(filename).transform(tree).children
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, PolicySyntaxError):
            orig.source = text
            raise orig from None
        raise
    for item in items:
        _check_size(item, text)
    return ast.PolicyFile(filename, tuple(items), text)


def _expressions(item: Any) -> list[ast.Expr]:
    if isinstance(item, ast.Const):
        return [item.value]
    if isinstance(item, ast.Flag):
        return [item.default]
    if isinstance(item, ast.Pred):
        return [item.body]
    if isinstance(item, ast.Block):
        return [e for r in item.rules for e in [r.condition] + [eff.value for eff in r.effects] if e is not None]
    return []


def _check_size(item: Any, text: str) -> None:
    """Every expression of ``item`` within MAX_EXPR_DEPTH levels and MAX_EXPR_NODES
    nodes, measured on the AST (a chain ``a + b + ...`` nests one level per operator),
    without recursion."""
    for root in _expressions(item):
        nodes = 0
        todo = [(root, 1)]
        while todo:
            e, depth = todo.pop()
            nodes += 1
            span = getattr(e, "span", None) or getattr(root, "span", None)
            if depth > MAX_EXPR_DEPTH:
                raise PolicySyntaxError("expression nested too deeply", span, text,
                                        f"at most {MAX_EXPR_DEPTH} levels (each operator is one); "
                                        "name parts of it with 'pred'")
            if nodes > MAX_EXPR_NODES:
                raise PolicySyntaxError(f"expression longer than {MAX_EXPR_NODES:,} terms", span, text,
                                        "name parts of it with 'pred'")
            todo.extend((x, depth + 1) for x in ast.children(e))
