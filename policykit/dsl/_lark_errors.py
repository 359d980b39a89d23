"""Turning lark's parse errors into :class:`~policykit.errors.SourceError` with English
names for terminals (the hints for policies are in :mod:`._syntax_errors`)."""

from __future__ import annotations

from collections.abc import Iterable

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import SourceError, Span, split_lines

#: how terminals are named in messages
TERMINAL_NAMES = {
    "NAME": "a name",
    "POLICY": "a policy name",
    "INT": "a number",
    "STRING": 'a quoted string ("...")',
    "CMP": "a comparison (<=, ==, ...)",
    "COLON": "':'",
    "COMMA": "','",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "_NL": "end of line",
    "$END": "end of file",
    "ARROW": "'->'",
}


def describe(terminals: Iterable[str], names: dict[str, str] | None = None) -> str:
    table = {**TERMINAL_NAMES, **(names or {})}
    out = []
    for t in sorted(set(terminals)):
        if t in table:
            out.append(table[t])
        elif t.isupper() and not t.startswith("_"):
            out.append(f"'{t.lower()}'")
        else:
            out.append(t.lower().strip("_"))
    out = sorted(set(out))
    if len(out) > 6:
        out = out[:6] + ["..."]
    return ", ".join(out)


def token_text(tok: Token) -> str:
    if tok.type in ("_NL", "$END"):
        return TERMINAL_NAMES[tok.type]
    return repr(str(tok))


def source_error(exc: UnexpectedInput, text: str, filename: str, cls: type[SourceError],
                 names: dict[str, str] | None = None, hint: str | None = None) -> SourceError:
    """Convert a lark error into ``cls`` at the right place."""
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line = tok.line if tok.line is not None else exc.line
        col = tok.column if tok.column is not None else exc.column
        width = len(str(tok)) if tok.type not in ("_NL", "$END") else 1
        if tok.type == "$END":
            lines = split_lines(text.rstrip("\n")) or [""]
            line, col = len(lines), len(lines[-1]) + 1
        elif tok.type == "_NL":
            lines = split_lines(text)
            line = tok.line
            col = len(lines[line - 1].split("#")[0].rstrip()) + 1 if line <= len(lines) else 1
        msg = f"unexpected {token_text(tok)}; expected {describe(exc.expected, names)}"
        return cls(msg, Span(filename, line, col, col + width), text, hint)
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        msg = f"unexpected character {ch!r}"
        allowed = getattr(exc, "allowed", None)
        if allowed:
            msg += f"; expected {describe(allowed, names)}"
        return cls(msg, Span(filename, exc.line, exc.column, exc.column + 1), text, hint)
    if isinstance(exc, UnexpectedEOF):
        lines = split_lines(text.rstrip("\n")) or [""]
        return cls(f"unexpected end of file; expected {describe(exc.expected, names)}",
                   Span(filename, len(lines), len(lines[-1]) + 1), text, hint)
    return cls(str(exc), Span(filename, getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1),
               text, hint)
