"""policykit-swap: anonymous pages go to swap and come back.

Mechanism (mm/vmscan.c, mm/swapfile.c, do_swap_page() in mm/memory.c):

* ``pageout P REGION`` (MADV_PAGEOUT) puts each private anonymous page in the swapcache
  (one reference), replaces every PTE mapping it with a swap entry, and frees the page
  when nothing else holds it; otherwise it stays in the swapcache.  Decision point
  ``reclaim_page``: ``swap_out`` or ``keep`` (5.11 keeps maybe-pinned pages).  A THP is
  split into small pages first and those are swapped out one by one, as on a swap
  device that cannot take a THP whole (``thp_swpout_fallback``: a swapfile; THP swap-out
  to an SSD or zram keeping the folio is not modelled); a THP with references beyond its
  mappings cannot be split and stays, and as MADV_PAGEOUT leaves a THP mapped elsewhere
  too (mapped whole: its mapcount above its pages; in part: the folio's "maybe mapped
  shared" bit, ``folio_mapped_shared``), so does pageout.  The 6.12+ mapping of
  zero-filled subpages to the shared zero page on that split is not modelled either
  (the variants fill the THP).
* A fault on a swap entry finds the page in the swapcache or reads it back into a new one
  (which enters the swapcache), and maps it.  On a write fault the decision point
  ``swapin`` says ``map_writable`` (reuse: the swapcache is freed when no other swap
  entry needs it) or ``map_readonly`` (the write then takes a write fault); on a read
  fault in a VMA with VM_WRITE, ``swapin_read`` says the same (6.11+ maps an exclusive
  page writable at once; before, the default ``map_readonly``).
* fork asks ``fork_swap_entry``: share the swap entry (``swap_duplicate``), or read the
  page in for the child.
* Before a write fault decides, ``free_swap`` says whether to try to free the swapcache
  first (``try_to_free_swap``: only when no swap entry is left).
* A swap entry remembers whether the page was exclusive (``swp_exclusive``, 5.19's "COW
  fixes part 3"): the policy flag ``anon_exclusive``, when the policy has one, goes into
  the entry and comes back with a page read in from swap; fork clears it in both.

Page attributes: ``swapcache``, ``swapcount`` (swap entries of the page's slot).  PTE
attribute: ``swp_exclusive``.  Metrics: ``swapouts``, ``swapins``, ``thp_swpout_fallback``.
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

EXCLUSIVE_FLAG = "anon_exclusive"       # PG_anon_exclusive, when the policy declares it
#: the THP sizes cow.c runs its swapped-out THP shapes at (x86-64: 16 KiB .. 2 MiB)
THP_SIZES = ("16k", "32k", "64k", "128k", "256k", "512k", "1m", "2m")
_CTX = ("page", "pte", "vma", "mm")


class Hooks:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_reclaim_page(ctx):
        """Decide whether reclaim may move a page to swap.

        :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm`` (one mapping).
        :returns: ``swap_out`` or ``keep``.

        Called by ``pageout`` for each private anonymous page.  Stops at first non-None
        result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_swapin(ctx):
        """Decide how a write fault maps a page it brought back from swap.

        :param ctx: read-only context: ``page`` (counts not yet including this mapping;
            ``swapcount`` including this entry), ``pte`` (the swap entry), ``vma``, ``mm``.
        :returns: ``map_writable`` or ``map_readonly``.

        Called on write faults on swap entries.  Stops at first non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_swapin_read(ctx):
        """Decide how a read fault maps a page it brought back from swap.

        :param ctx: read-only context, as for :func:`policykit_swapin`.
        :returns: ``map_writable`` (6.11+, c18160dba5ff: an exclusive page needs no write
            fault later) or ``map_readonly`` (the default).

        Called on read faults on swap entries in a VMA with VM_WRITE.  Stops at first
        non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_fork_swap_entry(ctx):
        """Decide what fork does with a swap entry of a private mapping.

        :param ctx: read-only context: ``pte`` (the swap entry), ``vma``, ``mm`` of the
            parent; ``page`` is the page if it is still in the swapcache, else None.
        :returns: ``share`` (``swap_duplicate``: both point at the slot) or ``copy`` (read
            it into a new page for the child).

        Called for every swap entry at fork.  Stops at first non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_free_swap(ctx):
        """Decide whether a write fault first tries to free the page's swapcache.

        :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
        :returns: ``free`` or ``keep``.

        Called before ``wp_fault`` / ``unshare_fault`` for pages in the swapcache.  Stops
        at first non-None result.
        """


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(Hooks)


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    return [
        DecisionPointSpec("reclaim_page", ("swap_out", "keep"), _CTX,
                          "reclaim meets a private anonymous page (shrink_page_list)", default="swap_out"),
        DecisionPointSpec("swapin", ("map_writable", "map_readonly"), _CTX,
                          "a write fault brings a page back from swap (do_swap_page)", default="map_readonly"),
        DecisionPointSpec("swapin_read", ("map_writable", "map_readonly"), _CTX,
                          "a read fault brings a page back from swap into a VMA with VM_WRITE "
                          "(do_swap_page; 6.11+ maps an exclusive one writable)", default="map_readonly"),
        DecisionPointSpec("free_swap", ("free", "keep"), _CTX,
                          "a write fault meets a page in the swapcache (try_to_free_swap)", default="keep"),
        DecisionPointSpec("fork_swap_entry", ("share", "copy"), _CTX,
                          "fork meets a swap entry (copy_nonpresent_pte)", default="share"),
    ]


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [
        AttributeSpec("page", "swapcache", bool, False, "PageSwapCache(): the swapcache holds a reference"),
        AttributeSpec("page", "swapcount", int, 0, "swap entries pointing at the page's swap slot"),
        AttributeSpec("pte", "swp_exclusive", bool, False, "the swap entry remembers an exclusive page (5.19)"),
    ]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("swapouts", "pages written to swap", "pages"),
            MetricSpec("swapins", "pages read back from swap", "pages"),
            MetricSpec("thp_swpout_fallback", "THPs split to be swapped out page by page", "count")]


# -- state -----------------------------------------------------------------------------------
# machine.attrs["swap"]: slot -> {"content": token, "count": swap entries, "pfn": page in
# the swapcache or None}.  A page in the swapcache has attrs swapcache=True, swap_slot=slot
# and swapcount mirrored from its slot.

def _slots(engine: Any) -> dict[int, dict[str, Any]]:
    return engine.machine.attrs.setdefault("swap", {})


def _sync(engine: Any, slot: int, info: dict[str, Any] | None = None) -> None:
    """Mirror the slot's swap count on its page in the swapcache, if any."""
    if info is None:
        info = _slots(engine)[slot]
    if info["pfn"] is not None:
        _mirror(engine.machine.pages[info["pfn"]].attrs, info["count"])


def _mirror(attrs: dict[str, Any], count: int) -> None:
    """A swapcache page's attributes take its slot's swap count (none when 0)."""
    if count:
        attrs["swapcount"] = count
    else:
        attrs.pop("swapcount", None)


def _has_exclusive_flag(engine: Any) -> bool:
    """Whether the policy declares the page flag ``anon_exclusive``."""
    return engine.declares_flag("page", EXCLUSIVE_FLAG)


def delete_from_swap_cache(engine: Any, page: Any) -> None:
    """The page leaves the swapcache (its reference dropped); the slot goes when unused."""
    attrs = page.attrs
    slot = attrs.pop("swap_slot")
    attrs.pop("swapcache", None)
    attrs.pop("swapcount", None)
    slots = engine.machine.attrs["swap"]
    info = slots[slot]
    info["pfn"] = None
    if info["count"] == 0:
        del slots[slot]
    engine.put_page(page)


def try_to_free_swap(engine: Any, page: Any) -> bool:
    """Free the swapcache of a page no swap entry needs any more."""
    attrs = page.attrs
    if not attrs.get("swapcache") or engine.machine.attrs["swap"][attrs["swap_slot"]]["count"]:
        return False
    delete_from_swap_cache(engine, page)
    return True


def _mappers(engine: Any, pfn: int) -> list[tuple[Any, int, Pte]]:
    return [(p, vpn, pte) for p in engine.machine.processes.values()
            for vpn, pte in p.mm.ptes.items() if pte.present and pte.pfn == pfn]


def pageout(engine: Any, args: dict[str, Any]) -> Outcome:
    """MADV_PAGEOUT: reclaim each private anonymous page of the region."""
    proc = engine.process(args["process"])
    mm = proc.mm
    ptes = mm.ptes
    m = engine.machine
    pages = m.pages
    slots = _slots(engine)
    vpns = args["region"]
    region = None
    vma = None
    metrics = engine.metrics
    has_flag = _has_exclusive_flag(engine)
    for vpn in vpns:
        pte = ptes.get(vpn)
        if pte is None or not pte.present:
            continue
        if vma is None or not vma.start <= vpn < vma.end:
            vma = mm.find_vma(vpn)
        if vma is None or vma.shared:
            continue
        page = pages[pte.pfn]
        if page.zero or not page.anon or "owner" in page.attrs:
            continue
        if page.folio is not None:           # a THP: split first (thp_swpout_fallback)
            if region is None:
                region = set(vpns)
            if not _pageout_folio(mm, page, vpn, region) or not engine.split_folio(page):
                continue                      # mapped elsewhere, or extra references: kept
            engine.count("thp_swpout_fallback")
            pte = ptes[vpn]                                    # a PMD's PTE is now its own
        if engine.decide("reclaim_page", page, pte, vma, mm, pid=proc.pid, vpn=vpn).action != "swap_out":
            continue
        # (a THP was split above: the page is small, its counts its own)
        attrs = page.attrs
        if "swapcache" not in attrs:                         # add_to_swap()
            slot = m.attrs.get("swap_next", 1)
            m.attrs["swap_next"] = slot + 1
            info = slots[slot] = {"content": page.content, "count": 0, "pfn": page.pfn}
            attrs["swapcache"] = True
            attrs["swap_slot"] = slot
            page._refcount += 1
        else:
            slot = attrs["swap_slot"]
            info = slots[slot]
            info["content"] = page.content                   # written back
        exclusive = page._mapcount == 1 and has_flag and bool(engine.flag(page, EXCLUSIVE_FLAG))
        if exclusive:                     # the exclusivity moves to the swap entry
            engine.set_flag(page, EXCLUSIVE_FLAG, False)
        mappers = [(proc, vpn, pte)] if page._mapcount == 1 else _mappers(engine, page.pfn)
        for other, ovpn, opte in mappers:                    # try_to_unmap()
            other.mm.ptes[ovpn] = Pte(-1, False, False, False, {"swap": slot, "swp_exclusive": exclusive})
            info["count"] += 1
            page._mapcount -= 1
            page._refcount -= 1
        metrics["swapouts"] += 1
        if page._refcount == 1:                              # only the swapcache: freed
            delete_from_swap_cache(engine, page)
        else:
            _sync(engine, slot, info)
    return Outcome()


def _pageout_folio(mm: Any, page: Any, vpn: int, region: set[int]) -> bool:
    """madvise_cold_or_pageout_pte_range() on a page of a large folio: one this mm maps
    whole within the range goes to reclaim only if nothing else maps it (its mapcount is
    its number of pages); one it maps in part is split first, unless the folio may be
    mapped shared."""
    folio = page.folio
    first = vpn - (page.pfn - folio.head)
    ptes = mm.ptes
    whole = first in region and first + folio.nr - 1 in region and all(
        (e := ptes.get(first + i)) is not None and e.present and e.pfn == folio.head + i for i in range(folio.nr))
    return folio.maps == folio.nr if whole else not folio.shared


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    return [OperationSpec("pageout", (Param("process", "process"), Param("region", "region")), pageout,
                          "MADV_PAGEOUT: reclaim the region's anonymous pages to swap")]


# -- mechanism hooks ---------------------------------------------------------------------------

@hookimpl
def policykit_handle_fault(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, write: bool,
                           unshare: bool) -> Any:
    if pte is None or pte.present:
        return None
    pattrs = pte.attrs
    if not pattrs or "swap" not in pattrs:
        return None
    m = engine.machine
    slots = m.attrs["swap"]
    slot = pattrs["swap"]
    info = slots[slot]
    engine.metrics["swapins"] += 1
    pfn = info["pfn"]
    if pfn is not None:                                       # still in the swapcache
        page = m.pages[pfn]
    else:                                                     # swapin_readahead()
        page = engine.alloc_page()
        if page is None:
            raise OperationFailed("ENOMEM", "no page to swap in")
        page.content = info["content"]
        page.attrs.update(swapcache=True, swap_slot=slot)
        info["pfn"] = page.pfn                                # alloc's reference is the swapcache's
    if _has_exclusive_flag(engine):       # the entry's exclusivity comes back with the page
        engine.set_flag(page, EXCLUSIVE_FLAG, bool(pattrs.get("swp_exclusive")))
    attrs = page.attrs
    _mirror(attrs, info["count"])
    writable = False
    mm = proc.mm
    if vma.write:
        point = "swapin" if write else "swapin_read"
        writable = engine.decide(point, page, pte, vma, mm, pid=proc.pid, vpn=vpn).action == "map_writable"
    count = info["count"] = info["count"] - 1                 # swap_free()
    page.mapcount += 1
    page.refcount += 1
    new = Pte(page.pfn, True, writable, writable)
    mm.ptes[vpn] = new
    if writable and write:            # should_try_to_free_swap(): a read fault keeps it
        try_to_free_swap(engine, page)
    elif "swapcache" in attrs:
        _mirror(attrs, count)
    if info["count"] == 0 and info["pfn"] is None:
        slots.pop(slot, None)
    if write and not writable:
        return engine.do_wp_page(proc, vma, vpn, new, unshare=False)
    if unshare:
        return engine.do_wp_page(proc, vma, vpn, new, unshare=True)
    return new


@hookimpl
def policykit_wp_prepare(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, page: Any, unshare: bool) -> None:
    if "swapcache" in page.attrs:
        if engine.decide("free_swap", page, pte, vma, proc.mm, pid=proc.pid, vpn=vpn).action == "free":
            try_to_free_swap(engine, page)


@hookimpl
def policykit_copy_pte(engine: Any, src_mm: Any, dst_mm: Any, src_vma: Any, dst_vma: Any, vpn: int,
                       pte: Any) -> Any:
    pattrs = pte.attrs
    if pte.present or not pattrs or "swap" not in pattrs:
        return None
    slot = pattrs["swap"]
    info = engine.machine.attrs["swap"][slot]
    pfn = info["pfn"]
    cached = engine.machine.pages[pfn] if pfn is not None else None
    if engine.decide("fork_swap_entry", cached, pte, src_vma, src_mm, vpn=vpn).action == "copy":
        new = engine.alloc_page()
        if new is None:
            raise OperationFailed("ENOMEM", "fork: no page to read the swap entry into")
        new.content = cached.content if cached is not None else info["content"]
        new.mapcount = 1
        engine.count("fork_copies")
        engine.count("bytes_copied", PAGE_SIZE)
        return Pte(new.pfn, writable=dst_vma.write, dirty=True)
    count = info["count"] = info["count"] + 1                 # swap_duplicate()
    pattrs["swp_exclusive"] = False                           # both entries are shared now
    if cached is not None:
        _mirror(cached.attrs, count)
    return Pte(-1, present=False, attrs={"swap": slot, "swp_exclusive": False})


@hookimpl
def policykit_zap_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    if pte.present or "swap" not in (pte.attrs or {}):
        return None
    slots = _slots(engine)
    slot = pte.attrs["swap"]
    info = slots[slot]
    info["count"] -= 1                                        # free_swap_and_cache()
    if info["pfn"] is None:
        if info["count"] == 0:
            del slots[slot]
        return True
    page = engine.machine.pages[info["pfn"]]
    _sync(engine, slot)
    if info["count"] == 0 and page.refcount == 1:
        delete_from_swap_cache(engine, page)
    return True


@hookimpl
def policykit_peek_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    if pte is None or pte.present or "swap" not in (pte.attrs or {}):
        return None
    info = _slots(engine)[pte.attrs["swap"]]
    return engine.machine.pages[info["pfn"]].content if info["pfn"] is not None else info["content"]


@hookimpl
def policykit_page_refs(machine: Any, page: Any) -> int:
    return 1 if page.attrs.get("swapcache") else 0


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]


@hookimpl
def policykit_add_variants() -> list[VariantSpec]:
    # cow.c's "swapped-out base page": filled, then MADV_PAGEOUT before the test.  Its
    # swapped-out THPs (with the THP plugin: mmap_thp): filled whole, as cow.c does, and
    # paged out, which splits them here; the tests work on all of it, as cow.c does (a
    # single PTE: on that page).
    swap, thp = frozenset({"swap"}), frozenset({"swap", "thp"})
    return [
        VariantSpec("swapped", "swapped-out base page", """
            mmap {process} 1 private -> {region}
            write {process} {region}
            pageout {process} {region}
        """, swap),
        VariantSpec("swapped-thp", "swapped-out THP", """
            mmap_thp {process} 512 -> {region}_thp
            write {process} {region}_thp
            pageout {process} {region}_thp
            alias {process} {region}_thp -> {region}
        """, thp),
        VariantSpec("swapped-pte-mapped-thp", "swapped-out, PTE-mapped THP", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp
            mprotect {process} {region}_thp[1] ro
            mprotect {process} {region}_thp[1] rw
            pageout {process} {region}_thp
            alias {process} {region}_thp -> {region}
        """, thp, sizes=THP_SIZES),
        VariantSpec("single-pte-swapped-thp", "single PTE of a swapped-out THP", """
            mmap_thp {process} {nr} {nr} -> {region}_thp
            write {process} {region}_thp
            munmap {process} {region}_thp[1:{nr}]
            pageout {process} {region}_thp[0]
            alias {process} {region}_thp[0] -> {region}
        """, thp, sizes=THP_SIZES),
    ]
