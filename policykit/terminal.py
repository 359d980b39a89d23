"""What the terminal gets: tables that fit its width, and colour when it is one.

Output to a pipe or a file keeps every table at full width and no colour, so what
scripts read does not depend on who runs them (``COLUMNS`` sets a width anyway).
Colour follows ``--color auto|always|never`` (auto: stdout is a terminal and
``NO_COLOR`` is unset, https://no-color.org).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

#: narrowest a column is wrapped to when a table must shrink
MIN_COLUMN = 12

_state = {"color": "auto"}

_STYLES = {"good": "32", "bad": "1;31", "warn": "33", "dim": "2"}


def use_color(mode: str) -> None:
    """``auto``, ``always`` or ``never``."""
    _state["color"] = mode


def color_on(stream: Any = None) -> bool:
    mode = _state["color"]
    if mode in ("always", "never"):
        return mode == "always"
    stream = stream if stream is not None else sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, kind: str) -> str:
    """``text`` in the colour of ``kind`` (good, bad, warn, dim) when colour is on."""
    if not text or not color_on():
        return text
    return f"\033[{_STYLES[kind]}m{text}\033[0m"


def width() -> int | None:
    """The width tables must fit: the terminal's, or ``$COLUMNS``; None for a pipe."""
    columns = os.environ.get("COLUMNS")
    if columns and columns.isdigit():
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def warm_up() -> None:
    """Import what :func:`table` needs, ahead of time (while the last runs finish)."""
    import tabulate  # noqa: F401


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], tablefmt: str = "simple",
          fit: int | None = None) -> str:
    """``tabulate`` with the widest columns wrapped until the table fits ``fit`` columns
    (default: :func:`width`); markdown (``github``) tables are never wrapped."""
    from tabulate import tabulate

    words = _text_columns(rows)
    text = tabulate(rows, headers, tablefmt=tablefmt, disable_numparse=words)
    limit = width() if fit is None else fit
    if limit is None or tablefmt == "github" or not rows:
        return text
    longest = max(len(line) for line in text.splitlines())
    if longest <= limit:
        return text
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    natural = [max(max((len(x) for x in cell.splitlines()), default=0) for cell in column)
               for column in zip(*cells)]
    widths = list(natural)
    for _ in range(8):                  # wrapping at words may leave a line a little long
        excess = longest - limit
        while excess > 0:
            i = max(range(len(widths)), key=widths.__getitem__)
            if widths[i] <= MIN_COLUMN:
                return text
            step = min(excess, widths[i] - MIN_COLUMN, max(1, widths[i] // 4))
            widths[i] -= step
            excess -= step
        text = tabulate(rows, headers, tablefmt=tablefmt, disable_numparse=words,
                        maxcolwidths=[w if w < n else None for w, n in zip(widths, natural)])
        longest = max(len(line) for line in text.splitlines())
        if longest <= limit:
            break
    return text


def _text_columns(rows: Sequence[Sequence[Any]]) -> list[int]:
    """The columns ``tabulate`` would find to be text (a cell in them is a string that
    reads as no number): it need not try to read their other cells as numbers, which is
    most of the time it takes over a long table."""
    text = []
    for i in range(max((len(row) for row in rows), default=0)):
        for row in rows:
            cell = row[i] if i < len(row) else None
            if isinstance(cell, str) and cell and _surely_text(cell):
                text.append(i)
                break
    return text


def _surely_text(cell: str) -> bool:
    """No number (an int in any base, a float, digits with thousands separators) and no
    colour codes, which tabulate strips before it looks."""
    if "\x1b" in cell:
        return False
    try:
        float(cell.replace(",", ""))
        return False
    except ValueError:
        pass
    try:
        int(cell, 0)
        return False
    except ValueError:
        return True
