"""Error types: every user-facing failure carries enough context to print without a traceback."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class PolicyKitError(Exception):
    """Base of every error policykit reports to a user."""

    #: exit code the CLI uses for this error (see :class:`policykit.cli.ExitCode`)
    exit_code: int = 2

    def render(self) -> str:
        return f"error: {self}"


@dataclass(frozen=True)
class Span:
    """A place in a source file: 1-based line and column, end column exclusive (on the
    start line), and the last line where a construct spans several."""

    filename: str
    line: int
    column: int
    end_column: int | None = None
    end_line: int | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:    # pickled as a call: fast to load
        return _span, (self.filename, self.line, self.column, self.end_column, self.end_line)


def _span(filename: str, line: int, column: int, end_column: int | None, end_line: int | None) -> Span:
    """A :class:`Span` unpickled: its fields set at once, not one frozen ``__setattr__``
    after another (the cached corpus holds some 12,000 spans: 7 ms of every start)."""
    span = object.__new__(Span)
    span.__dict__.update(filename=filename, line=line, column=column, end_column=end_column, end_line=end_line)
    return span


def split_lines(text: str) -> list[str]:
    """``text``'s lines as the parsers count them: only ``\n`` ends a line (a ``\r``
    before it goes with it); form feeds, vertical tabs and U+2028 do not."""
    return [line.removesuffix("\r") for line in text.split("\n")]


@functools.lru_cache(maxsize=8)
def _lines(text: str) -> list[str]:
    return split_lines(text)


def source_line(text: str, line: int) -> str:
    """Line ``line`` (1-based) of ``text``, "" when there is none; cheap to ask again and
    again of one text (a file with ten thousand warnings renders each)."""
    lines = _lines(text)
    return lines[line - 1] if 0 < line <= len(lines) else ""


class SourceError(PolicyKitError):
    """An error at a place in a `.scn` or `.pol` file, rendered with the line and a caret."""

    #: "error", or "warning" for a finding that does not stop anything
    severity = "error"
    #: the message's stable code (:mod:`policykit.codes`)
    code = ""

    def __init__(self, message: str, span: Span, source: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint

    def render(self) -> str:
        s = self.span
        text = source_line(self.source, s.line)
        width = max(1, (s.end_column or s.column + 1) - s.column)
        gutter = f"{s.line:>4} | "
        out = [
            f"{s.filename}:{s.line}:{s.column}: {self.severity}{f'[{self.code}]' if self.code else ''}: {self.message}",
            f"{gutter}{text}",
            " " * (len(gutter) - 2) + "| " + " " * (s.column - 1) + "^" * width,
        ]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        s = self.span
        return f"{s.filename}:{s.line}:{s.column}: {self.message}"


class ScenarioError(SourceError):
    """A malformed scenario file: syntax, unknown names, misuse of references."""

    code = "PK251"


class ScenarioSyntaxError(ScenarioError):
    """A scenario file that does not parse."""

    code = "PK151"


class PolicyLoadError(PolicyKitError):
    """A policy could not be loaded (missing file, import failure, no decision hooks)."""


class PluginError(PolicyKitError):
    """A plugin broke the hook contract: bad hook name or signature, bad return value, exception."""

    exit_code = 3

    def __init__(self, message: str, plugin: str | None = None, hook: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook

    def render(self) -> str:
        where = []
        if self.plugin:
            where.append(f"plugin {self.plugin!r}")
        if self.hook:
            where.append(f"hook {self.hook}")
        prefix = f" ({', '.join(where)})" if where else ""
        return f"error{prefix}: {self}"


class PolicyDecisionError(PluginError):
    """A decision hook returned nothing, or something that is not a legal action."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return "did you mean 'x'?" for the closest candidate, or None."""
    import difflib      # only a mistake needs it: not imported at every start

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
