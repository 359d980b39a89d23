"""policykit-uffd: userfaultfd (fs/userfaultfd.c, mm/userfaultfd.c) on the memory it
changes COW for: minor faults answered by UFFDIO_CONTINUE, and write protection.

* ``uffd_register P R missing|minor|wp`` registers the VMAs of R (split at its ends) with
  a userfaultfd of P's mm (UFFDIO_REGISTER_MODE_MISSING / _MINOR / _WP; call it once per
  mode).  Missing mode and write protection are for anonymous private memory, minor mode
  for shared memory and files that stand for tmpfs (policykit-file's).  A child does not
  inherit the registration (no UFFD_FEATURE_EVENT_FORK): each VMA remembers the mm that
  registered it.
* Missing fault: a fault on a page never faulted in goes to the handler, which answers
  with UFFDIO_COPY of a page of zeros at once: a fresh anonymous page (which, like any
  fresh page, enters the LRU add batch), mapped writable -- or, where the range is also
  registered for write protection, read-only and write-protected (UFFDIO_COPY_MODE_WP,
  as a write tracker fills pages).
* Minor fault: a fault on a page the page cache (or the shmem object) holds but P does
  not map goes to P's fault handler, which answers with UFFDIO_CONTINUE at once: the
  page cache page is mapped read-only in a private mapping (and as the VMA allows in a
  shared one), **with the PTE dirty** (``mfill_atomic_install_pte()``, 5.13+); the access
  then retries: a CPU write COWs as usual, a GUP looks at the PTE first.  That dirty bit
  is what CVE-2022-2590 needed: a FOLL_FORCE GUP that broke COW once (FOLL_COW) took a
  dirty read-only PTE for its own COWed page (4.9 .. 5.19), and wrote into the page
  cache.  A page the cache does not hold is a missing fault: without missing mode,
  faulted in as without userfaultfd.
* ``uffd_writeprotect P R on|off`` (UFFDIO_WRITEPROTECT) write-protects the present PTEs
  of R (``pte.uffd_wp``) or lifts it.  A write fault on such a PTE goes to the handler,
  which does what write trackers (live snapshots, CRIU) do: it takes note
  (``uffd_wp_faults``), lifts the protection of that page, and the write goes on (reuse
  or COW, as the policy says).  A read-only GUP that 5.8 turned into a write fault
  ("GUP breaks COW") shows up as a write-protect fault that no write made.  An unshare
  fault passes (the copy keeps the bit).

Metrics: ``uffd_missing_faults``, ``uffd_minor_faults``, ``uffd_wp_faults``.  Not
modelled: data of the handler's own in UFFDIO_COPY, UFFDIO_ZEROPAGE, missing mode on shared
memory, UFFD_FEATURE_EVENT_FORK, PTE markers on empty PTEs, asynchronous write protection,
mprotect() keeping uffd-wp PTEs read-only (the policies decide mprotect_pte as before).
"""

from __future__ import annotations

from typing import Any

from policykit import AttributeSpec, MetricSpec, OperationFailed, OperationSpec, Outcome, Param, Pte, hookimpl
from policykit_file import cached_pfn


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("vma", "uffd_missing", int, 0,
                          "the mm (its id) whose userfaultfd registered the VMA for missing faults; 0: none"),
            AttributeSpec("vma", "uffd_minor", int, 0,
                          "the mm (its id) whose userfaultfd registered the VMA for minor faults; 0: none"),
            AttributeSpec("vma", "uffd_wp", int, 0,
                          "the mm (its id) whose userfaultfd registered the VMA for write protection; 0: none"),
            AttributeSpec("pte", "uffd_wp", bool, False, "the PTE is write-protected by userfaultfd")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("uffd_missing_faults", "missing faults answered by UFFDIO_COPY", "count"),
            MetricSpec("uffd_minor_faults", "minor faults answered by UFFDIO_CONTINUE", "count"),
            MetricSpec("uffd_wp_faults", "write faults on write-protected PTEs, told to the handler", "count")]


def uffd_register(engine: Any, args: dict[str, Any]) -> Outcome:
    pid, vpns, mode = args["process"], args["region"], args["mode"]
    mm = engine.process(pid).mm
    start, end = vpns[0], vpns[-1] + 1
    if any(mm.find_vma(v) is None for v in vpns):
        raise OperationFailed("ENOMEM", "uffd_register: part of the range is not mapped")
    for vma in [v for v in mm.vmas if v.start < end and v.end > start]:
        if mode == "minor" and not (vma.shared or vma.attrs.get("file")):
            raise OperationFailed("EINVAL", "minor mode is for shared memory and (tmpfs) files only")
        if mode != "minor" and (vma.shared or vma.attrs.get("file") or vma.attrs.get("hugetlb")):
            raise OperationFailed("EINVAL", f"{mode} mode here is for private anonymous memory only")
    engine.range_prepare(mm, start, end)
    for vma in engine.split_vmas(mm, start, end):
        vma.attrs[f"uffd_{mode}"] = mm.mm_id
    return Outcome()


def uffd_writeprotect(engine: Any, args: dict[str, Any]) -> Outcome:
    pid, vpns, on = args["process"], args["region"], args["state"] == "on"
    mm = engine.process(pid).mm
    for v in vpns:
        vma = mm.find_vma(v)
        if vma is None or vma.attrs.get("uffd_wp") != mm.mm_id:
            raise OperationFailed("ENOENT", f"uffd_writeprotect: page {v:#x} is not registered for write protection")
    for v in vpns:
        pte = mm.ptes.get(v)
        if pte is None or not pte.present:
            continue
        if on:
            pte.writable = False
            pte.attrs = {**(pte.attrs or {}), "uffd_wp": True}
        elif pte.attrs and pte.attrs.pop("uffd_wp", None) is not None and not pte.attrs:
            pte.attrs = None
    return Outcome()


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    p, r = Param("process", "process"), Param("region", "region")
    return [
        OperationSpec("uffd_register", (p, r, Param("mode", "word", ("missing", "minor", "wp"))), uffd_register,
                      "UFFDIO_REGISTER the region: missing faults (answered by UFFDIO_COPY), minor faults "
                      "(answered by UFFDIO_CONTINUE) or write protection"),
        OperationSpec("uffd_writeprotect", (p, r, Param("state", "word", ("on", "off"))), uffd_writeprotect,
                      "UFFDIO_WRITEPROTECT: write-protect the region's present PTEs, or lift it"),
    ]


def _cached(engine: Any, vma: Any, vpn: int) -> int | None:
    """The pfn the page cache (a file's, or a shmem object's) holds for ``vpn``, if any."""
    index = vpn - vma.start + vma.pgoff
    name = vma.attrs.get("file")
    if name is not None:
        return cached_pfn(engine, name, index)
    if vma.shmem is not None:
        return engine.machine.shmem[vma.shmem].get(index)
    return None


@hookimpl(tryfirst=True)
def policykit_handle_fault(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, write: bool,
                           unshare: bool) -> Any:
    mm = proc.mm
    if pte is None:
        if vma.attrs.get("uffd_missing") == mm.mm_id:
            return _copy(engine, mm, vma, vpn)
        if vma.attrs.get("uffd_minor") != mm.mm_id:
            return None
        pfn = _cached(engine, vma, vpn)
        if pfn is None:
            return None                                   # a missing fault: as without uffd
        page = engine.machine.pages[pfn]                  # UFFDIO_CONTINUE: R/O, dirty
        page.refcount += 1
        engine.map_page(page, mm)
        engine.count("uffd_minor_faults")
        # the fault returns for the access to retry (VM_FAULT_RETRY): a CPU write then
        # write-faults on the read-only PTE and COWs; GUP looks at the PTE first
        mm.ptes[vpn] = Pte(pfn, writable=vma.shared and vma.write, dirty=True)
        return mm.ptes[vpn]
    if write and not unshare and pte.present and pte.attrs and pte.attrs.get("uffd_wp") \
            and vma.attrs.get("uffd_wp") == mm.mm_id:
        engine.count("uffd_wp_faults")                    # handle_userfault(VM_UFFD_WP): the
        del pte.attrs["uffd_wp"]                          # handler lifts it, the fault goes on
        if not pte.attrs:
            pte.attrs = None
    return None


def _copy(engine: Any, mm: Any, vma: Any, vpn: int) -> Any:
    """UFFDIO_COPY of a page of zeros: a fresh anonymous page; with write protection
    registered too, read-only and write-protected (UFFDIO_COPY_MODE_WP)."""
    page = engine.alloc_page()
    if page is None:
        raise OperationFailed("ENOMEM", "UFFDIO_COPY: no page")
    engine.map_page(page, mm)                             # the allocation's reference is the mapping's
    wp = vma.attrs.get("uffd_wp") == mm.mm_id
    mm.ptes[vpn] = Pte(page.pfn, writable=vma.write and not wp, dirty=True, attrs={"uffd_wp": True} if wp else None)
    engine.page_added(page, mm, vpn)
    engine.count("uffd_missing_faults")
    return mm.ptes[vpn]


@hookimpl
def policykit_zap_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    if not pte.present or not pte.attrs or not pte.attrs.get("uffd_wp") or pte.attrs.get("pmd"):
        return None                                       # a PMD: policykit-thp's
    page = engine.machine.pages[pte.pfn]
    if not page.zero:
        engine.unmap_page(page, mm)
        engine.put_page(page)
    return True
