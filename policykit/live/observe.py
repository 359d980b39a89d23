"""What the kernel says about a process's pages: /proc/PID/pagemap (PFN, present,
swapped), /proc/kpageflags (anon, THP, zero page, PageAnonExclusive) and
/proc/kpagecount (mapcount).  Root is needed for PFNs; without them only data and fault
outcomes can be compared.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from .libc import PAGE_SIZE

_PFN_MASK = (1 << 55) - 1
_PRESENT, _SWAPPED, _SOFT_DIRTY = 1 << 63, 1 << 62, 1 << 55

KPF_ANON = 12
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17
KPF_KSM = 21
KPF_THP = 22
KPF_ZERO_PAGE = 24
#: PG_anon_exclusive shares its bit with PG_mappedtodisk (include/linux/page-flags.h),
#: which /proc/kpageflags shows as KPF_MAPPEDTODISK; an anonymous page never has the
#: latter, so for one it is PageAnonExclusive.  Checked on start-up (:func:`check_exclusive_bit`).
KPF_ANON_EXCLUSIVE = 34


@dataclass(frozen=True, slots=True)
class Entry:
    """One page of a process as the kernel shows it."""

    present: bool
    swapped: bool
    pfn: int                     # 0 when not present or hidden
    soft_dirty: bool = False


@dataclass(frozen=True, slots=True)
class PageInfo:
    anon: bool
    zero: bool
    thp: bool
    hugetlb: bool
    ksm: bool
    #: PageAnonExclusive; None for a tail page of a large folio, where /proc/kpageflags
    #: shows the folio's flags (its head page's), not the page's own
    exclusive: bool | None
    mapcount: int


def pagemap(pid: int, addr: int, npages: int, stride: int = 1) -> list[Entry]:
    """The pagemap entries of ``npages`` pages from ``addr`` in process ``pid``, one
    every ``stride`` base pages (the first of each huge page: a 1 GiB hugetlb page has
    262,144 entries, all alike)."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        first = addr // PAGE_SIZE * 8
        if stride == 1:
            raw = os.pread(fd, 8 * npages, first)
        else:
            raw = b"".join(os.pread(fd, 8, first + 8 * stride * i) for i in range(npages))
    finally:
        os.close(fd)
    out = []
    for (v,) in struct.iter_unpack("<Q", raw):
        present = bool(v & _PRESENT)
        out.append(Entry(present, bool(v & _SWAPPED), v & _PFN_MASK if present else 0, bool(v & _SOFT_DIRTY)))
    return out


_VMA_HEAD = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) ", re.M)
_ANON_HUGE = re.compile(rb"^AnonHugePages:\s+(\d+) kB", re.M)


def anon_huge_kb(pid: int, ranges: list[tuple[int, int]]) -> list[int]:
    """For each ``[start, end)`` address range: the KiB of THPs PMD-mapped there
    (``AnonHugePages`` of /proc/PID/smaps, summed over the VMAs inside the range).  The
    file lists every mapping of the agent (hundreds): only the VMAs in a range are read."""
    out = [0] * len(ranges)
    with open(f"/proc/{pid}/smaps", "rb") as f:
        text = f.read()
    heads = list(_VMA_HEAD.finditer(text))
    for n, head in enumerate(heads):
        lo, hi = int(head[1], 16), int(head[2], 16)
        inside = [i for i, (start, end) in enumerate(ranges) if start <= lo and hi <= end]
        if not inside:
            continue
        stop = heads[n + 1].start() if n + 1 < len(heads) else len(text)
        found = _ANON_HUGE.search(text, head.end(), stop)
        kb = int(found[1]) if found else 0
        for i in inside:
            out[i] += kb
    return out


class PageTable:
    """Reads /proc/kpageflags and /proc/kpagecount for many PFNs, in runs."""

    def __init__(self) -> None:
        self._flags = os.open("/proc/kpageflags", os.O_RDONLY)
        try:
            self._count = os.open("/proc/kpagecount", os.O_RDONLY)
        except OSError:
            os.close(self._flags)
            raise

    def close(self) -> None:
        os.close(self._flags)
        os.close(self._count)

    def info(self, pfns: set[int]) -> dict[int, PageInfo]:
        out: dict[int, PageInfo] = {}
        for lo, hi in _runs(sorted(pfns)):
            n = hi - lo
            flags = struct.unpack(f"<{n}Q", os.pread(self._flags, 8 * n, 8 * lo))
            counts = struct.unpack(f"<{n}Q", os.pread(self._count, 8 * n, 8 * lo))
            for i in range(n):
                f = flags[i]
                anon = bool(f >> KPF_ANON & 1)
                tail = bool(f >> KPF_COMPOUND_TAIL & 1)
                out[lo + i] = PageInfo(anon, bool(f >> KPF_ZERO_PAGE & 1), bool(f >> KPF_THP & 1),
                                       bool(f >> KPF_HUGE & 1) and not f >> KPF_THP & 1, bool(f >> KPF_KSM & 1),
                                       None if tail else anon and bool(f >> KPF_ANON_EXCLUSIVE & 1), counts[i])
        return out


def _runs(pfns: list[int]) -> list[tuple[int, int]]:
    """Sorted PFNs as [lo, hi) runs (a gap of up to 64 pages is read through)."""
    out: list[tuple[int, int]] = []
    for p in pfns:
        if out and p - out[-1][1] <= 64:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out
