"""What one step showed, on either side (the live kernel or the simulator), in one
vocabulary so the two line up.

Pages are named ``process:region[i]``; the page each maps is labelled canonically per
step (``p0`` the first page met, walking processes in the order they were made, their
regions in the order they were mapped, pages in order; ``zero`` the shared zero page,
``swap`` a swapped-out page, ``-`` nothing mapped), so equal labels mean the same
physical page on either side without comparing PFNs.  Written values are labelled by
who wrote them (``w4 parent:buf[0]``: step 4's write; ``d6 mr[0]``: a device write).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the aspects compared, in the order they are reported
ASPECTS = ("status", "fault", "data", "page", "kind", "pmd", "exclusive", "mapcount")

POPULATE, NO_FAULT, REUSE, COPY = "populate", "no fault", "reuse", "copy"


@dataclass(frozen=True, slots=True)
class PageView:
    """One page of one process after a step."""

    label: str                   # p0, p1..., zero, swap, -
    exclusive: bool | None       # PageAnonExclusive (None: not an anonymous page, or not modelled)
    mapcount: int | None
    kind: str | None = None      # anon, thp, hugetlb, ksm, shmem (None: nothing mapped)


@dataclass(slots=True)
class Observation:
    """One step as one side saw it."""

    index: int
    text: str
    status: str = "ok"                                        # ok | failed ERRNO
    faults: dict[str, str] = field(default_factory=dict)      # page -> populate/no fault/reuse/copy
    data: dict[str, str] = field(default_factory=dict)        # page or ref[i] -> who wrote what was seen
    pages: dict[str, PageView] = field(default_factory=dict)
    #: ``process:region`` of a THP region -> KiB of it mapped by PMDs (smaps' AnonHugePages)
    pmd: dict[str, int] = field(default_factory=dict)

    def aspect(self, name: str) -> dict[str, object]:
        """The values of one aspect, by page (``status``: one value under ``step``)."""
        if name == "status":
            return {"step": self.status}
        if name == "fault":
            return dict(self.faults)
        if name == "data":
            return dict(self.data)
        if name == "page":
            return {k: v.label for k, v in self.pages.items()}
        if name == "pmd":
            return dict(self.pmd)
        if name == "kind":
            return {k: v.kind for k, v in self.pages.items() if v.kind is not None}
        if name == "exclusive":
            return {k: v.exclusive for k, v in self.pages.items() if v.exclusive is not None}
        if name == "mapcount":
            return {k: v.mapcount for k, v in self.pages.items() if v.mapcount is not None}
        raise KeyError(name)


def classify_write(before_present: bool, before_pfn: int, after_pfn: int, faulted: bool) -> str:
    """A write's outcome from the page mapped before and after, and whether it faulted
    (a page a neighbour's fault mapped -- a THP -- took none)."""
    if not faulted:
        return NO_FAULT
    if not before_present:
        return POPULATE
    if after_pfn != before_pfn:
        return COPY
    return REUSE if faulted else NO_FAULT


class Labeller:
    """Canonical page labels for one step: first appearance, walking in a fixed order."""

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}

    def __call__(self, pfn: int) -> str:
        label = self._seen.get(pfn)
        if label is None:
            label = self._seen[pfn] = f"p{len(self._seen)}"
        return label


class PageNames:
    """The names of a region's pages in a process (``process:region[i]``), made once
    a run: both sides name every page after every step."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str, int], list[str]] = {}

    def __call__(self, process: str, region: str, n: int) -> list[str]:
        names = self._made.get((process, region, n))
        if names is None:
            names = self._made[process, region, n] = [f"{process}:{region}[{i}]" for i in range(n)]
        return names
