"""Scenario text to :class:`~policykit.scenario.model.Scenario` (syntax only).

A scenario file has one statement per line; ``#`` starts a comment::

    scenario vmsplice-child-unmap             # header lines
    title "vmsplice() + unmap in child"
    tags cow.c vmsplice
    source "cow.c: test_vmsplice_in_child"
    variants base swapped thp                 # optional: one run per memory variant
    spawn -> parent                           # operations: NAME ARG... [-> NAME]
    mmap parent 1 private -> buf              # an ARG is a word, a number, NAME[i], NAME[i:j]
    expect linux-5.7: leak                    # expectations and budgets per policy,
    expect linux-5.9 on swapped: leak         # ... per variant with 'on'
    budget linux-5.19: wp_copies <= 1, fork_copies == 0

Operations are generic: their parameters come from the operation registry (see
:mod:`.check`), so a plugin's operation needs nothing here.  The format is line-oriented
and small, so this is a hand-written lexer and parser: it reads the whole corpus in a few
milliseconds, and reports a mistake at its line and column, with what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ScenarioSyntaxError, Span, split_lines
from ..limits import MAX_INT_DIGITS, MAX_SCENARIO_BYTES, MAX_STEPS
from .model import Arg, Bound, Budget, Expectation, Scenario, Step

#: one token: its kind is the name of the group that matched
_TOKEN = re.compile(r"""
    (?P<ws>[ \t]+)
  | (?P<comment>\#.*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<arrow>->)
  | (?P<cmp><=|>=|==|<|>)
  | (?P<punct>[:,\[\]])
  | (?P<int>(?:0|[1-9][0-9]*)(?![A-Za-z0-9_.\-]))
  | (?P<word>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?(?::(?:[0-9]+[kKmMgG]|\*)(?![A-Za-z0-9_]))?)
""", re.VERBOSE)

#: what each expected token is called in messages
_NAMES = {"word": "a name", "int": "a number", "string": 'a quoted string ("...")',
          "cmp": "a comparison (<=, ==, ...)", "arrow": "'->'", "eol": "end of line"}

_HEADERS = ("scenario", "title", "tags", "source", "variants", "expect", "budget")

_HINTS = {
    "string": 'text is written in double quotes and closed on the same line: title "..."',
    "expect": ("expectations read 'expect POLICY [on VARIANT...]: CLASS...', "
               "budgets 'budget POLICY [on VARIANT...]: METRIC <= N'"),
    "bound": "bounds read METRIC <= NUMBER, e.g. budget linux-5.19: wp_copies <= 1",
    "slice": "pages are chosen with [i] or [i:j], e.g. buf[0] or buf[1:3]",
    "result": "a result is named by one '-> NAME' at the end of an operation",
    "line": "one statement per line: OPERATION ARGS... [-> NAME]; '#' starts a comment",
}


class _Tok:
    __slots__ = ("kind", "text", "col")

    def __init__(self, kind: str, text: str, col: int) -> None:
        self.kind, self.text, self.col = kind, text, col

    def describe(self) -> str:
        return "end of line" if self.kind == "eol" else repr(self.text)


class _Line:
    """The tokens of one line, read left to right; mistakes raise ScenarioSyntaxError."""

    def __init__(self, tokens: list[_Tok], line: int, filename: str, source: str) -> None:
        self.tokens, self.pos = tokens, 0
        self.line, self.filename, self.source = line, filename, source

    def span(self, tok: _Tok, end: int | None = None) -> Span:
        width = 1 if tok.kind == "eol" else len(tok.text)
        return Span(self.filename, self.line, tok.col, end if end is not None else tok.col + width)

    def peek(self) -> _Tok:
        return self.tokens[self.pos]

    def take(self, kind: str, text: str | None = None, hint: str = "line") -> _Tok:
        tok = self.tokens[self.pos]
        if tok.kind != kind or (text is not None and tok.text != text):
            self.unexpected(repr(text) if text is not None else _NAMES.get(kind, kind), hint)
        self.pos += 1
        return tok

    def accept(self, kind: str, text: str | None = None) -> _Tok | None:
        tok = self.tokens[self.pos]
        if tok.kind == kind and (text is None or tok.text == text):
            self.pos += 1
            return tok
        return None

    def unexpected(self, expected: str, hint: str = "line") -> None:
        tok = self.peek()
        raise ScenarioSyntaxError(f"unexpected {tok.describe()}; expected {expected}", self.span(tok),
                            self.source, _HINTS[hint])

    def end(self, hint: str = "line") -> None:
        if self.peek().kind != "eol":
            self.unexpected("end of line", hint)


def _tokens(text: str, line: int, filename: str, source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            kind = "string" if text[pos] == '"' else "line"
            raise ScenarioSyntaxError(f"unexpected character {text[pos]!r}",
                                Span(filename, line, pos + 1, pos + 2), source, _HINTS[kind])
        kind = m.lastgroup
        if kind == "comment":
            break
        if kind == "int" and len(m.group()) > MAX_INT_DIGITS:
            raise ScenarioSyntaxError(f"number {m.group()[:20]}... is too large", Span(filename, line, pos + 1, m.end() + 1),
                                source, f"numbers have at most {MAX_INT_DIGITS} digits")
        if kind != "ws":
            out.append(_Tok("word" if kind == "word" else kind, m.group(), pos + 1))
        pos = m.end()
    end = len(text.split("#")[0].rstrip()) + 1 if out else 1
    out.append(_Tok("eol", "", end))
    return out


def _unquote(s: str) -> str:
    return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _on(t: _Line) -> tuple[tuple[str, Span], ...]:
    """``on VARIANT...`` before the ':' of an expectation or a budget."""
    if t.accept("word", "on") is None:
        return ()
    names = [t.take("word", hint="expect")]
    while t.peek().kind == "word":
        names.append(t.take("word"))
    return tuple((n.text, t.span(n)) for n in names)


def _policy_head(t: _Line) -> tuple[_Tok, tuple[tuple[str, Span], ...]]:
    policy = t.accept("word") or t.accept("int")
    if policy is None:
        t.unexpected("a policy name", "expect")
    on = _on(t)
    if t.peek().kind == "word" and not on:
        t.unexpected("':', 'on'", "expect")
    t.take("punct", ":", hint="expect")
    return policy, on  # type: ignore[return-value]


def _arg(t: _Line) -> Arg:
    tok = t.peek()
    if tok.kind == "int":
        t.pos += 1
        return Arg("int", int(tok.text), None, t.span(tok))
    name = t.take("word")
    if t.accept("punct", "[") is None:
        return Arg("word", name.text, None, t.span(name))
    lo = t.accept("int")
    if lo is not None and t.accept("punct", "]") is not None:
        close = t.tokens[t.pos - 1]
        return Arg("index", name.text, (int(lo.text), int(lo.text) + 1), t.span(name, close.col + 1))
    if t.accept("punct", ":") is None:
        t.unexpected("':', ']'" if lo is not None else "':', a number", "slice")
    hi = t.accept("int")
    if t.peek().kind != "punct" or t.peek().text != "]":
        t.unexpected("']'" if hi is not None else "']', a number", "slice")
    close = t.take("punct", "]")
    return Arg("slice", name.text, (int(lo.text) if lo else None, int(hi.text) if hi else None),
               t.span(name, close.col + 1))


def _step(t: _Line, text: str) -> Step:
    op = t.take("word")
    args: list[Arg] = []
    while t.peek().kind in ("word", "int"):
        args.append(_arg(t))
    result = None
    if t.accept("arrow") is not None:
        result = t.take("word", hint="result")
        t.end("result")
    elif t.peek().kind != "eol":
        t.unexpected("an argument, '->', end of line")
    clean = text.split("#")[0].strip()
    span = t.span(op)
    if result is None:
        return Step(op.text, tuple(args), None, span, clean)
    return Step(op.text, tuple(args), result.text, span, clean, t.span(result))


def _statement(t: _Line, text: str) -> tuple[str, object, Span] | Step:
    first = t.peek()
    if first.kind != "word" or first.text not in _HEADERS:
        if first.kind != "word":
            t.unexpected("an operation or a header (scenario, title, tags, source, variants, expect, budget)")
        return _step(t, text)
    t.pos += 1
    kw = first.text
    if kw == "scenario":
        name = t.take("word")
        t.end()
        return ("name", name.text, t.span(name))
    if kw in ("title", "source"):
        s = t.take("string", hint="string")
        t.end()
        return (kw, _unquote(s.text), t.span(s))
    if kw in ("tags", "variants"):
        names = [t.take("word")]
        while t.peek().kind == "word":
            names.append(t.take("word"))
        t.end()
        if kw == "tags":
            return ("tags", frozenset(n.text for n in names), t.span(names[0]))
        spans = tuple((n.text, t.span(n)) for n in names)
        return ("variants", spans, spans[0][1])
    policy, on = _policy_head(t)
    span = t.span(policy)
    if kw == "expect":
        classes = [t.take("word", hint="expect")]
        while t.peek().kind == "word":
            classes.append(t.take("word"))
        t.end("expect")
        exp = Expectation(policy.text, frozenset(c.text for c in classes if c.text != "ok"), span,
                          tuple((c.text, t.span(c)) for c in classes), on)
        return ("expect", exp, span)
    bounds = []
    while True:
        metric = t.take("word", hint="bound")
        cmp = t.take("cmp", hint="bound")
        value = t.take("int", hint="bound")
        bounds.append(Bound(metric.text, cmp.text, int(value.text), t.span(metric)))
        if t.accept("punct", ",") is None:
            break
    t.end("bound")
    return ("budget", Budget(policy.text, tuple(bounds), span, on), span)


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    """Parse scenario text; raise :class:`~policykit.errors.ScenarioSyntaxError` on a syntax error."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise ScenarioSyntaxError(f"the scenario is larger than {MAX_SCENARIO_BYTES:,} bytes", Span(filename, 1, 1),
                            text, "a scenario says one story; split it")
    header: dict = {}
    steps: list[Step] = []
    expectations: dict[str, Expectation] = {}
    budgets: dict[str, tuple[Bound, ...]] = {}
    overrides: list[Expectation | Budget] = []
    seen: dict[tuple[str, str, str], Span] = {}     # (kind, policy, variant) -> first line
    for number, line_text in enumerate(split_lines(text), 1):
        tokens = _tokens(line_text, number, filename, text)
        if len(tokens) == 1:                        # blank, or a comment
            continue
        item = _statement(_Line(tokens, number, filename, text), line_text)
        if isinstance(item, Step):
            if len(steps) == MAX_STEPS:
                raise ScenarioSyntaxError(f"more than {MAX_STEPS:,} steps", item.span, text,
                                    "a scenario says one story; split it")
            steps.append(item)
            continue
        kind, value, span = item
        if kind in ("expect", "budget"):
            assert isinstance(value, (Expectation, Budget))
            for variant, _ in value.variants or (("", span),):
                key = (kind, value.policy, variant)
                if key in seen:
                    where = f" on {variant}" if variant else ""
                    raise ScenarioSyntaxError(
                        f"second {'expectation' if kind == 'expect' else 'budget'} for policy "
                        f"{value.policy!r}{where} (the first is at line {seen[key].line})", span, text,
                        "give one 'expect' line per policy, listing every class" if kind == "expect"
                        else "separate bounds with ',' on one 'budget' line")
                seen[key] = span
            if value.variants:
                overrides.append(value)
            elif isinstance(value, Expectation):
                expectations[value.policy] = value
            else:
                budgets[value.policy] = value.bounds
        else:
            if kind in header:
                raise ScenarioSyntaxError(f"'{'scenario' if kind == 'name' else kind}' given twice",
                                    span, text, "each header line may appear once")
            header[kind] = value
    name = header.get("name") or Path(filename).stem
    return Scenario(
        name=name, steps=tuple(steps), filename=filename, title=header.get("title", ""),
        tags=header.get("tags", frozenset()), source=header.get("source", ""),
        expectations=expectations, budgets=budgets,
        variants=header.get("variants", ()), overrides=tuple(overrides),
    )
