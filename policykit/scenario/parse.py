"""Scenario text to :class:`~policykit.scenario.model.Scenario` (syntax only)."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput

from .._parse_cache import lark_cache
from ..errors import ScenarioError, Span
from ..syntax import source_error
from .model import Arg, Bound, Budget, Expectation, Scenario, Step


_TRANSFORMER: _ToAst


@functools.cache
def _parser() -> Lark:
    # Built once per process; the tables are kept in the user's cache (see _parse_cache).
    # The transformer runs as the parser reduces (no tree is built): the fastest way
    # through lark, which is why no rule needs positions beyond its tokens'.
    return Lark.open(
        "scenario.lark", rel_to=__file__, cache=lark_cache("scenario"),
        parser="lalr",              # fast, and errors name what was expected
        lexer="contextual",         # 'expect linux-5.9:' lexes the policy name as POLICY
        maybe_placeholders=False,
        transformer=_TRANSFORMER,
    )


def _span(filename: str, tok: Token) -> Span:
    return Span(filename, tok.line or 1, tok.column or 1, (tok.column or 1) + len(str(tok)))


class _ToAst(Transformer):
    """Parse-time transformer: ``filename`` and ``lines`` are set before each parse."""

    def __init__(self) -> None:
        super().__init__()
        self.filename = "<scenario>"
        self.lines: list[str] = []

    def _bracket_span(self, name: Token, close: Token) -> Span:
        end = (close.column or 1) + 1 if close.line == name.line else None
        return Span(self.filename, name.line or 1, name.column or 1, end)

    @v_args(inline=True)
    def word(self, name: Token) -> Arg:
        return Arg("word", str(name), None, _span(self.filename, name))

    @v_args(inline=True)
    def int(self, num: Token) -> Arg:
        return Arg("int", int(num), None, _span(self.filename, num))

    def index(self, children: list[Token]) -> Arg:
        name, _, i, close = children
        return Arg("index", str(name), (int(i), int(i) + 1), self._bracket_span(name, close))

    def slice(self, children: list[Token]) -> Arg:
        name, close = children[0], children[-1]
        lo = hi = None
        seen_colon = False
        for c in children[2:-1]:
            if c.type == "COLON":
                seen_colon = True
            elif seen_colon:
                hi = int(c)
            else:
                lo = int(c)
        return Arg("slice", str(name), (lo, hi), self._bracket_span(name, close))

    def step(self, children: list) -> Step:
        op = children[0]
        result = None
        args = []
        rest = children[1:]
        for i, c in enumerate(rest):
            if isinstance(c, Token) and c.type == "ARROW":
                result = rest[i + 1]
                break
            args.append(c)
        text = self.lines[op.line - 1].split("#")[0].strip()
        span = Span(self.filename, op.line, op.column, op.column + len(str(op)))
        if result is None:
            return Step(str(op), tuple(args), None, span, text)
        return Step(str(op), tuple(args), str(result), span, text, _span(self.filename, result))

    def scenario_name(self, children: list[Token]) -> tuple:
        return ("name", str(children[0]), _span(self.filename, children[0]))

    def title(self, children: list[Token]) -> tuple:
        return ("title", _unquote(children[0]), _span(self.filename, children[0]))

    def source(self, children: list[Token]) -> tuple:
        return ("source", _unquote(children[0]), _span(self.filename, children[0]))

    def tags(self, children: list[Token]) -> tuple:
        return ("tags", frozenset(str(c) for c in children), _span(self.filename, children[0]))

    def variants(self, children: list[Token]) -> tuple:
        names = tuple((str(c), _span(self.filename, c)) for c in children)
        return ("variants", names, names[0][1])

    def on(self, children: list[Token]) -> tuple:
        return ("on", tuple((str(c), _span(self.filename, c)) for c in children))

    def expect(self, children: list) -> tuple:
        on = next((c[1] for c in children if isinstance(c, tuple)), ())
        policy, *classes = [c for c in children if isinstance(c, Token) and c.type != "COLON"]
        span = _span(self.filename, policy)
        exp = Expectation(str(policy), frozenset(str(c) for c in classes if str(c) != "ok"), span,
                          tuple((str(c), _span(self.filename, c)) for c in classes), on)
        return ("expect", exp, span)

    def bound(self, children: list[Token]) -> Bound:
        metric, cmp, value = children
        return Bound(str(metric), str(cmp), int(value), _span(self.filename, metric))

    def budget(self, children: list) -> tuple:
        policy = children[0]
        on = next((c[1] for c in children if isinstance(c, tuple)), ())
        bounds = tuple(c for c in children[1:] if isinstance(c, Bound))
        span = _span(self.filename, policy)
        return ("budget", Budget(str(policy), bounds, span, on), span)


_TRANSFORMER = _ToAst()
_LOCK = threading.Lock()


def _unquote(tok: Token) -> str:
    s = str(tok)[1:-1]
    return s.replace('\\"', '"').replace("\\\\", "\\")


def _syntax_hint(exc: UnexpectedInput) -> str:
    """A one-line hint for the common syntax mistakes."""
    tok = getattr(exc, "token", None)
    expected = set(getattr(exc, "expected", ()) or getattr(exc, "allowed", ()) or ())
    if isinstance(tok, Token) and tok.type == "ARROW":
        return "a result is named by one '-> NAME' at the end of an operation"
    if "STRING" in expected:
        return 'text is written in double quotes and closed on the same line: title "..."'
    if "COLON" in expected and "INT" in expected:
        return "pages are chosen with [i] or [i:j], e.g. buf[0] or buf[1:3]"
    if "CMP" in expected:
        return "bounds read METRIC <= NUMBER, e.g. budget linux-5.19: wp_copies <= 1"
    if "POLICY" in expected or (isinstance(tok, Token) and "COLON" in expected):
        return ("expectations read 'expect POLICY [on VARIANT...]: CLASS...', "
                "budgets 'budget POLICY [on VARIANT...]: METRIC <= N'")
    return "one statement per line: OPERATION ARGS... [-> NAME]; '#' starts a comment"


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    """Parse scenario text; raise :class:`ScenarioError` on a syntax error."""
    parser = _parser()
    try:
        with _LOCK:                     # one transformer, set for this text
            _TRANSFORMER.filename, _TRANSFORMER.lines = filename, text.splitlines()
            items = parser.parse(text if text.endswith("\n") else text + "\n").children
    except UnexpectedInput as exc:
        raise source_error(exc, text, filename, ScenarioError, hint=_syntax_hint(exc)) from None

    header: dict = {}
    steps: list[Step] = []
    expectations: dict[str, Expectation] = {}
    budgets: dict[str, tuple[Bound, ...]] = {}
    overrides: list[Expectation | Budget] = []
    seen: dict[tuple[str, str, str], Span] = {}     # (kind, policy, variant) -> first line
    for item in items:
        if isinstance(item, Step):
            steps.append(item)
            continue
        kind, value, span = item[0], item[1], item[2]
        if kind in ("expect", "budget"):
            for variant, _ in value.variants or (("", span),):
                key = (kind, value.policy, variant)
                if key in seen:
                    where = f" on {variant}" if variant else ""
                    raise ScenarioError(
                        f"second {'expectation' if kind == 'expect' else 'budget'} for policy "
                        f"{value.policy!r}{where} (the first is at line {seen[key].line})", span, text,
                        "give one 'expect' line per policy, listing every class" if kind == "expect"
                        else "separate bounds with ',' on one 'budget' line")
                seen[key] = span
            if value.variants:
                overrides.append(value)
            elif kind == "expect":
                expectations[value.policy] = value
            else:
                budgets[value.policy] = value.bounds
        else:
            if kind in header:
                raise ScenarioError(f"'{'scenario' if kind == 'name' else kind}' given twice",
                                    span, text, "each header line may appear once")
            header[kind] = value
    name = header.get("name") or Path(filename).stem
    return Scenario(
        name=name, steps=tuple(steps), filename=filename, title=header.get("title", ""),
        tags=header.get("tags", frozenset()), source=header.get("source", ""),
        expectations=expectations, budgets=budgets,
        variants=header.get("variants", ()), overrides=tuple(overrides),
    )
