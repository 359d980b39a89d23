"""cow.c's catalogue -- its tests and the memory each runs on -- and which corpus
scenario stands for each pair (``policykit corpus --cow-c``).

The catalogue follows the kernel's ``tools/testing/selftests/mm/cow.c`` as of 6.18:
every anonymous test runs on a base page, a swapped-out one, each THP size the kernel
offers (PMD-mapped and swapped-out for the PMD size only; PTE-mapped, swapped-out
PTE-mapped, a single PTE, a single PTE of a swapped-out THP, partially mremap()'ed,
partially shared for every size) and each hugetlb size; the THP-collapse tests run on a
PMD-sized THP; the non-anonymous tests on the shared zero page, a memfd, a tmpfile,
the huge zero page and a hugetlb memfd of each size.  Sizes are x86-64's with 4 KiB
pages (anonymous mTHP orders 2..9, hugetlb 2 MiB and 1 GiB).

A scenario stands for a test when its ``source`` names the test's function
(``cow.c: test_cow_in_parent``); for a kind of memory when it runs on the variant that
models it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: anonymous THP sizes in KiB (orders 2..9), the PMD size last
THP_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048)
PMD_KB = 2048
HUGETLB_SIZES = (2048, 1048576)



@dataclass(frozen=True)
class Test:
    """One of cow.c's test cases."""

    number: int
    title: str
    function: str
    harness: str          # "anon", "anon_thp" or "non_anon"


@dataclass(frozen=True)
class Memory:
    """A kind of memory cow.c runs a test on, and the variant that models it (``""``:
    none, for ``why``; a test without variants runs on one kind of memory only)."""

    name: str
    variant: str
    why: str = ""


TESTS = (
    Test(1, "Basic COW after fork()", "test_cow_in_parent", "anon"),
    Test(2, "Basic COW after fork() with mprotect() optimization", "test_cow_in_parent_mprotect", "anon"),
    Test(3, "vmsplice() + unmap in child", "test_vmsplice_in_child", "anon"),
    Test(4, "vmsplice() + unmap in child with mprotect() optimization", "test_vmsplice_in_child_mprotect",
         "anon"),
    Test(5, "vmsplice() before fork(), unmap in parent after fork()", "test_vmsplice_before_fork", "anon"),
    Test(6, "vmsplice() + unmap in parent after fork()", "test_vmsplice_in_parent", "anon"),
    Test(7, "R/O-mapping a page registered as iouring fixed buffer", "test_iouring_ro", "anon"),
    Test(8, "fork() with an iouring fixed buffer", "test_iouring_fork", "anon"),
    Test(9, "R/O GUP pin on R/O-mapped shared page", "test_ro_pin_on_shared", "anon"),
    Test(10, "R/O GUP-fast pin on R/O-mapped shared page", "test_ro_fast_pin_on_shared", "anon"),
    Test(11, "R/O GUP pin on R/O-mapped previously-shared page", "test_ro_pin_on_ro_previously_shared", "anon"),
    Test(12, "R/O GUP-fast pin on R/O-mapped previously-shared page", "test_ro_fast_pin_on_ro_previously_shared",
         "anon"),
    Test(13, "R/O GUP pin on R/O-mapped exclusive page", "test_ro_pin_on_ro_exclusive", "anon"),
    Test(14, "R/O GUP-fast pin on R/O-mapped exclusive page", "test_ro_fast_pin_on_ro_exclusive", "anon"),
    Test(15, "Basic COW after fork() when collapsing before fork()", "test_anon_thp_collapse_unshared", "anon_thp"),
    Test(16, "Basic COW after fork() when collapsing after fork() (fully shared)",
         "test_anon_thp_collapse_fully_shared", "anon_thp"),
    Test(17, "Basic COW after fork() when collapsing after fork() (lower shared)",
         "test_anon_thp_collapse_lower_shared", "anon_thp"),
    Test(18, "Basic COW after fork() when collapsing after fork() (upper shared)",
         "test_anon_thp_collapse_upper_shared", "anon_thp"),
    Test(19, "Basic COW", "test_cow", "non_anon"),
    Test(20, "R/O longterm GUP pin", "test_ro_pin", "non_anon"),
    Test(21, "R/O longterm GUP-fast pin", "test_ro_fast_pin", "non_anon"),
)


def _size(kb: int) -> str:
    return f"{kb // 1048576} GiB" if kb >= 1048576 else f"{kb // 1024} MiB" if kb >= 1024 else f"{kb} KiB"


def _anon_memory() -> list[Memory]:
    out = [Memory("base page", "base"), Memory("swapped-out base page", "swapped")]
    for kb in THP_SIZES:
        pmd = kb == PMD_KB
        label = "" if pmd else (f"{kb}k" if kb < 1024 else f"{kb // 1024}m")

        def kind(name: str, variant: str) -> Memory:
            return Memory(f"{name} ({_size(kb)})", f"{variant}:{label}" if label else variant)

        if pmd:
            out.append(kind("THP", "thp"))
            out.append(kind("swapped-out THP", "swapped-thp"))
        out.append(kind("PTE-mapped THP", "pte-mapped-thp"))
        out.append(kind("swapped-out, PTE-mapped THP", "swapped-pte-mapped-thp"))
        out.append(kind("single PTE of THP", "single-pte-thp"))
        out.append(kind("single PTE of swapped-out THP", "single-pte-swapped-thp"))
        out.append(kind("partially mremap()'ed THP", "partially-mremapped-thp"))
        out.append(kind("partially shared THP", "partially-shared-thp"))
    out.append(Memory("hugetlb (2 MiB)", "hugetlb"))
    out.append(Memory("hugetlb (1 GiB)", "hugetlb-1g"))
    return out


MEMORY: dict[str, tuple[Memory, ...]] = {
    "anon": tuple(_anon_memory()),
    "anon_thp": (Memory("PTE-mapped THP (2 MiB), collapsed by MADV_COLLAPSE", ""),),
    "non_anon": (
        Memory("shared zero page", "zeropage"),
        Memory("memfd", "file"),
        Memory("tmpfile", "file"),
        Memory("huge zero page", "huge-zeropage"),
        Memory("memfd hugetlb (2 MiB)", "hugetlb-file"),
        Memory("memfd hugetlb (1 GiB)", "hugetlb-file-1g"),
    ),
}

_FUNCTION = re.compile(r"\bcow\.c:\s*(test_\w+)")


@dataclass(frozen=True)
class Cell:
    """One test on one kind of memory: the scenario that stands for it, or why none."""

    test: Test
    memory: Memory
    scenario: str = ""
    why: str = ""


def coverage(scenarios: Iterable[Any], variants: Iterable[str]) -> list[Cell]:
    """Every cow.c test on every kind of memory it runs on, with its scenario.
    ``scenarios``: the corpus with variants expanded; ``variants``: the known ones."""
    known = set(variants)
    by_test: dict[str, dict[str, str]] = {}      # function -> variant ("" none) -> scenario
    for scn in scenarios:
        for function in _FUNCTION.findall(scn.source or ""):
            by_test.setdefault(function, {}).setdefault(scn.variant or "", scn.name)
    cells = []
    for test in TESTS:
        runs = by_test.get(test.function, {})
        for mem in MEMORY[test.harness]:
            if mem.why:
                cells.append(Cell(test, mem, why=mem.why))
            elif mem.variant and mem.variant.partition(":")[0] not in known:
                cells.append(Cell(test, mem, why=f"variant {mem.variant!r} is not installed (a plugin's)"))
            elif mem.variant in runs:
                cells.append(Cell(test, mem, runs[mem.variant]))
            elif not runs:
                cells.append(Cell(test, mem, why="no scenario names this test in its source"))
            else:
                base, _, size = mem.variant.partition(":")
                cells.append(Cell(test, mem, why=f"the scenario does not run on variant {base!r}"
                                                 + (" at this size" if size else "")))
    return cells


def render(cells: Sequence[Cell], fmt: str = "table") -> str:
    """The coverage as a table per harness (kinds of memory down, tests across), the
    tests' scenarios, and what is missing and why; or all of it as JSON."""
    if fmt == "json":
        return json.dumps({"schema": "policykit.cow-c/1", "cells": [
            {"test": c.test.number, "title": c.test.title, "function": c.test.function,
             "memory": c.memory.name, "variant": c.memory.variant or None,
             "scenario": c.scenario or None, "missing": c.why or None} for c in cells],
            "covered": sum(bool(c.scenario) for c in cells), "total": len(cells)}, indent=2)
    from .report import TABLEFMT, table
    tablefmt = TABLEFMT[fmt]
    out = []
    head = "## " if fmt == "markdown" else ""
    covered = sum(bool(c.scenario) for c in cells)
    out.append(f"cow.c: {covered} of {len(cells)} test runs have a scenario")
    names = {"anon": "Anonymous memory", "anon_thp": "Anonymous THP (collapse)",
             "non_anon": "Non-anonymous memory"}
    for harness, title in names.items():
        tests = [t for t in TESTS if t.harness == harness]
        grid = {(c.test.number, c.memory.name): c for c in cells if c.test.harness == harness}
        rows = []
        for mem in MEMORY[harness]:
            rows.append([mem.name, mem.variant or "-"]
                        + ["yes" if grid[(t.number, mem.name)].scenario else "no" for t in tests])
        out += ["", f"{head}{title}: tests {tests[0].number}..{tests[-1].number}", "",
                table(rows, ["memory", "variant", *[str(t.number) for t in tests]], tablefmt=tablefmt)]
    scenario_of = {}
    for c in cells:
        if c.scenario:
            scenario_of.setdefault(c.test.number, c.scenario.split("/")[0])
    out += ["", f"{head}Tests and their scenarios", "",
            table([[t.number, t.title, t.function, scenario_of.get(t.number, "-")] for t in TESTS],
                  ["#", "cow.c test", "function", "scenario"], tablefmt=tablefmt)]
    missing: dict[str, list[str]] = {}
    for c in cells:
        if c.why:
            missing.setdefault(c.why, []).append(f"{c.test.number}/{c.memory.name}")
    if missing:
        out += ["", f"{head}Missing, and why", ""]
        out += [f"- {why}: {len(which)} ({_span(which)})" for why, which in missing.items()]
    return "\n".join(out)


def _span(which: list[str]) -> str:
    """A short list: the first few, then how many more."""
    return ", ".join(which[:3]) + (f", and {len(which) - 3} more" if len(which) > 3 else "")
