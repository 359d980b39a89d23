"""Machine state as plain data: pages, PTEs, VMAs, mms, processes and GUP references.

Everything here is data with no behaviour beyond copying and a canonical form, so a
state can be snapshotted, restored, compared and hashed.  The mechanism that changes
it lives in :mod:`policykit.engine.mm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 4096
#: what one FOLL_PIN adds to the refcount of a small page (include/linux/mm.h)
GUP_PIN_COUNTING_BIAS = 1024
#: content of a page nobody wrote: zero-fill
ZERO_TOKEN = 0


def _frozen(value: Any) -> Any:
    """A hashable form of plugin state: dicts and lists become sorted tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, set):
        return tuple(sorted(_frozen(v) for v in value))
    return value


def copy_containers(value: Any, leaf: Any = None) -> Any:
    """A copy of plugin state: dicts, lists and sets copied all the way down; the values
    in them shared, or replaced by ``leaf(value)``."""
    if leaf is None:
        return _copy_plain(value)
    if isinstance(value, dict):
        return {k: copy_containers(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_containers(v, leaf) for v in value]
    if isinstance(value, set):
        return set(value)
    return leaf(value)


_CONTAINERS = (dict, list, set)


def _copy_plain(value: Any) -> Any:
    """:func:`copy_containers` without ``leaf``: each container copied whole, and only
    the containers in it copied again (a snapshot copies swap slots and file caches)."""
    if isinstance(value, dict):
        out = value.copy()
        for k, v in value.items():
            if isinstance(v, _CONTAINERS):
                out[k] = _copy_plain(v)
        return out
    if isinstance(value, list):
        return [_copy_plain(v) if isinstance(v, _CONTAINERS) else v for v in value]
    if isinstance(value, set):
        return set(value)
    return value


class Folio:
    """What the pages of one large folio share: the sums of their reference counts and
    map counts, kept as they change, so that ``folio_ref_count()`` and
    ``folio_large_mapcount()`` cost O(1) instead of O(nr); and which mms map it, as
    6.15's CONFIG_MM_ID tracks them (:meth:`mm_mapped`, :meth:`mm_unmapped`)."""

    __slots__ = ("head", "nr", "refs", "pins", "maps", "mm_ids", "mm_maps", "shared")

    def __init__(self, head: int, nr: int, refs: int = 0, pins: int = 0, maps: int = 0) -> None:
        self.head = head
        self.nr = nr
        self.refs = refs
        #: FOLL_PIN references on any of its pages (``folio->_pincount``)
        self.pins = pins
        #: the mapcounts of its pages, summed as they change (``folio_large_mapcount()``)
        self.maps = maps
        #: two mm slots (``folio->_mm_id[]``: an mm's id, 0 when free) and the mappings
        #: each slot's mm holds (``_mm_id_mapcount[]`` + 1)
        self.mm_ids = [0, 0]
        self.mm_maps = [0, 0]
        #: ``folio_maybe_mapped_shared()``: set once two mms map it, cleared only when
        #: one slot's mm is seen to hold every mapping -- an mm that mapped it while
        #: both slots were taken keeps it set until then
        self.shared = False

    def copy(self) -> Folio:
        new = Folio(self.head, self.nr, self.refs, self.pins, self.maps)
        new.mm_ids, new.mm_maps, new.shared = self.mm_ids.copy(), self.mm_maps.copy(), self.shared
        return new

    def mm_mapped(self, mm_id: int, n: int) -> None:
        """``n`` more mappings by mm ``mm_id`` (after ``maps`` counted them):
        ``folio_add_return_large_mapcount()``."""
        ids, counts = self.mm_ids, self.mm_maps
        if ids[0] == mm_id:
            counts[0] += n
        elif ids[1] == mm_id:
            counts[1] += n
        elif ids[0] == 0:
            ids[0], counts[0] = mm_id, n
            if self.maps != n:                  # others map it already
                self.shared = True
        elif ids[1] == 0:
            ids[1], counts[1] = mm_id, n
            self.shared = True                  # slot 0's mm maps it too

    def mm_unmapped(self, mm_id: int, n: int) -> None:
        """``n`` mappings fewer by mm ``mm_id`` (after ``maps`` counted them):
        ``folio_sub_return_large_mapcount()``."""
        ids, counts = self.mm_ids, self.mm_maps
        for i in (0, 1):
            if ids[i] == mm_id:
                counts[i] -= n
                if counts[i] > 0:
                    return
                ids[i], counts[i] = 0, 0
                break
        if self.maps in (counts[0], counts[1]):  # one slot's mm holds every mapping
            self.shared = False

    def __repr__(self) -> str:
        return (f"Folio(head={self.head}, nr={self.nr}, refs={self.refs}, pins={self.pins}, maps={self.maps}, "
                f"mm_ids={self.mm_ids}, mm_maps={self.mm_maps}, shared={self.shared})")


class Page:
    """A physical page (struct page / small folio).

    ``pins`` and ``gets`` are the exact numbers of FOLL_PIN and FOLL_GET references:
    engine-private truth for the oracle, which a realizable policy never reads (the
    kernel only has the fuzzy ``refcount >= GUP_PIN_COUNTING_BIAS`` test).
    ``attrs`` holds plugin attributes (and the engine's own keys, such as a large
    folio's) that differ from their default; ``flags`` the policy's flags that do, in a
    namespace of their own that no engine or plugin key shares.
    ``folio`` is set for a page of a large folio (see :meth:`Engine.alloc_folio`).
    """

    __slots__ = ("pfn", "content", "_refcount", "_mapcount", "anon", "zero", "pins", "gets", "attrs",
                 "flags", "folio")

    def __init__(self, pfn: int, content: int = ZERO_TOKEN, refcount: int = 0, mapcount: int = 0,
                 anon: bool = True, zero: bool = False, pins: int = 0, gets: int = 0,
                 attrs: dict[str, Any] | None = None, flags: dict[str, Any] | None = None) -> None:
        self.pfn = pfn
        self.content = content
        self._refcount = refcount
        self._mapcount = mapcount
        self.anon = anon
        self.zero = zero
        self.pins = pins
        self.gets = gets
        self.attrs: dict[str, Any] = {} if attrs is None else attrs
        self.flags: dict[str, Any] = {} if flags is None else flags
        self.folio: Folio | None = None

    @property
    def refcount(self) -> int:
        """This page's own reference count (``page_ref_count()``)."""
        return self._refcount

    @refcount.setter
    def refcount(self, value: int) -> None:
        folio = self.folio
        if folio is not None:
            folio.refs += value - self._refcount
        self._refcount = value

    @property
    def mapcount(self) -> int:
        """``page_mapcount()``: the page's PTE mappings (and PMD mappings of its folio)."""
        return self._mapcount

    @mapcount.setter
    def mapcount(self, value: int) -> None:
        folio = self.folio
        if folio is not None:
            folio.maps += value - self._mapcount
        self._mapcount = value

    def __repr__(self) -> str:
        return (f"Page(pfn={self.pfn}, content={self.content}, refcount={self._refcount}, "
                f"mapcount={self.mapcount}, anon={self.anon}, zero={self.zero}, pins={self.pins}, "
                f"gets={self.gets}, attrs={self.attrs}, flags={self.flags})")

    @staticmethod
    def fresh(pfn: int, anon: bool, attrs: dict[str, Any], folio: Folio | None) -> Page:
        """A page just allocated, holding one reference for its caller (an allocation
        makes many: not through ``__init__``)."""
        page = _new(Page)
        page.pfn = pfn
        page.content = ZERO_TOKEN
        page._refcount = 1
        page._mapcount = 0
        page.anon = anon
        page.zero = False
        page.pins = 0
        page.gets = 0
        page.attrs = attrs
        page.flags = {}
        page.folio = folio
        return page


_new = object.__new__


@dataclass(slots=True)
class Pte:
    """A page table entry.  Non-present entries (swap, migration) carry plugin attrs."""

    pfn: int
    present: bool = True
    writable: bool = False
    dirty: bool = False
    attrs: dict[str, Any] | None = None


@dataclass(slots=True)
class Vma:
    """A virtual memory area over page numbers ``[start, end)``.

    ``shmem`` names the shared-memory object backing a MAP_SHARED anonymous VMA
    (its pages are not PageAnon); private anonymous VMAs have ``shmem is None``.
    """

    start: int
    end: int
    shared: bool = False
    write: bool = True          # VM_WRITE
    may_write: bool = True      # VM_MAYWRITE
    dontcopy: bool = False      # VM_DONTCOPY (MADV_DONTFORK)
    wipeonfork: bool = False    # VM_WIPEONFORK
    softdirty: bool = True      # VM_SOFTDIRTY: cleared by clear_refs
    shmem: int | None = None
    pgoff: int = 0              # page offset of ``start`` in the shmem object
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_cow_mapping(self) -> bool:
        """``(flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE``."""
        return not self.shared and self.may_write

    @property
    def npages(self) -> int:
        return self.end - self.start

    def copy(self) -> Vma:
        new = _new(Vma)                 # not through __init__: a snapshot copies every VMA
        new.start = self.start
        new.end = self.end
        new.shared = self.shared
        new.write = self.write
        new.may_write = self.may_write
        new.dontcopy = self.dontcopy
        new.wipeonfork = self.wipeonfork
        new.softdirty = self.softdirty
        new.shmem = self.shmem
        new.pgoff = self.pgoff
        new.attrs = dict(self.attrs) if self.attrs else {}
        return new


@dataclass(slots=True)
class Mm:
    """An address space: VMAs sorted by start, a flat page table, sticky has_pinned;
    plugin attributes in ``attrs``, the policy's flags in ``flags`` (as :class:`Page`).
    ``clean``: the pages whose PTE clear_refs left without its soft-dirty bit, and that
    no write fault has marked since (soft-dirty tracking of private memory)."""

    vmas: list[Vma] = field(default_factory=list)
    ptes: dict[int, Pte] = field(default_factory=dict)
    has_pinned: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    clean: set[int] = field(default_factory=set)
    #: ``mm->mm_id``: the owning process's pid (what large folios track)
    mm_id: int = 0

    def find_vma(self, vpn: int) -> Vma | None:
        for vma in self.vmas:
            if vma.start <= vpn < vma.end:
                return vma
        return None

    def copy(self) -> Mm:
        new = _new(Mm)
        vmas = new.vmas = []
        for v in self.vmas:
            vmas.append(v.copy())
        ptes = new.ptes = {}
        # each PTE copied here, a store a field (not through __init__, no call a PTE:
        # a snapshot's hot loop)
        for k, p in self.ptes.items():
            c = ptes[k] = _new(Pte)
            c.pfn = p.pfn
            c.present = p.present
            c.writable = p.writable
            c.dirty = p.dirty
            c.attrs = None if p.attrs is None else dict(p.attrs)
        new.has_pinned = self.has_pinned
        new.mm_id = self.mm_id
        new.attrs = dict(self.attrs) if self.attrs else {}
        new.flags = dict(self.flags) if self.flags else {}
        new.clean = set(self.clean) if self.clean else set()
        return new


@dataclass(slots=True)
class Process:
    pid: int
    name: str
    mm: Mm
    alive: bool = True

    def copy(self) -> Process:
        new = _new(Process)
        new.pid = self.pid
        new.name = self.name
        new.mm = self.mm.copy()
        new.alive = self.alive
        return new


@dataclass(slots=True)
class GupRef:
    """A reference taken by get_user_pages (FOLL_GET) or pin_user_pages (FOLL_PIN).

    One entry of ``pfns`` per page of ``vpns``: the page the reference holds, ``count``
    times (a page vmsplice()d into a pipe N times holds N references).
    """

    rid: int
    owner: int
    vpns: tuple[int, ...]
    pfns: list[int]
    pin: bool
    write: bool = False
    longterm: bool = False
    live: bool = True
    count: int = 1

    def copy(self) -> GupRef:
        new = _new(GupRef)              # not through __init__: a snapshot copies every one
        new.rid = self.rid
        new.owner = self.owner
        new.vpns = self.vpns
        new.pfns = list(self.pfns)
        new.pin = self.pin
        new.write = self.write
        new.longterm = self.longterm
        new.live = self.live
        new.count = self.count
        return new


@dataclass(slots=True)
class Machine:
    """The whole simulated machine.  ``copy()`` is a snapshot; assignment restores it."""

    pages: dict[int, Page] = field(default_factory=dict)
    processes: dict[int, Process] = field(default_factory=dict)
    refs: dict[int, GupRef] = field(default_factory=dict)
    shmem: dict[int, dict[int, int]] = field(default_factory=dict)
    zero_pfn: int = 0
    next_pfn: int = 1
    next_pid: int = 1
    next_rid: int = 1
    next_vpn: int = 0x100
    next_token: int = 1
    fail_allocs: int = 0
    pressure: bool = False        # memory pressure: GFP_ATOMIC allocations fail
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def boot(cls) -> Machine:
        m = cls()
        m.pages[0] = Page(0, anon=False, zero=True, refcount=1)
        return m

    def copy(self) -> Machine:
        pages = {}
        folios: dict[int, Folio] = {}
        last: Folio | None = None
        last_copy: Folio | None = None
        # each page copied here, a store a field (assigning a tuple to attributes builds
        # and unpacks it), no call a page: a snapshot's hot loop
        for k, p in self.pages.items():
            c = pages[k] = _new(Page)
            c.pfn = p.pfn
            c.content = p.content
            c._refcount = p._refcount
            c._mapcount = p._mapcount
            c.anon = p.anon
            c.zero = p.zero
            c.pins = p.pins
            c.gets = p.gets
            c.attrs = p.attrs.copy() if p.attrs else {}
            c.flags = p.flags.copy() if p.flags else {}
            f = p.folio
            if f is None:
                c.folio = None
            elif f is last:                     # the next page of the same folio
                c.folio = last_copy
            else:
                g = folios.get(f.head)
                if g is None:
                    g = folios[f.head] = f.copy()
                c.folio = last_copy = g
                last = f
        new = _new(Machine)                     # not through __init__: explore copies many
        new.pages = pages
        # an exited process is never changed again: the copies share it
        processes = new.processes = {}
        for k, p in self.processes.items():
            processes[k] = p.copy() if p.alive else p
        refs = new.refs = {}
        for k, r in self.refs.items():
            refs[k] = r.copy()
        new.shmem = {k: dict(v) for k, v in self.shmem.items()} if self.shmem else {}
        new.zero_pfn = self.zero_pfn
        new.next_pfn = self.next_pfn
        new.next_pid = self.next_pid
        new.next_rid = self.next_rid
        new.next_vpn = self.next_vpn
        new.next_token = self.next_token
        new.fail_allocs = self.fail_allocs
        new.pressure = self.pressure
        new.attrs = copy_containers(self.attrs) if self.attrs else {}
        return new

    def canonical(self, rename_tokens: bool = True) -> tuple:
        """State as nested tuples, with pfns, pids, reference ids (and tokens) renamed in
        order of first appearance, so equal machines give equal values regardless of the
        order in which ids were handed out."""
        pfns: dict[int, int] = {self.zero_pfn: 0}
        tokens: dict[int, int] = {ZERO_TOKEN: 0}

        def pfn(x: int) -> int:
            return pfns.setdefault(x, len(pfns))

        def tok(x: int) -> int:
            return tokens.setdefault(x, len(tokens)) if rename_tokens else x

        procs = []
        pids = {}
        for i, p in enumerate(sorted(self.processes.values(), key=lambda p: p.pid)):
            pids[p.pid] = i
            mm = p.mm
            vmas = tuple((v.start, v.end, v.shared, v.write, v.may_write, v.dontcopy,
                          v.wipeonfork, v.softdirty, v.shmem, v.pgoff,
                          tuple(sorted(v.attrs.items())))
                         for v in mm.vmas)
            ptes = tuple((vpn, pfn(e.pfn) if e.present else -1, e.present, e.writable, e.dirty,
                          _frozen(e.attrs) if e.attrs else ())
                         for vpn, e in sorted(mm.ptes.items()))
            procs.append((p.name, p.alive, mm.has_pinned, vmas, ptes,
                          tuple(sorted(mm.attrs.items())), tuple(sorted(mm.flags.items())),
                          tuple(sorted(mm.clean))))
        refs = tuple((pids.get(r.owner, -1), r.vpns, tuple(pfn(x) for x in r.pfns), r.pin,
                      r.write, r.longterm, r.live, r.count)
                     for r in sorted(self.refs.values(), key=lambda r: r.rid))
        shm = tuple((k, tuple((off, pfn(x)) for off, x in sorted(v.items())))
                    for k, v in sorted(self.shmem.items()))
        pages = tuple(sorted(
            (pfns[p.pfn], tok(p.content), p.refcount, p.mapcount, p.anon, p.zero, p.pins,
             p.gets, _frozen(p.attrs), tuple(sorted(p.flags.items())))
            for p in self.pages.values() if p.pfn in pfns))
        orphans = len(self.pages) - len(pages)
        return (tuple(procs), refs, shm, pages, orphans, self.fail_allocs, self.pressure,
                _frozen(self.attrs))

    def state_hash(self) -> int:
        return hash(self.canonical())
