"""Known ways a running kernel departs from the rules the simulator keeps.

Some disagreements are the kernel's: a bug seen on a released kernel, documented with
its evidence in docs/live.md, where the simulator keeps the documented rule.  validate
reports a scenario whose *first* disagreement matches one of these apart, as a known
kernel deviation (every later step follows from it), and does not fail for it unless
asked to (``--strict``); anything else stays a disagreement.  cow.c does the same with
XFAIL for kernel behaviour it knows is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario.model import Scenario
    from .validate import Disagreement


@dataclass(frozen=True)
class KnownDeviation:
    """One kernel deviation: its name, what it is, where it is documented, and whether
    the disagreements at a scenario's first disagreeing step are it."""

    name: str
    summary: str
    doc: str
    matches: Callable[[Scenario, Sequence[Disagreement]], bool]


def _regions_of_1g_hugetlb(scenario: Scenario) -> set[str]:
    return {st.result for st in scenario.steps
            if st.op in ("mmap_hugetlb", "mmap_hugetlb_file") and st.params.get("size") == "1G" and st.result}


def _hugetlb_1g_lost_at_fork(scenario: Scenario, first: Sequence[Disagreement]) -> bool:
    """At a fork, the child maps nothing where the simulator has it map the parent's
    1 GiB hugetlb page (shared, or a copy) -- every disagreement of that step is on
    pages of 1 GiB hugetlb regions, and one of them is a page the child lacks."""
    if not first or not first[0].text.startswith("fork "):
        return False
    regions = _regions_of_1g_hugetlb(scenario)
    if not regions:
        return False

    def region(where: str) -> str:
        return where.split(":", 1)[-1].split("[", 1)[0]
    return (all(region(d.where) in regions for d in first)
            and any(d.aspect == "page" and d.live == "-" and d.simulated != "-" for d in first))


KNOWN: tuple[KnownDeviation, ...] = (
    KnownDeviation(
        "hugetlb-1g-lost-at-fork",
        "the child of a fork lacks the parent's private 1 GiB hugetlb page (seen on 6.18, "
        "depending on what the page table's memory held before)",
        "docs/live.md#a-1-gib-hugetlb-page-lost-at-fork-left-to-the-kernel",
        _hugetlb_1g_lost_at_fork),
)


def known_deviation(scenario: Scenario, disagreements: Sequence[Disagreement],
                    known: Sequence[KnownDeviation] = KNOWN) -> KnownDeviation | None:
    """The known deviation the scenario's first disagreeing step shows, or None."""
    if not disagreements:
        return None
    step = disagreements[0].step
    first = [d for d in disagreements if d.step == step]
    return next((k for k in known if k.matches(scenario, first)), None)
