"""The engine's own declarations, made through the same hooks plugins use.

Attributes policies may read, the decision points of the core mm, the scenario
operations, the metrics and the violation classes of the built-in oracle.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from .mm import Engine, OperationFailed, Outcome
from .specs import (
    AttributeSpec,
    DecisionPointSpec,
    MetricSpec,
    OperationSpec,
    Param,
    VariantSpec,
    ViolationClassSpec,
)

_CTX = ("page", "pte", "vma", "mm")


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    a = AttributeSpec
    return [
        a("page", "refcount", int, 0, "page_count(): mappings + GUP refs + 1024 per FOLL_PIN (1 for a large folio) "
          "+ other refs; for a page of a large folio, the folio's"),
        a("page", "mapcount", int, 0, "page_mapcount(): number of PTEs mapping the page"),
        a("page", "anon", bool, True, "PageAnon(): private anonymous page (shmem pages are not)"),
        a("page", "zero", bool, False, "the shared zero page"),
        a("page", "compound", bool, False, "the page belongs to a large folio (a THP)"),
        a("page", "pincount", int, 0, "exact FOLL_PIN count of the page's large folio (0 for a small page)"),
        a("page", "folio_mapcount", int, 0, "folio_mapcount(): mappings of every page of the page's large "
          "folio (the page's mapcount for a small page)"),
        a("page", "folio_mapped_shared", bool, False, "folio_maybe_mapped_shared(): the large folio may be "
          "mapped by more than one mm (6.15's two mm slots and shared bit: true from when two mms map it "
          "until one slot's mm holds every mapping; a small page: mapcount > 1)"),
        a("page", "pins", int, 0, "exact number of FOLL_PIN references", oracle_only=True),
        a("page", "gets", int, 0, "exact number of FOLL_GET references", oracle_only=True),
        a("page", "foreign_refs", int, 0, "GUP references (pins and gets) that processes other than "
          "the deciding one hold on the page", oracle_only=True),
        a("page", "write_refs", int, 0, "GUP references with FOLL_WRITE holding the page: I/O that will "
          "write it", oracle_only=True),
        a("pte", "present", bool, True, "pte_present()"),
        a("pte", "writable", bool, False, "pte_write()"),
        a("pte", "dirty", bool, False, "pte_dirty()"),
        a("pte", "softdirty", bool, True, "pte_soft_dirty(): no clear_refs since the last write fault on it"),
        a("vma", "shared", bool, False, "VM_SHARED"),
        a("vma", "write", bool, True, "VM_WRITE"),
        a("vma", "may_write", bool, True, "VM_MAYWRITE"),
        a("vma", "dontcopy", bool, False, "VM_DONTCOPY (MADV_DONTFORK)"),
        a("vma", "wipeonfork", bool, False, "VM_WIPEONFORK (MADV_WIPEONFORK)"),
        a("vma", "softdirty", bool, True, "VM_SOFTDIRTY: false while clear_refs soft-dirty tracking is on"),
        a("vma", "is_cow_mapping", bool, True, "is_cow_mapping(): private and VM_MAYWRITE"),
        a("mm", "has_pinned", bool, False, "mm->has_pinned / MMF_HAS_PINNED: set by the first FOLL_PIN, never cleared"),
        a("foll", "pin", bool, False, "FOLL_PIN (pin_user_pages)"),
        a("foll", "get", bool, True, "FOLL_GET (get_user_pages)"),
        a("foll", "write", bool, False, "FOLL_WRITE"),
        a("foll", "longterm", bool, False, "FOLL_LONGTERM"),
        a("foll", "force", bool, False, "FOLL_FORCE"),
        a("foll", "fast", bool, False, "called through GUP-fast"),
        a("foll", "cow", bool, False, "FOLL_COW: this GUP took a write fault on a VMA without VM_WRITE (FOLL_FORCE)"),
    ]


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    d = DecisionPointSpec
    return [
        d("fork_pte", ("share", "copy", "copy_atomic", "fail"), _CTX,
          "fork() meets a present page in a COW mapping: anonymous, or a file's page cache "
          "page (copy_present_pte)"),
        d("wp_fault", ("reuse", "copy", "directed_copy"), _CTX,
          "write fault on a write-protected anonymous page (do_wp_page); directed_copy: keep "
          "the page, and give every other process mapping it a copy (unrealizable)",
          unrealizable_actions=("directed_copy",)),
        d("unshare_fault", ("reuse", "copy"), _CTX,
          "GUP asked to unshare a possibly shared anonymous page (FAULT_FLAG_UNSHARE)"),
        d("gup", ("grab", "write_fault", "unshare_fault", "fail"), _CTX + ("foll",),
          "GUP found a present PTE and may take the page (follow_page_pte)"),
        d("gup_cow_retry", ("keep_write", "drop_write"), _CTX + ("foll",),
          "GUP with FOLL_FORCE broke COW on a VMA without VM_WRITE (faultin_page)",
          default="keep_write"),
        d("mprotect_pte", ("make_writable", "keep"), _CTX,
          "mprotect(PROT_WRITE) of a VMA without it meets a read-only anonymous PTE (can_change_pte_writable)"),
        d("clear_refs_pte", ("wrprotect", "skip"), _CTX,
          "clear_refs soft-dirty meets a writable anonymous PTE (clear_soft_dirty)"),
        d("dma_write", ("write", "directed_copy"), _CTX,
          "a device is about to write through a GUP reference into a page that other processes "
          "map too; directed_copy gives them copies first (unrealizable: no kernel sees DMA coming)",
          default="write", unrealizable_actions=("directed_copy",)),
    ]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    m = MetricSpec
    return [
        m("fork_copies", "pages copied at fork", "pages"),
        m("wp_copies", "pages copied by write faults", "pages"),
        m("unshare_copies", "pages copied by unshare faults", "pages"),
        m("bytes_copied", "bytes copied, all causes", "bytes"),
        m("faults_read", "read faults on empty PTEs of private memory", "faults"),
        m("faults_write", "write faults on empty PTEs of private memory", "faults"),
        m("faults_shared", "faults on shared memory", "faults"),
        m("faults_wp", "write faults on write-protected PTEs", "faults"),
        m("faults_unshare", "unshare faults", "faults"),
        m("peak_pages", "most pages allocated at once", "pages"),
        m("decisions", "decisions asked of the policy"),
        m("warnings", "decisions that carried a warning"),
    ]


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).resolve().parent.parent / "corpus")]


@hookimpl
def policykit_add_violation_classes() -> list[ViolationClassSpec]:
    v = ViolationClassSpec
    return [
        v("leak", "a process, or a reference it holds, saw data another process wrote after the two diverged"),
        v("pin-incoherent", "a FOLL_PIN and the pinning process's memory went apart"),
        v("lost-write", "a process lost its own write, or a write through a FOLL_GET reference it took"),
        v("fork-failed", "fork() failed"),
        v("gup-failed", "get_user_pages/pin_user_pages failed"),
        v("lost-dirty", "after clear_refs, a process wrote a page without a fault: soft-dirty tracking "
                        "(CRIU, /proc/PID/pagemap) never sees the write"),
        v("error", "a policy or plugin misbehaved: bad decision or exception"),
    ]


# -- operations -----------------------------------------------------------------------

def _spawn(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=e.spawn(a["_name"]))


def _mmap(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=e.mmap(a["process"], a["pages"], a["sharing"] == "shared", a["prot"] == "rw"))


def _write(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(tokens=e.write(a["process"], a["region"]))


def _read(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(tokens=e.read(a["process"], a["region"]))


def _fork(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=e.fork(a["process"], a["_name"]))


def _fork_children(e: Engine, a: dict[str, Any]) -> Outcome:
    children: list[int] = []
    name = e.process(a["process"]).name
    for i in range(a["count"]):
        try:
            children.append(e.fork(a["process"], f"{name}#{i}"))
        except OperationFailed as exc:
            return Outcome(ok=False, errno=exc.errno, message=exc.message, result=children)
    return Outcome(result=children)


def _exit(e: Engine, a: dict[str, Any]) -> Outcome:
    e.exit(a["process"])
    return Outcome()


def _range(a: dict[str, Any]) -> tuple[int, int]:
    vpns = a["region"]
    return vpns[0], vpns[-1] + 1


def _munmap(e: Engine, a: dict[str, Any]) -> Outcome:
    e.munmap(a["process"], *_range(a))
    return Outcome()


def _mremap(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=e.mremap(a["process"], *_range(a)))


def _mprotect(e: Engine, a: dict[str, Any]) -> Outcome:
    e.mprotect(a["process"], *_range(a), write=a["prot"] == "rw")
    return Outcome()


def _madvise(e: Engine, a: dict[str, Any]) -> Outcome:
    e.madvise(a["process"], *_range(a), a["advice"])
    return Outcome()


def _clear_refs(e: Engine, a: dict[str, Any]) -> Outcome:
    e.clear_refs(a["process"])
    return Outcome()


def _gup(e: Engine, a: dict[str, Any]) -> Outcome:
    f = a["flags"]
    return Outcome(result=e.gup(a["process"], a["region"], a["kind"] == "pin", "write" in f,
                                "longterm" in f, "force" in f, "fast" in f, "zap_race" in f))


def _pin(e: Engine, a: dict[str, Any]) -> Outcome:
    return _gup(e, {**a, "kind": "pin"})


def _vmsplice(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=e.gup(a["process"], a["region"], pin=False, count=a["times"]))


def _release(e: Engine, a: dict[str, Any]) -> Outcome:
    e.release(a["ref"][0])
    return Outcome()


def _dma_write(e: Engine, a: dict[str, Any]) -> Outcome:
    rid, index = a["ref"]
    return Outcome(tokens=e.dma_write(rid, index))


def _dma_read(e: Engine, a: dict[str, Any]) -> Outcome:
    rid, index = a["ref"]
    return Outcome(tokens=e.dma_read(rid, index))


def _alias(e: Engine, a: dict[str, Any]) -> Outcome:
    return Outcome(result=a["region"][0])


def _fail_alloc(e: Engine, a: dict[str, Any]) -> Outcome:
    e.machine.fail_allocs = a["count"]
    return Outcome()


def _memory_pressure(e: Engine, a: dict[str, Any]) -> Outcome:
    e.machine.pressure = a["state"] == "on"
    return Outcome()


P = Param
_PROC = P("process", "process", doc="a running process")
_REGION = P("region", "region", doc="a region of that process, optionally [i] or [i:j]")
_REF = P("ref", "ref", doc="a live GUP reference, optionally [i] or [i:j]")
_GUP_FLAGS = ("write", "longterm", "fast", "force", "zap_race")
#: the flag sets explore tries: every mix of write, longterm and fast, and FOLL_FORCE
#: writes (with the MADV_DONTNEED race of Dirty COW)
_GUP_EXPLORE = ((), ("write",), ("longterm",), ("fast",), ("write", "longterm"), ("write", "fast"),
                ("longterm", "fast"), ("write", "longterm", "fast"), ("write", "force"),
                ("write", "force", "zap_race"))


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    o = OperationSpec
    return [
        o("spawn", (), _spawn, "start a new process with an empty address space", result="process"),
        o("mmap", (_PROC, P("pages", "int", doc="number of pages"),
                   P("sharing", "word", ("private", "shared"), "private"),
                   P("prot", "word", ("rw", "ro"), "rw")),
          _mmap, "map anonymous memory (MAP_PRIVATE or MAP_SHARED)", result="region"),
        o("write", (_PROC, _REGION), _write, "the process writes every page (a fresh value each)"),
        o("read", (_PROC, _REGION), _read, "the process reads every page"),
        o("fork", (_PROC,), _fork, "fork(); the child's name follows ->", result="process"),
        o("fork_children", (_PROC, P("count", "int", doc="how many children")), _fork_children,
          "fork() COUNT children that stay alive and do nothing more (a pre-forking server's "
          "workers); they are not named"),
        o("exit", (_PROC,), _exit, "the process exits; its references are dropped"),
        o("munmap", (_PROC, _REGION), _munmap, "unmap the pages"),
        o("mremap", (_PROC, _REGION), _mremap,
          "mremap(MREMAP_MAYMOVE | MREMAP_FIXED) the pages to a new place; the result names them there",
          result="region"),
        o("mprotect", (_PROC, _REGION, P("prot", "word", ("ro", "rw"))), _mprotect,
          "mprotect(PROT_READ) or mprotect(PROT_READ|PROT_WRITE)"),
        o("madvise", (_PROC, _REGION, P("advice", "word",
                                         ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed"))),
          _madvise, "MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTNEED"),
        o("clear_refs", (_PROC,), _clear_refs, "echo 4 > /proc/pid/clear_refs (soft-dirty)"),
        o("gup", (_PROC, _REGION, P("kind", "word", ("get", "pin")),
                  P("flags", "flags", _GUP_FLAGS, explore=_GUP_EXPLORE, informs=("fast",))),
          _gup, "get_user_pages (get) or pin_user_pages (pin), with FOLL_* flags", result="ref"),
        o("pin", (_PROC, _REGION, P("flags", "flags", _GUP_FLAGS)), _pin,
          "pin_user_pages: same as 'gup ... pin'", result="ref"),
        o("vmsplice", (_PROC, _REGION, P("times", "int", default=1, doc="pipe buffers per page")), _vmsplice,
          "vmsplice() the pages into a pipe (TIMES times: a reference each): read-only FOLL_GET",
          result="ref"),
        o("unpin", (_REF,), _release, "unpin_user_pages() on a FOLL_PIN reference"),
        o("put", (_REF,), _release, "put_page() on a FOLL_GET reference (close the pipe, end the I/O)"),
        o("dma_write", (_REF,), _dma_write, "the device writes through the reference"),
        o("dma_read", (_REF,), _dma_read, "the device (or a pipe reader) reads through the reference"),
        o("alias", (_PROC, _REGION), _alias,
          "name part of a region: later lines may use the name for those pages", result="region"),
        o("fail_alloc", (P("count", "int"),), _fail_alloc, "the next COUNT page allocations fail"),
        o("memory_pressure", (P("state", "word", ("on", "off")),), _memory_pressure,
          "under memory pressure GFP_ATOMIC allocations fail; others reclaim and succeed"),
    ]


@hookimpl
def policykit_add_variants() -> list[VariantSpec]:
    return [
        VariantSpec("base", "base page", """
            mmap {process} 1 private -> {region}
            write {process} {region}
        """),
        # cow.c's non-anonymous tests: a private mapping read-faulted, and {region}_smem,
        # the second mapping the test compares with (here: another zero page mapping).
        VariantSpec("zeropage", "shared zero page", """
            mmap {process} 1 private -> {region}
            read {process} {region}
            mmap {process} 1 private -> {region}_smem
            read {process} {region}_smem
        """),
    ]
