"""policykit-hugetlb: huge pages from a reserved pool (mm/hugetlb.c).

* ``hugetlb_pool N [2M|1G]`` sets the number of free huge pages of that size (a pool
  per size, as /sys/kernel/mm/hugepages/hugepages-*kB has).
* ``mmap_hugetlb P PAGES [private|shared] [2M|1G] -> R`` maps PAGES huge pages of that
  size (2 MiB by default, from that size's pool); each page of the
  region is one huge page (a write writes all of it).  A fault takes a page from the
  pool; an empty pool fails it (SIGBUS).  Shared mappings share a hugetlbfs object
  (which holds a reference); private ones get anonymous huge pages, mapped read-only by
  a read fault.
* ``mmap_hugetlb_file P FILE PAGES [private|shared] [2M|1G] -> R`` maps the hugetlbfs
  file FILE (``memfd_create(MFD_HUGETLB)``, empty until its pages are faulted).  A
  private mapping maps the file's pages read-only, and a write copies them, always (as
  a page cache page in a private mapping is always copied: nothing to decide).
* A write (or unshare) fault on a read-only huge page is ``hugetlb_wp``: the decision
  point ``hugetlb_wp`` (``reuse`` | ``copy``, and for an unrealizable yardstick
  ``directed_copy``); every era reuses by mapcount, which is why
  a vmsplice() reference still leaks on current kernels (cow.c flags those cases XFAIL).
  Its default for policies that know nothing of hugetlb is ``copy``: always safe.
* fork shares or, by the decision point ``hugetlb_fork`` (``share`` | ``copy``), copies a
  page into a new huge page for the child (5.12: pinned pages); with the pool empty the
  fork fails.
* The process that made a private mapping owns its reservation: when it needs a copy
  of a huge page and the pool is empty, the page is unmapped from the other processes
  that map it (forked children), whose mapping then raises SIGBUS when touched there,
  and the owner keeps the page (``unmap_ref_private()``); anyone else gets SIGBUS.
* A copy costs the huge page's size in ``bytes_copied``, and counts in ``hugetlb_copies``.

Page attribute: ``hugetlb``.  VMA attribute: ``hugetlb``.
"""

from __future__ import annotations

from typing import Any

from policykit import (
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

#: bytes of a huge page, by the size a mapping asks for
HPAGE_SIZES = {"2M": 2 << 20, "1G": 1 << 30}
_CTX = ("page", "pte", "vma", "mm")


class Hooks:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_hugetlb_wp(ctx):
        """Decide a write or unshare fault on a read-only huge page (``hugetlb_wp``).

        :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
        :returns: ``reuse``, ``copy`` (a new huge page from the pool), or
            ``directed_copy`` (keep it; every other process mapping it gets a copy from
            the pool: only an ``unrealizable`` policy may answer it).

        Called for private hugetlb mappings.  Stops at first non-None result.
        """

    @staticmethod
    @hookspec(firstresult=True)
    def policykit_hugetlb_fork(ctx):
        """Decide what fork does with a huge page of a private mapping
        (``copy_hugetlb_page_range``).

        :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm`` of the parent.
        :returns: ``share`` (write-protect both) or ``copy`` (the child gets a new huge
            page now; none free: the fork fails).

        Called for every present huge page of a private hugetlb VMA.  Stops at first
        non-None result.
        """


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(Hooks)


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    return [
        DecisionPointSpec("hugetlb_wp", ("reuse", "copy", "directed_copy"), _CTX,
                          "a write or unshare fault on a read-only huge page; directed_copy: keep it, "
                          "the other processes mapping it get copies (unrealizable)", default="copy",
                          unrealizable_actions=("directed_copy",)),
        DecisionPointSpec("hugetlb_fork", ("share", "copy"), _CTX,
                          "fork meets a huge page of a private mapping", default="share"),
    ]


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("page", "hugetlb", bool, False, "a hugetlb page (2 MiB or 1 GiB, from the pool)"),
            AttributeSpec("vma", "hugetlb", bool, False, "VM_HUGETLB")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("hugetlb_copies", "huge pages copied (fork, write or unshare fault)", "pages")]


def _state(engine: Any) -> dict[str, Any]:
    return engine.machine.attrs.setdefault("hugetlb", {"free": {}, "objects": {}, "next": 1})


def alloc_huge_page(engine: Any, anon: bool, size: str = "2M") -> Any:
    pool = _state(engine)["free"]
    if not pool.get(size):
        return None
    page = engine.alloc_page(anon=anon)
    if page is None:
        return None
    pool[size] -= 1
    page.attrs["hugetlb"] = True
    page.attrs["hpage_size"] = size                   # "2M" or "1G"
    return page


def _copy(engine: Any, src: Any, metric: str) -> Any:
    new = alloc_huge_page(engine, anon=True, size=src.attrs["hpage_size"])
    if new is None:
        return None
    new.content = src.content
    new.attrs["hpage_size"] = src.attrs["hpage_size"]
    engine.count(metric)
    engine.count("hugetlb_copies")
    engine.count("bytes_copied", HPAGE_SIZES[src.attrs["hpage_size"]])
    return new


@hookimpl
def policykit_copy_page(engine: Any, page: Any, metric: str) -> Any:
    if not page.attrs.get("hugetlb"):
        return None
    new = _copy(engine, page, metric)
    if new is None:
        raise OperationFailed("SIGBUS", "no free huge page for the copy")
    return new


@hookimpl
def policykit_page_freed(engine: Any, page: Any) -> None:
    if page.attrs.get("hugetlb"):
        pool = _state(engine)["free"]
        size = page.attrs.get("hpage_size", "2M")
        pool[size] = pool.get(size, 0) + 1


def hugetlb_pool(engine: Any, args: dict[str, Any]) -> Outcome:
    _state(engine)["free"][args.get("size", "2M")] = args["pages"]
    return Outcome()


def mmap_hugetlb(engine: Any, args: dict[str, Any]) -> Outcome:
    st = _state(engine)
    # even MAP_ANONYMOUS|MAP_HUGETLB memory is a hugetlbfs file's (vma->vm_file)
    attrs: dict[str, Any] = {"hugetlb": True, "hpage_size": args["size"], "vm_file": True}
    if args["sharing"] == "shared":
        attrs["object"] = st["next"]
        st["objects"][st["next"]] = {}
        st["next"] += 1
    else:
        attrs["resv_owner"] = args["process"]       # HPAGE_RESV_OWNER: forked copies are not
    base = engine.mmap(args["process"], args["pages"], shared=args["sharing"] == "shared",
                       attrs=attrs, shmem=False)
    return Outcome(result=base)


def mmap_hugetlb_file(engine: Any, args: dict[str, Any]) -> Outcome:
    """Map a hugetlbfs file (memfd_create(MFD_HUGETLB)), made empty on first use: its huge
    pages are allocated as they are first faulted, shared or not."""
    st = _state(engine)
    key = f"file:{args['name']}"
    st["objects"].setdefault(key, {})
    attrs = {"hugetlb": True, "hpage_size": args["size"], "object": key, "vm_file": True}
    base = engine.mmap(args["process"], args["pages"], shared=args["sharing"] == "shared",
                       attrs=attrs, shmem=False)
    return Outcome(result=base)


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    return [
        OperationSpec("hugetlb_pool", (Param("pages", "int"), Param("size", "word", tuple(HPAGE_SIZES), "2M")),
                      hugetlb_pool, "the pool of huge pages of SIZE (2M or 1G) has PAGES free"),
        OperationSpec("mmap_hugetlb", (Param("process", "process"), Param("pages", "int"),
                                       Param("sharing", "word", ("private", "shared"), "private"),
                                       Param("size", "word", tuple(HPAGE_SIZES), "2M")),
                      mmap_hugetlb, "map PAGES huge pages of 2 MiB or 1 GiB (MAP_HUGETLB)", result="region"),
        OperationSpec("mmap_hugetlb_file", (Param("process", "process"), Param("name", "name"),
                                            Param("pages", "int"),
                                            Param("sharing", "word", ("private", "shared"), "private"),
                                            Param("size", "word", tuple(HPAGE_SIZES), "2M")),
                      mmap_hugetlb_file, "map PAGES huge pages of the hugetlbfs file NAME "
                      "(memfd_create(MFD_HUGETLB)); private mappings COW its pages", result="region"),
    ]


@hookimpl
def policykit_handle_fault(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, write: bool,
                           unshare: bool) -> Any:
    if not vma.attrs.get("hugetlb"):
        return None
    mm = proc.mm
    if pte is None:                                          # hugetlb_no_page()
        if vma.attrs.get("resv_unmapped") == proc.pid:      # (fork starts the child's mapping anew)
            raise OperationFailed("SIGBUS", "the reservation's owner took this mapping's huge page when the "
                                  "pool ran out (HPAGE_RESV_UNMAPPED)")
        if "object" in vma.attrs:                            # the file's page, shared or not
            obj = _state(engine)["objects"][vma.attrs["object"]]
            index = vpn - vma.start + vma.pgoff
            page = engine.machine.pages.get(obj.get(index, -1))
            if page is None:
                page = alloc_huge_page(engine, anon=False, size=vma.attrs["hpage_size"])
                if page is None:
                    raise OperationFailed("SIGBUS", "no free huge page")
                obj[index] = page.pfn                        # the hugetlbfs object's reference
            page.refcount += 1
        else:
            page = alloc_huge_page(engine, anon=True, size=vma.attrs["hpage_size"])
            if page is None:
                raise OperationFailed("SIGBUS", "no free huge page")
        page.mapcount += 1
        private_file = not vma.shared and not page.anon      # mapped read-only; a write COWs
        pte = Pte(page.pfn, writable=vma.write and (vma.shared or write) and not private_file,
                  dirty=write and not private_file)
        mm.ptes[vpn] = pte
        if not (private_file and write):
            return pte
    if pte.writable and not unshare:
        return pte
    page = engine.machine.pages[pte.pfn]
    if vma.shared:
        if not unshare:
            pte.writable, pte.dirty = vma.write, True
        return pte
    if unshare and pte.writable:
        return pte
    # a hugetlbfs file's page in a private mapping is always copied, as the core copies
    # a page cache page: there is nothing to decide
    action = engine.decide("hugetlb_wp", page, pte, vma, mm, pid=proc.pid, vpn=vpn).action \
        if page.anon else "copy"
    if action == "directed_copy":                            # the others move; this mm reuses
        engine.directed_copy(page, mm, "unshare_copies" if unshare else "wp_copies")
        action = "reuse"
    if action == "reuse":
        if not unshare:
            pte.writable, pte.dirty = vma.write, True
        return pte
    new = _copy(engine, page, "unshare_copies" if unshare else "wp_copies")
    if new is None and page.anon and vma.attrs.get("resv_owner") == proc.pid and unmap_ref_private(
            engine, proc, vpn, page):
        # the page is this mm's alone now: the fault is taken again
        return policykit_handle_fault(engine, proc, vma, vpn, pte, not unshare, unshare)
    if new is None:
        raise OperationFailed("SIGBUS", "no free huge page for the copy")
    new.mapcount = 1
    pte.pfn = new.pfn
    pte.writable = vma.write and not unshare
    pte.dirty = not unshare
    page.mapcount -= 1
    engine.put_page(page)
    return pte


def unmap_ref_private(engine: Any, owner: Any, vpn: int, page: Any) -> bool:
    """The owner of a private mapping's reservation needs a copy of ``page`` and the pool
    is empty: the page is unmapped from every other process that maps it there (forked
    children, which have no reservation), and their mappings marked so that touching it
    again is SIGBUS (``unmap_ref_private()``).  Whether any was."""
    done = False
    for proc in engine.machine.processes.values():
        if proc is owner or not proc.alive:
            continue
        pte = proc.mm.ptes.get(vpn)
        vma = proc.mm.find_vma(vpn)
        if pte is None or not pte.present or pte.pfn != page.pfn or vma is None or vma.shared:
            continue
        engine.zap_pte(proc.mm, vpn)
        vma.attrs["resv_unmapped"] = proc.pid       # HPAGE_RESV_UNMAPPED: this process's mapping
        _state(engine).setdefault("unmapped", []).append((proc.pid, vpn))
        done = True
    return done


@hookimpl
def policykit_copy_pte(engine: Any, src_mm: Any, dst_mm: Any, src_vma: Any, dst_vma: Any, vpn: int,
                       pte: Any) -> Any:
    if not src_vma.attrs.get("hugetlb") or not pte.present:
        return None
    page = engine.machine.pages[pte.pfn]
    if not src_vma.shared and engine.decide("hugetlb_fork", page, pte, src_vma, src_mm, vpn=vpn).action == "copy":
        new = _copy(engine, page, "fork_copies")
        if new is None:
            raise OperationFailed("ENOMEM", "fork: no free huge page for the copy")
        new.mapcount = 1
        return Pte(new.pfn, writable=dst_vma.write, dirty=True)
    if not src_vma.shared and pte.writable:
        pte.writable = False                                 # huge_ptep_set_wrprotect()
    page.mapcount += 1
    page.refcount += 1
    return Pte(page.pfn, writable=pte.writable, dirty=pte.dirty)


@hookimpl
def policykit_peek_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    if not vma.attrs.get("hugetlb") or pte is not None:
        return None
    if "object" in vma.attrs:
        pfn = _state(engine)["objects"][vma.attrs["object"]].get(vpn - vma.start + vma.pgoff)
        if pfn is not None:
            return engine.machine.pages[pfn].content
    return 0


@hookimpl
def policykit_page_refs(machine: Any, page: Any) -> int:
    objects = machine.attrs.get("hugetlb", {}).get("objects", {})
    return sum(1 for obj in objects.values() for pfn in obj.values() if pfn == page.pfn)


@hookimpl
def policykit_oracle_step(oracle: Any, step: Any, outcome: Any, args: dict[str, Any]) -> None:
    # a child whose page the reservation's owner took has lost that memory: touching it
    # is SIGBUS, never another's data (the kernel's bargain for MAP_PRIVATE); what is
    # left is an empty page, which a child it forks later faults in afresh
    st = oracle.engine.machine.attrs.get("hugetlb")
    if st and "unmapped" in st:
        for pid, vpn in st.pop("unmapped"):
            oracle.map_cell(pid, vpn, oracle.new_cell())
    if step.op == "mmap_hugetlb" and outcome.ok:
        oracle.name_region(outcome.result, step.result)
        shared = args["sharing"] == "shared"
        for i in range(args["pages"]):
            vpn = outcome.result + i
            oracle.map_cell(args["process"], vpn, oracle.new_cell(shared=shared))
    elif step.op == "mmap_hugetlb_file" and outcome.ok:
        # oracle.state["hugetlb.cells"][(file, index)]: the logical content of each page
        cells = oracle.state.setdefault("hugetlb.cells", {})
        oracle.name_region(outcome.result, step.result)
        for i in range(args["pages"]):
            cell = cells.get((args["name"], i))
            if cell is None:
                cell = cells[(args["name"], i)] = oracle.new_cell(shared=True)
            view = cell if args["sharing"] == "shared" else oracle.new_cell(base=cell)
            oracle.map_cell(args["process"], outcome.result + i, view)
            if view is not cell:           # private: the file's content until copied
                oracle.follow(args["process"], outcome.result + i, cell)
    elif outcome.ok and (step.op == "madvise" and args["advice"] == "dontneed"
                         or step.op == "gup" and "zap_race" in args.get("flags", ())):
        # the private view of a file page that was zapped shows the file again
        cells = oracle.state.get("hugetlb.cells", {})
        zapped = args["region"] if step.op == "madvise" else oracle.engine.zapped_by_race
        mm = oracle.engine.machine.processes[args["process"]].mm
        for vpn in args["region"]:
            vma = mm.find_vma(vpn)
            if vpn in zapped and vma is not None and not vma.shared and str(vma.attrs.get("object", "")).startswith("file:"):
                cell = cells.get((vma.attrs["object"][5:], vpn - vma.start + vma.pgoff))
                if cell is not None:
                    oracle.follow(args["process"], vpn, cell)


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]


@hookimpl
def policykit_add_variants() -> list[VariantSpec]:
    # cow.c's hugetlb variants: they need two free huge pages.  hugetlb-file (and its
    # 1 GiB twin) is for the non-anonymous tests: a private mapping of a
    # memfd_create(MFD_HUGETLB) file, read-faulted, and {region}_smem, a shared mapping of
    # the same file.
    return [VariantSpec("hugetlb-file", "2 MiB hugetlbfs page (memfd)", """
        hugetlb_pool 2
        mmap_hugetlb_file {process} {region}_file 1 private -> {region}
        mmap_hugetlb_file {process} {region}_file 1 shared -> {region}_smem
        read {process} {region}
        read {process} {region}_smem
    """, frozenset({"hugetlb"})), VariantSpec("hugetlb-file-1g", "1 GiB hugetlbfs page (memfd)", """
        hugetlb_pool 2 1G
        mmap_hugetlb_file {process} {region}_file 1 private 1G -> {region}
        mmap_hugetlb_file {process} {region}_file 1 shared 1G -> {region}_smem
        read {process} {region}
        read {process} {region}_smem
    """, frozenset({"hugetlb"})), VariantSpec("hugetlb", "2 MiB hugetlb page", """
        hugetlb_pool 2
        mmap_hugetlb {process} 1 private -> {region}
        write {process} {region}
    """, frozenset({"hugetlb"})), VariantSpec("hugetlb-1g", "1 GiB hugetlb page", """
        hugetlb_pool 2 1G
        mmap_hugetlb {process} 1 private 1G -> {region}
        write {process} {region}
    """, frozenset({"hugetlb"}))]
