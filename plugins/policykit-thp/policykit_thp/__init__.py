"""policykit-thp: anonymous transparent huge pages (mm/huge_memory.c).

* ``mmap_thp P PAGES [FOLIO] -> R`` maps PAGES pages (whole THPs), PMD-aligned, where
  THPs of FOLIO pages (512, the default, or an mTHP size: 4 .. 256) are allowed.  A write
  fault on an empty 2 MiB range allocates a THP (a large folio of 512 pages) and maps it
  with a PMD; on an empty, aligned mTHP range it allocates a folio of FOLIO pages mapped
  by PTEs (``alloc_anon_folio()``, 6.8+).  A read fault on an empty 2 MiB range maps the
  huge zero page (a 512-page folio of zero pages, made once, never freed or counted per
  mapping) by a PMD, as ``do_huge_pmd_anonymous_page()`` does with ``use_zero_page``;
  fork shares it as it is.  Other read faults map the zero page per PTE, and a range
  partly populated gets small pages.
* A PMD mapping is 512 PTEs flagged ``pte.pmd``.  Anything that touches part of it --
  unmapping a page, a write or unshare fault on a PMD that was split elsewhere,
  mprotect of part of it -- splits it into PTE mappings (``split_huge_pmd``); the
  folio stays, mapped by PTEs (a "PTE-mapped THP").  While PMD-mapped, the pages
  mirror the head's policy flags (PageAnonExclusive lives on the head).
* A write or unshare fault on the huge zero page's PMD asks ``huge_zero_wp``: ``copy`` (a
  fresh THP, zero filled: before 5.8, and again from 6.13 or 6.14) or ``split`` (PTEs of the
  small zero page; the PTE fault then takes a page of its own: 5.8 .. 6.13).
* A write or unshare fault on a read-only PMD asks ``huge_pmd_wp``: ``reuse`` the THP,
  ``copy`` all 2 MiB into a new THP (<= 5.7), or ``split`` and let the PTE fault copy
  one 4 KiB page (5.8+, 3917c80280c9).
* fork asks ``fork_pmd``: ``share`` the PMD (write-protected), or ``split`` it and fall
  back to PTEs, where ``fork_pte`` decides per page (5.9+ for maybe-pinned folios,
  d042035eaf5f).
* ``collapse P R`` is MADV_COLLAPSE: each fully populated 2 MiB range of small or
  PTE-mapped pages is copied into a new THP mapped by a PMD, unless a page has
  references other than its mappings.

Policies see the folio through the core: ``page.refcount`` of any page of a THP is the
folio's, ``page.compound`` and ``page.pincount`` (exact pins) tell a large folio.
Metrics: ``thp_faults``, ``thp_splits``, ``thp_collapses``.  With the swap plugin, a THP
paged out is split into small pages first (``policykit_split_folio`` splits its PMDs).
Not modelled: THP swap-out keeping the folio whole, deferred splitting of the folio
itself, the huge zero page's shrinker.
"""

from __future__ import annotations

from typing import Any

from policykit import (
    PAGE_SIZE,
    AttributeSpec,
    DecisionPointSpec,
    MetricSpec,
    OperationFailed,
    OperationSpec,
    VariantSpec,
    Outcome,
    Param,
    Pte,
    hookimpl,
    hookspec,
)

HPAGE_PMD_NR = 512
_CTX = ("page", "pte", "vma", "mm")


class Hooks:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_huge_pmd_wp(ctx):
        """Decide a write or unshare fault on a read-only PMD-mapped THP
        (``do_huge_pmd_wp_page``).

        :param ctx: read-only context: ``page`` (the head: ``refcount`` is the folio's),
            ``pte`` (its PMD), ``vma``, ``mm``.
        :returns: ``reuse``, ``copy`` (a new THP, 2 MiB copied) or ``split`` (PTE-map it;
            the PTE fault then decides on the 4 KiB page).

        Called for private THP VMAs.  Stops at first non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_huge_zero_wp(ctx):
        """Decide a write or unshare fault on the huge zero page mapped by a PMD
        (``do_huge_pmd_wp_page()`` meeting ``is_huge_zero_pmd()``).

        :param ctx: read-only context: ``page`` (the huge zero page's head), ``pte`` (its
            PMD), ``vma``, ``mm``.
        :returns: ``copy`` (map a fresh, zero-filled THP by a PMD: nothing is copied) or
            ``split`` (map the small zero page by PTEs; the PTE fault then takes a page).

        Called for private THP VMAs.  Stops at first non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_fork_pmd(ctx):
        """Decide what fork does with a PMD-mapped THP (``copy_huge_pmd``).

        :param ctx: read-only context: ``page`` (the head), ``pte``, ``vma``, ``mm`` of
            the parent.
        :returns: ``share`` (write-protect the PMD in both) or ``split`` (split the
            parent's PMD; ``fork_pte`` then decides for each page).

        Called for each PMD of a private THP VMA at fork.  Stops at first non-None result.
        """


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(Hooks)


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    return [
        DecisionPointSpec("huge_pmd_wp", ("reuse", "copy", "split"), _CTX,
                          "a write or unshare fault on a read-only PMD-mapped THP", default="split"),
        DecisionPointSpec("fork_pmd", ("share", "split"), _CTX,
                          "fork meets a PMD-mapped THP", default="share"),
        DecisionPointSpec("huge_zero_wp", ("copy", "split"), _CTX,
                          "a write or unshare fault on the huge zero page mapped by a PMD", default="split"),
    ]


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("pte", "pmd", bool, False, "the PTE is part of a PMD mapping of a THP"),
            AttributeSpec("vma", "thp", bool, False, "THPs are allowed in the VMA"),
            AttributeSpec("vma", "thp_nr", int, HPAGE_PMD_NR,
                          "pages of the THPs a fault allocates in the VMA: 512 (PMD-mapped) or an mTHP size")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("thp_faults", "THPs allocated by faults", "count"),
            MetricSpec("thp_splits", "PMD mappings split into PTEs", "count"),
            MetricSpec("thp_collapses", "2 MiB ranges collapsed into a THP", "count")]


# -- the PMD --------------------------------------------------------------------------------

def _range(vma: Any, vpn: int) -> range:
    """The PMD-aligned 2 MiB range around ``vpn``."""
    start = vpn - vpn % HPAGE_PMD_NR
    return range(start, start + HPAGE_PMD_NR)


def _pmd_head(engine: Any, mm: Any, vma: Any, vpn: int) -> Any:
    """The head page if ``vpn`` lies in an intact PMD mapping in ``mm``, else None."""
    span = _range(vma, vpn)
    if span[0] < vma.start or span[-1] >= vma.end:            # a VMA split cut through it
        return None
    first = mm.ptes.get(span[0])
    if first is None or not first.present or not (first.attrs or {}).get("pmd"):
        return None
    head = engine.machine.pages[first.pfn]
    if head.attrs.get("folio") != head.pfn or head.attrs.get("folio_nr") != HPAGE_PMD_NR:
        return None
    for i, v in enumerate(span):
        e = mm.ptes.get(v)
        if e is None or not e.present or not (e.attrs or {}).get("pmd") or e.pfn != head.pfn + i \
                or e.writable != first.writable:
            return None
    return head


def _flags(engine: Any) -> list[str]:
    return [a.name for a in engine.registry.attributes.values() if a.owner == "page" and a.flag]


def _mirror_head(engine: Any, head: Any) -> None:
    """PMD-mapped: the head's policy flags (PageAnonExclusive) stand for every page."""
    for name in _flags(engine):
        for pfn in range(head.pfn + 1, head.pfn + HPAGE_PMD_NR):
            page = engine.machine.pages.get(pfn)
            if page is None:
                continue
            if name in head.flags:
                page.flags[name] = head.flags[name]
            else:
                page.flags.pop(name, None)


def _huge_zero(engine: Any) -> Any:
    """The huge zero page's head (``mm_get_huge_zero_folio()``): made on first use, a
    512-page folio of zero pages that no mapping counts; None if it cannot be made."""
    m = engine.machine
    head = m.attrs.get("huge_zero")
    if head is not None:
        return m.pages[head]
    pages = engine.alloc_folio(HPAGE_PMD_NR, anon=False)
    if pages is None:
        return None
    for page in pages:
        page.zero = True
    m.attrs["huge_zero"] = pages[0].pfn
    return pages[0]


def _map_huge_zero(mm: Any, span: range, head: Any) -> None:
    """``set_huge_zero_folio()``: a read-only PMD of the huge zero page (no references)."""
    for i, v in enumerate(span):
        mm.ptes[v] = Pte(head.pfn + i, attrs={"pmd": True})


def split_huge_pmd(engine: Any, mm: Any, vma: Any, vpn: int) -> None:
    """Turn the PMD mapping around ``vpn`` into PTE mappings (only in ``mm``); the huge
    zero page's PMD becomes PTEs of the small zero page (``__split_huge_zero_page_pmd()``)."""
    span = _range(vma, vpn)
    flagged = [v for v in span if v in mm.ptes and (mm.ptes[v].attrs or {}).get("pmd")]
    if not flagged:
        return
    head = engine.machine.pages.get(mm.ptes[flagged[0]].pfn)
    if head is not None and head.zero:
        for v in flagged:
            mm.ptes[v] = Pte(engine.machine.zero_pfn)
        engine.count("thp_splits")
        return
    if head is not None:
        head = engine.machine.pages.get(head.attrs.get("folio", head.pfn))
    for v in flagged:
        mm.ptes[v].attrs.pop("pmd", None)
    if head is not None:
        _mirror_head(engine, head)
        head.attrs["entire_mapcount"] = head.attrs.get("entire_mapcount", 1) - 1
        if head.attrs["entire_mapcount"] <= 0:
            head.attrs.pop("entire_mapcount")
    engine.count("thp_splits")


def _alloc_thp(engine: Any) -> list[Any] | None:
    """512 pages with consecutive pfns, as one large folio; None on failure."""
    return engine.alloc_folio(HPAGE_PMD_NR)


def _map_pmd(engine: Any, mm: Any, span: range, pages: list[Any], writable: bool) -> None:
    """Map a fresh THP by a PMD; the pages' allocation references become the mapping's."""
    ptes = mm.ptes
    for v, page in zip(span, pages):
        ptes[v] = Pte(page.pfn, True, writable, writable, {"pmd": True})
    engine.map_pages(pages, mm)
    pages[0].attrs["entire_mapcount"] = pages[0].attrs.get("entire_mapcount", 0) + 1


def _fault_mthp(engine: Any, mm: Any, vma: Any, span: range, vpn: int) -> Any:
    """A write fault on an empty, aligned mTHP range: one folio of ``len(span)`` pages,
    every page mapped by its own PTE (writable, dirty); small pages if none is free."""
    pages = engine.alloc_folio(len(span))
    if pages is None:
        return None
    ptes = mm.ptes
    writable = vma.write
    for v, page in zip(span, pages):
        ptes[v] = Pte(page.pfn, True, writable, True)
    engine.map_pages(pages, mm)
    engine.count("thp_faults")
    return mm.ptes[vpn]


def _unmap_pages(engine: Any, mm: Any, span: range) -> None:
    for v in span:
        e = mm.ptes.pop(v)
        page = engine.machine.pages[e.pfn]
        if page.zero:
            continue
        engine.unmap_page(page, mm)
        engine.put_page(page)


@hookimpl
def policykit_handle_fault(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, write: bool,
                           unshare: bool) -> Any:
    if not vma.attrs.get("thp") or vma.shared:
        return None
    mm = proc.mm
    if pte is None:
        nr = vma.attrs.get("thp_nr", HPAGE_PMD_NR)
        start = vpn - vpn % nr
        span = range(start, start + nr)
        if any(v in mm.ptes for v in span) or span[0] < vma.start or span[-1] >= vma.end:
            return None                                       # small pages, from the core
        if not write:
            if nr != HPAGE_PMD_NR or unshare:
                return None                                   # the small zero page, from the core
            zero = _huge_zero(engine)
            if zero is None:
                return None
            _map_huge_zero(mm, span, zero)
            engine.count("faults_read")
            return mm.ptes[vpn]
        if nr != HPAGE_PMD_NR:                                # alloc_anon_folio(): an mTHP,
            return _fault_mthp(engine, mm, vma, span, vpn)     # mapped by PTEs
        pages = _alloc_thp(engine)                            # do_huge_pmd_anonymous_page()
        if pages is None:
            return None
        _map_pmd(engine, mm, span, pages, vma.write)
        engine.count("thp_faults")
        return mm.ptes[vpn]
    if not pte.present or not (pte.attrs or {}).get("pmd"):
        return None
    head = _pmd_head(engine, mm, vma, vpn)
    if head is None:                                          # a PMD broken elsewhere
        split_huge_pmd(engine, mm, vma, vpn)
        return None
    if (pte.writable or not write) and not unshare:
        return pte
    if unshare and pte.writable:
        return pte
    span = _range(vma, vpn)
    if head.zero:
        return _huge_zero_wp(engine, proc, vma, span, vpn, head, unshare)
    action = engine.decide("huge_pmd_wp", head, mm.ptes[span[0]], vma, mm, pid=proc.pid, vpn=span[0]).action
    _mirror_head(engine, head)
    if action == "reuse":
        if not unshare:
            for v in span:
                mm.ptes[v].writable = vma.write
                mm.ptes[v].dirty = True
        return mm.ptes[vpn]
    if action == "copy":                                      # a new THP, 2 MiB copied
        pages = _alloc_thp(engine)
        if pages is not None:
            old = [engine.machine.pages[mm.ptes[v].pfn] for v in span]
            for new, src in zip(pages, old):
                new.content = src.content
            engine.count("unshare_copies" if unshare else "wp_copies", HPAGE_PMD_NR)
            engine.count("bytes_copied", HPAGE_PMD_NR * PAGE_SIZE)
            head.attrs["entire_mapcount"] = head.attrs.get("entire_mapcount", 1) - 1
            if head.attrs["entire_mapcount"] <= 0:
                head.attrs.pop("entire_mapcount")
            _unmap_pages(engine, mm, span)
            _map_pmd(engine, mm, span, pages, vma.write and not unshare)
            return mm.ptes[vpn]
    split_huge_pmd(engine, mm, vma, vpn)                     # split, or no THP to copy into
    return engine.do_wp_page(proc, vma, vpn, mm.ptes[vpn], unshare)


def _huge_zero_wp(engine: Any, proc: Any, vma: Any, span: range, vpn: int, head: Any, unshare: bool) -> Any:
    """A write or unshare fault on the huge zero page's PMD."""
    mm = proc.mm
    engine.count("faults_unshare" if unshare else "faults_wp")
    action = engine.decide("huge_zero_wp", head, mm.ptes[span[0]], vma, mm, pid=proc.pid, vpn=span[0]).action
    if action == "copy":                                      # do_huge_zero_wp_pmd()
        pages = _alloc_thp(engine)
        if pages is not None:
            _map_pmd(engine, mm, span, pages, vma.write)
            engine.count("thp_faults")
            return mm.ptes[vpn]
    split_huge_pmd(engine, mm, vma, vpn)                     # split, or no THP to map
    return engine.do_wp_page(proc, vma, vpn, mm.ptes[vpn], unshare)


@hookimpl
def policykit_copy_pte(engine: Any, src_mm: Any, dst_mm: Any, src_vma: Any, dst_vma: Any, vpn: int,
                       pte: Any) -> Any:
    if not src_vma.attrs.get("thp") or not pte.present or not (pte.attrs or {}).get("pmd"):
        return None
    if vpn in dst_mm.ptes:                                    # a later PTE of a PMD shared already
        return dst_mm.ptes[vpn]
    head = _pmd_head(engine, src_mm, src_vma, vpn)
    if head is None or _range(src_vma, vpn)[0] != vpn:
        split_huge_pmd(engine, src_mm, src_vma, vpn)
        return None
    if head.zero:                                             # copy_huge_pmd(): as it is
        _map_huge_zero(dst_mm, _range(src_vma, vpn), head)
        return dst_mm.ptes[vpn]
    if engine.decide("fork_pmd", head, pte, src_vma, src_mm, vpn=vpn).action == "split":
        split_huge_pmd(engine, src_mm, src_vma, vpn)
        return None                                           # fork_pte decides per page
    _mirror_head(engine, head)
    span = _range(src_vma, vpn)
    src_ptes, dst_ptes, cow = src_mm.ptes, dst_mm.ptes, src_vma.is_cow_mapping
    for v in span:                                            # copy_huge_pmd(): share, R/O
        src = src_ptes[v]
        if cow:
            src.writable = False
        dst_ptes[v] = Pte(src.pfn, True, src.writable, src.dirty, {"pmd": True})
    pages = engine.machine.pages
    engine.map_pages([pages[head.pfn + i] for i in range(HPAGE_PMD_NR)], dst_mm, ref=True)
    head.attrs["entire_mapcount"] = head.attrs.get("entire_mapcount", 0) + 1
    return dst_mm.ptes[vpn]


@hookimpl
def policykit_zap_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    if not pte.present or not (pte.attrs or {}).get("pmd"):    # PTE-mapped: the core's
        return None
    page = engine.machine.pages[pte.pfn]
    if vma is not None:
        mm.ptes[vpn] = pte                                    # still mapped while we split
        split_huge_pmd(engine, mm, vma, vpn)
        del mm.ptes[vpn]
    if not page.zero:                                         # the huge zero page: no count
        engine.unmap_page(page, mm)
        engine.put_page(page)
    return True


@hookimpl
def policykit_split_folio(engine: Any, head: Any) -> None:
    """Before a THP is split into small pages: every PMD mapping it, in every mm, becomes
    PTEs (``split_huge_pmd``), its pages taking the head's flags."""
    first, last = head.folio.head, head.folio.head + head.folio.nr
    for proc in engine.machine.processes.values():
        mm = proc.mm
        for vpn in [v for v, e in mm.ptes.items()
                    if e.present and first <= e.pfn < last and (e.attrs or {}).get("pmd")]:
            if (mm.ptes[vpn].attrs or {}).get("pmd"):         # not split with a neighbour
                split_huge_pmd(engine, mm, mm.find_vma(vpn), vpn)


@hookimpl
def policykit_range_prepare(engine: Any, mm: Any, start: int, end: int) -> None:
    # vma_adjust_trans_huge(): a PMD that the range covers only in part is split
    for edge in (start, end):
        vma = mm.find_vma(edge if edge < end else edge - 1)
        if vma is None or not vma.attrs.get("thp") or edge % HPAGE_PMD_NR == 0:
            continue
        pte = mm.ptes.get(edge - edge % HPAGE_PMD_NR)
        if pte is not None and pte.present and (pte.attrs or {}).get("pmd"):
            split_huge_pmd(engine, mm, vma, edge)


# -- operations -------------------------------------------------------------------------------

#: the folio sizes (pages) a THP may have: the anonymous mTHP orders 2..9 of x86-64
FOLIO_PAGES = tuple(1 << order for order in range(2, 10))


def mmap_thp(engine: Any, args: dict[str, Any]) -> Outcome:
    nr = args["folio"]
    if nr not in FOLIO_PAGES:
        raise OperationFailed("EINVAL", f"a THP has 4, 8, ... or {HPAGE_PMD_NR} pages (16 KiB .. 2 MiB), "
                                        f"not {nr}")
    if args["pages"] % nr:
        raise OperationFailed("EINVAL", f"mmap_thp maps whole THPs: a multiple of {nr} pages")
    m = engine.machine
    m.next_vpn += (-m.next_vpn) % HPAGE_PMD_NR                # PMD-aligned
    attrs: dict[str, Any] = {"thp": True}
    if nr != HPAGE_PMD_NR:
        attrs["thp_nr"] = nr
    base = engine.mmap(args["process"], args["pages"], attrs=attrs)
    return Outcome(result=base)


def collapse(engine: Any, args: dict[str, Any]) -> Outcome:
    """MADV_COLLAPSE over the region's 2 MiB ranges."""
    proc = engine.process(args["process"])
    mm = proc.mm
    pages_of = engine.machine.pages
    vpns = args["region"]
    for start in range(vpns[0] - vpns[0] % HPAGE_PMD_NR, vpns[-1] + 1, HPAGE_PMD_NR):
        vma = mm.find_vma(start)
        if vma is None or not vma.attrs.get("thp") or vma.shared:
            continue
        span = _range(vma, start)
        if span[0] < vma.start or span[-1] >= vma.end or span[0] < vpns[0] or span[-1] > vpns[-1]:
            continue
        if _pmd_head(engine, mm, vma, span[0]) is not None:
            continue                                           # already a PMD
        ptes = [mm.ptes.get(v) for v in span]
        if any(e is None or not e.present or pages_of[e.pfn].zero for e in ptes):
            continue
        old = [pages_of[e.pfn] for e in ptes]
        if any(not p.anon for p in old):
            continue
        # is_refcount_suitable(): no references but the mappings (per folio for THP pages)
        if any(p.refcount != p.mapcount for p in old):
            continue
        new = _alloc_thp(engine)
        if new is None:
            raise OperationFailed("ENOMEM", "no THP to collapse into")
        for n, o in zip(new, old):
            n.content = o.content
        engine.count("bytes_copied", HPAGE_PMD_NR * PAGE_SIZE)
        for v in span:
            if (mm.ptes[v].attrs or {}).get("pmd"):
                split_huge_pmd(engine, mm, vma, v)
        _unmap_pages(engine, mm, span)
        _map_pmd(engine, mm, span, new, vma.write)
        engine.count("thp_collapses")
    return Outcome()


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    return [
        OperationSpec("mmap_thp", (Param("process", "process"), Param("pages", "int"),
                                   Param("folio", "int", default=HPAGE_PMD_NR,
                                         doc="pages of each THP: 512 (PMD-mapped, the default) or an "
                                             "mTHP size, 4 .. 256, mapped by PTEs")),
                      mmap_thp,
                      "map PAGES (whole THPs) of private anonymous memory where THPs of FOLIO pages "
                      "are allowed", result="region"),
        OperationSpec("collapse", (Param("process", "process"), Param("region", "region")), collapse,
                      "MADV_COLLAPSE: collapse fully populated 2 MiB ranges into THPs"),
    ]


@hookimpl
def policykit_oracle_step(oracle: Any, step: Any, outcome: Any, args: dict[str, Any]) -> None:
    if step.op == "mmap_thp" and outcome.ok:
        oracle.name_region(outcome.result, step.result)
        oracle.map_fresh(args["process"], range(outcome.result, outcome.result + args["pages"]))


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]


@hookimpl
def policykit_add_variants() -> list[VariantSpec]:
    # cow.c's THP variants.  Each is faulted in by a write to its first page (cow.c fills
    # all of it: the tests then write fresh data, so whatever the others held is seen
    # alike).  The tests work on all of the THP, as cow.c does (on the half cow.c keeps,
    # on the single PTE; a partially shared THP: below).  The PTE-mapped shapes come in every THP size cow.c runs
    # (``pte-mapped-thp:64k``); an mTHP is PTE-mapped from its first fault.
    thp = frozenset({"thp"})
    sizes = tuple(f"{nr * 4}k" if nr < 256 else f"{nr // 256}m" for nr in FOLIO_PAGES)
    return [
        # cow.c's non-anonymous tests on the huge zero page: two THP-enabled private
        # mappings, each read-faulted (cow.c's run_with_huge_zeropage()).
        VariantSpec("huge-zeropage", "huge zero page", """
            mmap_thp {process} 512 -> {region}
            read {process} {region}[0]
            mmap_thp {process} 512 -> {region}_smem
            read {process} {region}_smem[0]
        """, thp),
        VariantSpec("thp", "PMD-mapped THP", """
            mmap_thp {process} 512 -> {region}
            write {process} {region}[0]
        """, thp),
        VariantSpec("pte-mapped-thp", "PTE-mapped THP", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp[0]
            mprotect {process} {region}_thp[1] ro
            mprotect {process} {region}_thp[1] rw
            alias {process} {region}_thp -> {region}
        """, thp, sizes=sizes),
        # cow.c moves the second half elsewhere with mremap(): one folio, PTE-mapped at
        # two places; the tests work on the first half.
        VariantSpec("partially-mremapped-thp", "THP half moved by mremap()", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp[0]
            mremap {process} {region}_thp[{half}:{nr}] -> {region}_moved
            alias {process} {region}_thp[0:{half}] -> {region}
        """, thp, sizes=sizes),
        # cow.c zaps the other pages with MADV_DONTNEED; unmapping them leaves the same
        # state for the page under test (one PTE of a partly mapped folio), and nothing
        # else for a run to look at.
        VariantSpec("single-pte-thp", "single PTE of a THP", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp[0]
            munmap {process} {region}_thp[1:{nr}]
            alias {process} {region}_thp[0] -> {region}
        """, thp, sizes=sizes),
        # cow.c shares the first page only with a child that exits again (MADV_DONTFORK
        # on the rest splits the VMA, and so a PMD): page 0 was shared, the others never
        # were.  The tests work on page 0 and page 1, one of each kind (every other page
        # is as page 1 is; all of it would cost compare a sixth of its time).
        VariantSpec("partially-shared-thp", "THP with one page shared once", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp[0]
            madvise {process} {region}_thp[1:{nr}] dontfork
            fork {process} -> {region}_sharer
            exit {region}_sharer
            madvise {process} {region}_thp[1:{nr}] dofork
            alias {process} {region}_thp[0:2] -> {region}
        """, thp, sizes=sizes),
    ]
