"""Shrinking a witness toward the shortlex-smallest scenario that still shows it:
fewest steps, then fewest processes, then fewest pages, then the plainest flags (no
``longterm``, no ``fast``, ``get`` before ``pin``), then the earliest names.

Each candidate is a scenario text replayed from scratch (never a cached state); the
result is 1-minimal (removing any one step loses the finding) and the same whatever
witness the search happened to start from.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: how plain a flag is: a witness with lighter flags is smaller
_WEIGHT = {"pin": 4, "longterm": 2, "fast": 2, "force": 3, "zap_race": 3, "write": 1}
_NAME = re.compile(r"\b([crm])(\d+)\b")
_MMAP_PAGES = re.compile(r"^(mmap\s+\S+\s+)(\d+)\b")
_SLICE = re.compile(r"\b([A-Za-z_][\w.-]*)\[(\d+)\]")


def order(lines: list[str]) -> tuple:
    """The shortlex key a smaller witness has a smaller value of."""
    procs = sum(1 for ln in lines if ln.startswith(("spawn", "fork")))
    pages = sum(int(m.group(2)) for ln in lines if (m := _MMAP_PAGES.match(ln)))
    flags = sum(_WEIGHT.get(w, 0) for ln in lines for w in ln.split("->")[0].split()[1:])
    return (len(lines), procs, pages, flags, lines)


def _candidates(lines: list[str]) -> list[list[str]]:
    out = []
    for i in range(len(lines) - 1, -1, -1):               # drop one step, the last first
        out.append(lines[:i] + lines[i + 1:])
    for i, ln in enumerate(lines):
        head, arrow, tail = ln.partition(" ->")
        words = head.split()
        for j, w in enumerate(words[1:], 1):
            if w in _WEIGHT and w != "pin":                 # drop a flag
                out.append(lines[:i] + [" ".join(words[:j] + words[j + 1:]) + arrow + tail] + lines[i + 1:])
            elif w == "pin" and words[0] == "gup":          # a pin becomes a get
                out.append(lines[:i] + [" ".join(words[:j] + ["get"] + words[j + 1:]) + arrow + tail]
                           + lines[i + 1:])
        for m in _SLICE.finditer(head):                     # one page: the whole, or an earlier one
            whole = head[:m.start()] + m.group(1) + head[m.end():]
            out.append(lines[:i] + [whole + arrow + tail] + lines[i + 1:])
            if int(m.group(2)) > 0:
                earlier = head[:m.start()] + f"{m.group(1)}[{int(m.group(2)) - 1}]" + head[m.end():]
                out.append(lines[:i] + [earlier + arrow + tail] + lines[i + 1:])
        m = _MMAP_PAGES.match(ln)
        if m and int(m.group(2)) > 1:                       # one page fewer
            out.append(lines[:i] + [_MMAP_PAGES.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - 1}", ln)]
                       + lines[i + 1:])
    return out


def rename(lines: list[str]) -> list[str]:
    """Name explore's processes, references and mappings c1, c2..., r1..., m1... in
    order of first appearance."""
    table: dict[str, str] = {}
    count: dict[str, int] = {}

    def new(m: re.Match[str]) -> str:
        old = m.group(0)
        if old not in table:
            count[m.group(1)] = count.get(m.group(1), 0) + 1
            table[old] = f"{m.group(1)}{count[m.group(1)]}"
        return table[old]

    return [_NAME.sub(new, ln) for ln in lines]


def shrink(lines: list[str], holds: Callable[[list[str]], bool], limit: int = 2000) -> list[str]:
    """The smallest variant of ``lines`` (scenario steps) for which ``holds`` stays
    true.  ``holds(lines)`` must be true to begin with; ``limit`` bounds the replays."""
    best = list(lines)
    tried: set[tuple[str, ...]] = set()
    improved = True
    while improved and limit > 0:
        improved = False
        key = order(best)
        for cand in _candidates(best):
            t = tuple(cand)
            if t in tried or order(cand) >= key:
                continue
            tried.add(t)
            limit -= 1
            if holds(cand):
                best = cand
                improved = True
                break
            if limit <= 0:
                break
    named = rename(best)
    if named != best and holds(named):
        best = named
    return best
