"""policykit-file: files, their page cache, and mappings of them.

Mechanism (mm/filemap.c, do_read_fault / do_cow_fault / do_shared_fault in mm/memory.c):

* ``create_file NAME PAGES [rw|ro]`` makes a file of PAGES pages, each with content of its
  own; ``ro``: the user may not write it (the target of Dirty COW).
* ``mmap_file P NAME PAGES [private|shared] [rw|ro] -> R`` maps it.  A shared mapping of a
  read-only file for writing fails (-EACCES).
* A fault in a file mapping finds (or reads) the page cache page.  Shared mappings map it;
  private ones map it read-only on a read fault, and a write fault copies it into a new
  anonymous page (do_cow_fault) -- as does any write fault on a page cache page mapped
  in a private mapping: the page cache is never written through a private mapping.
  Such a copy gives the mapping an ``anon_vma`` (a VMA attribute), which a child's
  mapping inherits at fork.
* fork asks ``fork_pte`` about each page cache page a private mapping maps, as
  ``copy_present_pte()`` does (5.9 .. 5.18 copied a maybe-pinned one for the child, and
  without an anon_vma hit a BUG): ``share`` it read-only, ``copy`` it into an anonymous
  page for the child, or ``fail`` the fork.  Shared mappings share it without asking.
* ``truncate NAME PAGES`` drops the pages past the new size from the page cache and from
  every mapping (COWed copies too); touching them afterwards is SIGBUS.  Memory taken
  away so is the user's own doing: the oracle judges it no more.
* Writes through ``/proc/self/mem`` are ``gup ... get write force``, then ``dma_write``.

Oracle class ``corrupt-file``: a file page in the page cache holds content that no write
the user was allowed to make put there.  Metric: ``file_reads`` (pages read into the page
cache).  Page attribute: ``file`` (a page cache page).
"""

from __future__ import annotations

from typing import Any

from policykit import (
    AttributeSpec,
    MetricSpec,
    OperationFailed,
    OperationSpec,
    VariantSpec,
    Outcome,
    Param,
    Pte,
    ViolationClassSpec,
    hookimpl,
)


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("page", "file", bool, False, "a page cache page of a file (not PageAnon)"),
            AttributeSpec("vma", "anon_vma", bool, False,
                          "a private file mapping has an anon_vma: a COW fault made an anonymous page in "
                          "it (anon_vma_prepare()), or in the mapping it was forked from")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("file_reads", "file pages read into the page cache", "pages")]


@hookimpl
def policykit_add_violation_classes() -> list[ViolationClassSpec]:
    return [ViolationClassSpec("corrupt-file", "a file's page cache holds data the user could not have written to it")]


# machine.attrs["files"][name] = {"size": n, "readonly": bool, "content": {index: token},
# "cache": {index: pfn}}

def _files(engine: Any) -> dict[str, dict[str, Any]]:
    return engine.machine.attrs.setdefault("files", {})


def _file(engine: Any, name: str) -> dict[str, Any]:
    try:
        return _files(engine)[name]
    except KeyError:
        raise OperationFailed("ENOENT", f"no file {name!r}") from None


def create_file(engine: Any, args: dict[str, Any]) -> Outcome:
    files = _files(engine)
    if args["name"] in files:
        raise OperationFailed("EEXIST", f"file {args['name']!r} exists")
    files[args["name"]] = {"size": args["pages"], "readonly": args["prot"] == "ro",
                           "content": {i: engine.next_token() for i in range(args["pages"])}, "cache": {}}
    return Outcome(tokens=[files[args["name"]]["content"][i] for i in range(args["pages"])])


def mmap_file(engine: Any, args: dict[str, Any]) -> Outcome:
    f = _file(engine, args["name"])
    shared, write = args["sharing"] == "shared", args["prot"] == "rw"
    if shared and write and f["readonly"]:
        raise OperationFailed("EACCES", f"file {args['name']!r} is read-only: no shared writable mapping")
    base = engine.mmap(args["process"], args["pages"], shared=shared, write=write,
                       attrs={"file": args["name"], "vm_file": True}, shmem=False)
    return Outcome(result=base)


def truncate(engine: Any, args: dict[str, Any]) -> Outcome:
    """truncate(): pages at or past the new size leave the page cache and every mapping."""
    name, size = args["name"], args["pages"]
    f = _file(engine, name)
    for proc in engine.machine.processes.values():
        for vma in proc.mm.vmas:
            if vma.attrs.get("file") != name:
                continue
            for vpn in range(max(vma.start, vma.start + size - vma.pgoff), vma.end):
                engine.zap_pte(proc.mm, vpn)             # unmap_mapping_range(even_cows=1)
    for index in [i for i in f["cache"] if i >= size]:
        page = engine.machine.pages[f["cache"].pop(index)]
        page.attrs.pop("file", None)
        engine.put_page(page)
    for index in [i for i in f["content"] if i >= size]:
        del f["content"][index]
    f["size"] = min(f["size"], size)
    return Outcome()


def cached_pfn(engine: Any, name: str, index: int) -> int | None:
    """The pfn of page ``index`` of file ``name`` if the page cache holds it (for other
    plugins: policykit-uffd's minor faults)."""
    f = engine.machine.attrs.get("files", {}).get(name)      # a lookup: makes no state
    return None if f is None or index >= f["size"] else f["cache"].get(index)


def _cache_page(engine: Any, f: dict[str, Any], name: str, index: int) -> Any:
    """find_get_page(), or a read into the page cache."""
    if index >= f["size"]:
        raise OperationFailed("SIGBUS", f"page {index} of {name!r} is past the end of the file")
    pfn = f["cache"].get(index)
    if pfn is not None:
        return engine.machine.pages[pfn]
    page = engine.alloc_page(anon=False)
    if page is None:
        raise OperationFailed("ENOMEM", "no page for the page cache")
    page.content = f["content"][index]
    page.attrs["file"] = True
    f["cache"][index] = page.pfn                     # the page cache's reference
    engine.count("file_reads")
    return page


@hookimpl
def policykit_handle_fault(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, write: bool,
                           unshare: bool) -> Any:
    name = vma.attrs.get("file")
    if name is None:
        return None
    if pte is not None:                              # present PTEs: the core's do_wp_page,
        if (write or unshare) and not vma.shared:    # whose copy needs an anon_vma
            vma.attrs["anon_vma"] = True
        return None
    f = _file(engine, name)
    index = vpn - vma.start + vma.pgoff
    page = _cache_page(engine, f, name, index)
    if vma.shared:                                   # do_shared_fault / do_read_fault
        new = Pte(page.pfn, writable=vma.write, dirty=write)
        page.mapcount += 1
        page.refcount += 1
    elif not write:                                  # do_read_fault: the page cache page, R/O
        new = Pte(page.pfn)
        page.mapcount += 1
        page.refcount += 1
    else:                                            # do_cow_fault: a private anonymous copy
        vma.attrs["anon_vma"] = True
        anon = engine.copy_page(page, "wp_copies")
        if anon is None:
            raise OperationFailed("ENOMEM", "no page for the private copy")
        anon.mapcount = 1
        new = Pte(anon.pfn, writable=vma.write, dirty=True)
    proc.mm.ptes[vpn] = new
    if new.pfn != page.pfn:                          # a fresh page: into the LRU add batch
        engine.page_added(engine.machine.pages[new.pfn], proc.mm, vpn)
    if unshare:
        return engine.do_wp_page(proc, vma, vpn, new, unshare=True)
    return new


@hookimpl
def policykit_copy_pte(engine: Any, src_mm: Any, dst_mm: Any, src_vma: Any, dst_vma: Any, vpn: int,
                       pte: Any) -> Any:
    if "file" not in src_vma.attrs or not pte.present:
        return None
    page = engine.machine.pages[pte.pfn]
    if page.anon:
        return None                                   # COWed copies: the core's fork_pte
    if src_vma.is_cow_mapping:                        # copy_present_pte(): the policy decides
        action = engine.decide("fork_pte", page, pte, src_vma, src_mm, vpn=vpn).action
        if action == "fail":
            raise OperationFailed("ENOMEM", f"fork_pte refused to share the page cache page at {vpn:#x}")
        if action != "share":                         # copy_present_page(): an anonymous copy
            new = engine.copy_page(page, "fork_copies", atomic=action == "copy_atomic")
            if new is None:
                raise OperationFailed("ENOMEM", f"fork: no page to copy {vpn:#x} into")
            new.mapcount = 1
            engine.page_added(new, dst_mm, vpn)
            return Pte(new.pfn, writable=dst_vma.write, dirty=True)
    # page_dup_file_rmap(): the page cache page is shared, read-only in a private mapping
    page.mapcount += 1
    page.refcount += 1
    return Pte(page.pfn, writable=False, dirty=False)


@hookimpl
def policykit_peek_pte(engine: Any, mm: Any, vma: Any, vpn: int, pte: Any) -> Any:
    name = vma.attrs.get("file")
    if name is None or pte is not None:
        return None
    f = _files(engine)[name]
    index = vpn - vma.start + vma.pgoff
    if index >= f["size"]:
        return None
    pfn = f["cache"].get(index)
    return engine.machine.pages[pfn].content if pfn is not None else f["content"][index]


@hookimpl
def policykit_page_refs(machine: Any, page: Any) -> int:
    return 1 if page.attrs.get("file") else 0


_PROC, _NAME = Param("process", "process"), Param("name", "name", doc="a file name")


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    pages = Param("pages", "int")
    prot = Param("prot", "word", ("rw", "ro"), "rw")
    return [
        OperationSpec("create_file", (_NAME, pages, prot), create_file,
                      "create a file of PAGES pages (ro: the user may not write it)", makes="file"),
        OperationSpec("mmap_file", (_PROC, _NAME, pages, Param("sharing", "word", ("private", "shared"), "private"),
                                    prot), mmap_file,
                      "map the first PAGES pages of a file", result="region"),
        OperationSpec("truncate", (_NAME, pages), truncate, "truncate the file to PAGES pages"),
    ]


# -- the oracle --------------------------------------------------------------------------------
# oracle.state["file.cells"][(name, index)]: the logical content of each file page.

@hookimpl
def policykit_oracle_step(oracle: Any, step: Any, outcome: Any, args: dict[str, Any]) -> Any:
    cells = oracle.state.get("file.cells")
    if cells is None:                   # no file yet: nothing to follow (the common case)
        if step.op != "create_file" or not outcome.ok:
            return None
        cells = oracle.state["file.cells"] = {}
    if not outcome.ok:
        return None
    if step.op == "create_file":
        for index, token in enumerate(outcome.tokens):
            cells[(args["name"], index)] = oracle.new_cell(token, shared=True)
            oracle.origin[token] = f"content of {args['name']!r} page {index}"
    elif step.op == "mmap_file":
        pid, name = args["process"], args["name"]
        oracle.name_region(outcome.result, step.result)
        for i in range(args["pages"]):
            cell = cells.get((name, i))
            vpn = outcome.result + i
            if cell is None:                           # past the end of the file
                oracle.forget(pid, vpn)
            elif args["sharing"] == "shared":
                oracle.map_cell(pid, vpn, cell)
            else:                  # a private view: the file's content until written into
                oracle.map_cell(pid, vpn, oracle.new_cell(base=cell))
                oracle.follow(pid, vpn, cell)
    elif step.op == "truncate":
        _forget_truncated(oracle, cells, args["name"], args["pages"])
    elif step.op == "gup" and "zap_race" in args.get("flags", ()):
        _private_views_again(oracle, cells, args["process"],
                             [v for v in args["region"] if v in oracle.engine.zapped_by_race])
    elif step.op == "madvise" and args["advice"] == "dontneed":
        _private_views_again(oracle, cells, args["process"], args["region"])
    _corrupt(oracle, cells)
    return None


def _file_vma(oracle: Any, pid: int, vpn: int) -> Any:
    vma = oracle.engine.machine.processes[pid].mm.find_vma(vpn)
    return vma if vma is not None and "file" in vma.attrs else None


def _private_views_again(oracle: Any, cells: dict, pid: int, vpns: Any) -> None:
    # MADV_DONTNEED on a private file mapping shows the file's content again
    for vpn in vpns:
        vma = _file_vma(oracle, pid, vpn)
        if vma is not None and not vma.shared:
            cell = cells.get((vma.attrs["file"], vpn - vma.start + vma.pgoff))
            if cell is not None:
                oracle.follow(pid, vpn, cell)


def _forget_truncated(oracle: Any, cells: dict, name: str, size: int) -> None:
    for pid, space in oracle.space.items():
        for vpn in list(space):
            vma = _file_vma(oracle, pid, vpn)
            if vma is not None and vma.attrs["file"] == name and vpn - vma.start + vma.pgoff >= size:
                oracle.forget(pid, vpn)
    for key in [k for k in cells if k[0] == name and k[1] >= size]:
        del cells[key]


def _corrupt(oracle: Any, cells: dict) -> None:
    """Every cached file page must hold what the file's logical content says."""
    files = oracle.engine.machine.attrs.get("files", {})
    for (name, index), cell in cells.items():
        pfn = files.get(name, {}).get("cache", {}).get(index)
        if pfn is None:
            continue
        seen = oracle.engine.machine.pages[pfn].content
        if seen != cell.current:
            oracle.report("corrupt-file", f"page {index} of {name!r} in the page cache was changed",
                          oracle.describe(seen), oracle.describe(cell.current), key=cell.cid)


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]


@hookimpl
def policykit_add_variants() -> list[VariantSpec]:
    # cow.c's memfd and tmpfile backends (alike here: a page cache page): MAP_PRIVATE
    # read-faulted, and {region}_smem, a MAP_SHARED mapping of the same file.
    return [VariantSpec("file", "page cache page (memfd, tmpfile)", """
        create_file {region}_file 1 rw
        mmap_file {process} {region}_file 1 private rw -> {region}
        mmap_file {process} {region}_file 1 shared rw -> {region}_smem
        read {process} {region}
        read {process} {region}_smem
    """, frozenset({"file"}))]
