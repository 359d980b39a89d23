"""What the kernel says about a process's pages: /proc/PID/pagemap (PFN, present,
swapped), /proc/kpageflags (anon, THP, zero page, PageAnonExclusive) and
/proc/kpagecount (mapcount).  Root is needed for PFNs; without them only data and fault
outcomes can be compared.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

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


class Entry(NamedTuple):
    """One page of a process as the kernel shows it (a tuple: hundreds are made a step)."""

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
    return [Entry(True, bool(v & _SWAPPED), v & _PFN_MASK, bool(v & _SOFT_DIRTY)) if v & _PRESENT
            else Entry(False, bool(v & _SWAPPED), 0, bool(v & _SOFT_DIRTY))
            for (v,) in struct.iter_unpack("<Q", raw)]


_VMA_HEAD = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) ", re.M)
_ANON_HUGE = re.compile(rb"^AnonHugePages:\s+(\d+) kB", re.M)


class _ScanArg(ctypes.Structure):
    """struct pm_scan_arg (include/uapi/linux/fs.h)."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages", "category_inverted",
        "category_mask", "category_anyof_mask", "return_mask")]


class _Region(ctypes.Structure):
    """struct page_region: ``[start, end)`` of pages alike in the categories asked for."""

    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


#: _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = 3 << 30 | ctypes.sizeof(_ScanArg) << 16 | ord("f") << 8 | 16
PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_PFNZERO, PAGE_IS_HUGE = 1 << 2, 1 << 3, 1 << 5, 1 << 6
_SCAN_VEC = 64
#: whether this kernel has the PAGEMAP_SCAN ioctl (6.7+); None until first tried
_scan_works: bool | None = None


def anon_huge_kb(pid: int, ranges: list[tuple[int, int]]) -> list[int]:
    """For each ``[start, end)`` address range: the KiB of anonymous THPs PMD-mapped
    there (what ``AnonHugePages`` of /proc/PID/smaps sums over the VMAs inside it).
    Asked of the page tables of the ranges alone with the PAGEMAP_SCAN ioctl where the
    kernel has it; smaps, which walks every mapping of the agent, otherwise."""
    global _scan_works
    if _scan_works is not False:
        try:
            return _scan_huge_kb(pid, ranges)
        except _NoScan:
            _scan_works = False
    return _smaps_huge_kb(pid, ranges)


class _NoScan(Exception):
    """This kernel has no PAGEMAP_SCAN ioctl (before 6.7), or not this one."""


#: what the ioctl fails with where the kernel does not know it
_UNKNOWN_IOCTL = frozenset({errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP})


def _scan_huge_kb(pid: int, ranges: list[tuple[int, int]]) -> list[int]:
    """:func:`anon_huge_kb` by PAGEMAP_SCAN: PMD mappings are the regions it reports
    PAGE_IS_HUGE (at the PTE level it never does), less the huge zero page and shmem.
    Raises :class:`_NoScan` if the kernel does not have the ioctl."""
    global _scan_works
    vec = (_Region * _SCAN_VEC)()
    arg = _ScanArg(size=ctypes.sizeof(_ScanArg), vec=ctypes.addressof(vec), vec_len=_SCAN_VEC,
                   category_anyof_mask=PAGE_IS_HUGE,
                   return_mask=PAGE_IS_HUGE | PAGE_IS_PRESENT | PAGE_IS_PFNZERO | PAGE_IS_FILE)
    out = []
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for start, end in ranges:
            kb = 0
            while start < end:
                arg.start, arg.end = start, end
                try:
                    n = fcntl.ioctl(fd, PAGEMAP_SCAN, arg)
                except OSError as exc:
                    if not _scan_works and exc.errno in _UNKNOWN_IOCTL:
                        raise _NoScan(str(exc)) from None
                    raise
                for r in vec[:n]:
                    if r.categories & (PAGE_IS_PRESENT | PAGE_IS_PFNZERO | PAGE_IS_FILE) == PAGE_IS_PRESENT:
                        kb += (r.end - r.start) // 1024
                if arg.walk_end <= start:           # pragma: no cover - the kernel made no progress
                    raise OSError(0, "PAGEMAP_SCAN made no progress")
                start = arg.walk_end
            out.append(kb)
    finally:
        os.close(fd)
    _scan_works = True
    return out


def _smaps_huge_kb(pid: int, ranges: list[tuple[int, int]]) -> list[int]:
    """:func:`anon_huge_kb` from /proc/PID/smaps: the file lists every mapping of the
    agent (hundreds): only the VMAs in a range are read."""
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
        seen: dict[tuple[int, int], PageInfo] = {}     # pages alike share one PageInfo
        for lo, hi in _runs(sorted(pfns)):
            n = hi - lo
            flags = struct.unpack(f"<{n}Q", os.pread(self._flags, 8 * n, 8 * lo))
            counts = struct.unpack(f"<{n}Q", os.pread(self._count, 8 * n, 8 * lo))
            for pfn in range(lo, hi):
                if pfn not in pfns:                     # read through a gap
                    continue
                f, c = flags[pfn - lo], counts[pfn - lo]
                pi = seen.get((f, c))
                if pi is None:
                    pi = seen[f, c] = _page_info(f, c)
                out[pfn] = pi
        return out


def _page_info(f: int, count: int) -> PageInfo:
    """A page's /proc/kpageflags word and /proc/kpagecount, read."""
    anon = bool(f >> KPF_ANON & 1)
    tail = bool(f >> KPF_COMPOUND_TAIL & 1)
    return PageInfo(anon, bool(f >> KPF_ZERO_PAGE & 1), bool(f >> KPF_THP & 1),
                    bool(f >> KPF_HUGE & 1) and not f >> KPF_THP & 1, bool(f >> KPF_KSM & 1),
                    None if tail else anon and bool(f >> KPF_ANON_EXCLUSIVE & 1), count)


def _runs(pfns: list[int]) -> list[tuple[int, int]]:
    """Sorted PFNs as [lo, hi) runs (a gap of up to 64 pages is read through)."""
    out: list[tuple[int, int]] = []
    for p in pfns:
        if out and p - out[-1][1] <= 64:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out
