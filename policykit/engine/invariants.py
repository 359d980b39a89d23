"""Engine invariants: reference and map counts balance, whatever the policy decided."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .model import GUP_PIN_COUNTING_BIAS, Machine, Page


def check_invariants(m: Machine, extra_refs: Callable[[Page], int] | None = None) -> list[str]:
    """Return a description of every broken invariant (empty when all hold).

    * every PTE maps an existing page, and a page's ``mapcount`` is the number of PTEs
      mapping it (the zero page is not counted);
    * ``refcount`` = mapcount + page-cache reference (shmem) + FOLL_GET refs
      + GUP_PIN_COUNTING_BIAS per FOLL_PIN + what ``extra_refs`` says plugins hold (the
      swapcache, an LRU batch...), and ``pins``/``gets`` match the live references;
    * no page with a zero refcount is kept, and no page is kept that nothing references;
    * a writable PTE lies in a VMA with VM_WRITE, and never maps the zero page;
    * only live processes have mappings or references.
    """
    problems: list[str] = []
    maps: Counter[int] = Counter()
    pins: Counter[int] = Counter()
    gets: Counter[int] = Counter()
    cached: Counter[int] = Counter()
    for p in m.processes.values():
        if not p.alive and (p.mm.ptes or p.mm.vmas):
            problems.append(f"pid {p.pid} exited but still has mappings")
        for vpn, pte in p.mm.ptes.items():
            if not pte.present:
                continue
            if pte.pfn not in m.pages:
                problems.append(f"pid {p.pid} page {vpn:#x} maps freed pfn {pte.pfn}")
                continue
            vma = p.mm.find_vma(vpn)
            if vma is None:
                problems.append(f"pid {p.pid} has a PTE at {vpn:#x} outside any VMA")
            elif pte.writable and not vma.write:
                problems.append(f"pid {p.pid} page {vpn:#x} is writable in a VMA without VM_WRITE")
            if m.pages[pte.pfn].zero:
                if pte.writable:
                    problems.append(f"pid {p.pid} maps the zero page writable at {vpn:#x}")
            elif pte.present:
                maps[pte.pfn] += 1
    for r in m.refs.values():
        if not m.processes[r.owner].alive:
            problems.append(f"reference {r.rid} outlives its owner pid {r.owner}")
        for pfn in r.pfns:
            (pins if r.pin else gets)[pfn] += r.count
    for obj in m.shmem.values():
        for pfn in obj.values():
            cached[pfn] += 1
    folios: dict[int, list] = {}       # head -> [Folio, sums of its pages' refcounts, pins, mapcounts]
    for page in m.pages.values():
        if page.folio is not None:
            kept = folios.setdefault(page.folio.head, [page.folio, 0, 0, 0])
            kept[1] += page.refcount
            kept[2] += page.pins
            kept[3] += page.mapcount
    for head, (folio, refs, pinned, mapped) in folios.items():
        if (folio.refs, folio.pins, folio.maps) != (refs, pinned, mapped):
            problems.append(f"folio {head}: kept refcount sum {folio.refs}, pins {folio.pins} and mapcount "
                            f"sum {folio.maps}, pages say {refs}, {pinned} and {mapped}")
    for pfn, page in m.pages.items():
        if page.zero:
            continue
        if page.mapcount != maps[pfn]:
            problems.append(f"pfn {pfn}: mapcount {page.mapcount}, but {maps[pfn]} PTEs map it")
        if page.pins != pins[pfn] or page.gets != gets[pfn]:
            problems.append(f"pfn {pfn}: pins/gets {page.pins}/{page.gets}, "
                            f"live references {pins[pfn]}/{gets[pfn]}")
        extra = extra_refs(page) if extra_refs is not None else 0
        want = maps[pfn] + cached[pfn] + gets[pfn] + GUP_PIN_COUNTING_BIAS * pins[pfn] + extra
        if page.refcount != want:
            problems.append(f"pfn {pfn}: refcount {page.refcount}, expected {want} "
                            f"(maps {maps[pfn]} + cache {cached[pfn]} + gets {gets[pfn]} + "
                            f"{GUP_PIN_COUNTING_BIAS}*pins {pins[pfn]} + plugins {extra})")
        if page.refcount <= 0:
            problems.append(f"pfn {pfn}: kept with refcount {page.refcount}")
    return problems
