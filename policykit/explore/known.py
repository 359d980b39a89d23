"""What explore may hide: violation classes, step patterns, and the behaviour every
kernel has (``--ignore known``), each explained with its source in docs/explore.md."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence

from ..errors import did_you_mean
from .search import Verdict
from .space import ExploreError

#: ``--ignore known``: behaviour every kernel has, each explained in docs/explore.md.
#: O_DIRECT vs fork: a FOLL_GET reference does not make fork copy (only FOLL_PIN does),
#: so the parent or the child COWs away from the DMA target.
KNOWN_PATTERNS = {"o-direct-fork": "gup * get write*; fork *; dma_write *"}
#: A short-term read-only pin of a page never written pins the shared zero page; the
#: first write maps a fresh page (only FOLL_LONGTERM read-only pins unshare first): a
#: pin-incoherent while a read-only pin holds the zero page.
KNOWN_ZERO_PAGE_PIN = "zero-page-pin"
KNOWN = {**KNOWN_PATTERNS, KNOWN_ZERO_PAGE_PIN: "pin-incoherent while a read-only pin holds the zero page"}


class Ignore:
    """``--ignore``: violation classes, or step patterns (globs ``;``-separated, matched in
    order, gaps allowed) a witness must contain to be hidden; ``known`` is :data:`KNOWN`."""

    def __init__(self, items: Iterable[str], classes: Iterable[str]) -> None:
        self.classes: set[str] = set()
        self.patterns: list[list[str]] = []
        self.zero_page = False
        known = set(classes)
        for item in items:
            item = item.strip()
            if item == "known":
                self.patterns.extend([p.strip() for p in pat.split(";")] for pat in KNOWN_PATTERNS.values())
                self.zero_page = True
            elif item == KNOWN_ZERO_PAGE_PIN:
                self.zero_page = True
            elif item in KNOWN_PATTERNS:
                self.patterns.append([p.strip() for p in KNOWN_PATTERNS[item].split(";")])
            elif item in known:
                self.classes.add(item)
            elif " " in item or ";" in item or "*" in item:
                self.patterns.append([p.strip() for p in item.split(";") if p.strip()])
            else:
                hint = did_you_mean(item, sorted(known) + ["known", *KNOWN])
                raise ExploreError(f"--ignore {item!r}: not a violation class nor a step pattern"
                                   + (f"; {hint}" if hint else "")
                                   + f" (classes: {', '.join(sorted(known))}; 'known' or one of "
                                     f"{', '.join(KNOWN)}; or a pattern like 'gup * get write*; fork *')")

    def hides(self, cls: str, verdict: Verdict, lines: Callable[[], tuple[list[str], int]]) -> bool:
        """Is a violation of ``cls`` at a step with ``verdict`` hidden?  ``lines()`` gives
        the witness's lines and how many of them make the start (asked only if needed)."""
        if cls in self.classes:
            return True
        if self.zero_page and cls == "pin-incoherent" and verdict.pins_zero_page:
            return True
        return bool(self.patterns) and self.matches(*lines())

    def matches(self, lines: Sequence[str], start: int) -> bool:
        """Does a pattern match the steps after the ``start`` first lines?  Its globs
        match steps in order, with gaps; a glob written ``!GLOB`` says that no step
        matching GLOB may come before the next glob's match."""
        steps = [ln.split(" ->")[0] for ln in lines[start:]]
        return any(_match(pattern, steps) for pattern in self.patterns)


def _match(pattern: list[str], steps: list[str]) -> bool:
    i, forbidden = 0, []
    for ln in steps:
        while i < len(pattern) and pattern[i].startswith("!"):
            forbidden.append(pattern[i][1:].strip())
            i += 1
        if i == len(pattern):
            return True
        if fnmatch.fnmatchcase(ln, pattern[i]):
            i, forbidden = i + 1, []
        elif any(fnmatch.fnmatchcase(ln, f) for f in forbidden):
            return False
    return i == len(pattern) or all(p.startswith("!") for p in pattern[i:])
