"""One canonical form of a run in progress -- the engine's machine *and* the oracle's
logical memory together -- and its 64-bit fingerprint.

Two states get the same form only when they behave the same from here on, whatever the
path that led to them:

* pfns, written values (tokens), the oracle's cells and reference ids are renamed in
  order of first appearance, engine and oracle alike;
* exited processes are dropped; processes are visited by name, in the order of a key
  that no id enters (what each maps, and how), so interchangeable processes fold
  together;
* of each cell's history only the values some page still holds are kept: the others
  can never be seen again, and keeping them would make every write a new state.

Plugin state (``machine.attrs``, ``oracle.state``, a PTE's or page's attributes) is
taken as it is; since it may hold pfns and tokens under names the core cannot know,
the renaming tables themselves then join the form (sound, with less folding).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

from ..engine.model import ZERO_TOKEN, _frozen

if TYPE_CHECKING:
    from ..run import Runner

_DEVICE_VIA_PIN = "device via pin"
# what the form takes of a VMA (a PTE's and a page's fields are taken in place)
_vma_key = attrgetter("start", "end", "shared", "write", "may_write", "dontcopy", "wipeonfork",
                      "softdirty", "shmem", "pgoff")
_first = itemgetter(0)
#: an mm's attributes, policy flags and soft-dirty-clean pages, when it has none
_NO_MM_STATE = (None, None, None)
#: a process's MADV_DONTFORK and MADV_WIPEONFORK pages, when it has none
_NO_MARKS = ((), ())


def process_order(runners: Sequence[Runner]) -> list[str]:
    """The live processes' names, in canonical order: by what they map and how (no id
    enters the key), then by when they were made."""
    first = runners[0]
    if len(first.pids) == 1 and len(runners) == 1:
        name, pid = next(iter(first.pids.items()))
        proc = first.engine.machine.processes.get(pid)
        return [name] if proc is not None and proc.alive else []
    keyed = []
    for n, name in enumerate(first.pids):
        key = []
        for r in runners:
            proc = r.engine.machine.processes.get(r.pids.get(name, -1))
            if proc is None or not proc.alive:
                break
            ptes = proc.mm.ptes
            key.append((len(proc.mm.vmas), tuple([(vpn, e.present, e.writable) for vpn, e in
                                                  (sorted(ptes.items()) if len(ptes) > 1 else ptes.items())])))
        else:
            keyed.append((key, n, name))
    if len(keyed) > 1:
        keyed.sort()
    return [name for _, _, name in keyed]


def canonical(runners: Sequence[Runner | None]) -> tuple:
    """The canonical form of one or more runs taking the same steps (``diverge`` runs
    one per policy): each run's, with the processes visited in one shared order.  A
    policy riding along the first run (None) is in the first run's state: its form is
    that one, as it would be were it run apart."""
    first = runners[0]
    if len(runners) == 1:
        return (_one(first, process_order(runners)),)  # type: ignore[arg-type]
    resolved = [first if r is None else r for r in runners]
    order = process_order(resolved)  # type: ignore[arg-type]
    mine = _one(first, order)  # type: ignore[arg-type]
    return tuple(mine if r is None or r is first else _one(r, order) for r in runners)


def fingerprint(runners: Sequence[Runner | None]) -> int:
    """A 64-bit fingerprint of :func:`canonical`."""
    if len(runners) == 1:                   # canonical(), for explore's one run
        return hash((_one(runners[0], process_order(runners)),)) & 0xFFFF_FFFF_FFFF_FFFF  # type: ignore[arg-type]
    return hash(canonical(runners)) & 0xFFFF_FFFF_FFFF_FFFF


def plugins_keep_state(runner: Runner) -> bool:
    """Do plugins keep state of their own in the machine or the oracle of ``runner``?
    (:func:`_one` asks the same, inline.)"""
    m, o = runner.engine.machine, runner.oracle
    return bool(m.attrs and any(m.attrs.values()) or o.state and any(o.state.values()))


def renames_freely(runner: Runner) -> bool:
    """Does the form of ``runner``'s state rename its pfns and tokens without keeping the
    raw ones, no plugin state being there to hold them (see the module's docstring)?
    (Asked of every page and live process, it may say no where the form would not.)"""
    if plugins_keep_state(runner):
        return False
    m = runner.engine.machine
    for pid in runner.pids.values():
        proc = m.processes.get(pid)
        if proc is not None and proc.alive and (any(v.attrs for v in proc.mm.vmas)
                                                or any(e.attrs for e in proc.mm.ptes.values())):
            return False
    return not any(p.attrs for p in m.pages.values())


def _one(runner: Runner, order: list[str]) -> tuple:
    """One run's form, flat: counts before each list keep it unambiguous."""
    machine = runner.engine.machine
    oracle = runner.oracle
    pages = machine.pages
    pfns: dict[int, int] = {machine.zero_pfn: 0}
    # an oracle cell -> its number (cells hash by identity)
    cells: dict[Any, int] = {}
    cell_objs: list[Any] = []
    plugin_state = bool(machine.attrs and any(machine.attrs.values())     # plugins_keep_state()
                        or oracle.state and any(oracle.state.values()))
    out: list[Any] = []
    add, extend = out.append, out.extend
    pid_index: dict[int, int] = {}
    processes, pids = machine.processes, runner.pids
    space_of = oracle.space.get
    dontfork, wipeonfork = oracle.dontfork, oracle.wipeonfork
    # (the common case of each optional part, nothing there, is one constant)
    for name in order:
        pid = pids[name]
        pid_index[pid] = len(pid_index)
        mm = processes[pid].mm
        vmas = mm.vmas
        add(len(vmas))
        for v in vmas:
            add(_vma_key(v))
            if v.attrs:
                plugin_state = True
                add(_frozen(v.attrs))
        ptes = mm.ptes
        add(len(ptes))
        for vpn, e in (sorted(ptes.items()) if len(ptes) > 1 else ptes.items()):
            if e.present:
                pfn = pfns.get(e.pfn)
                if pfn is None:
                    pfn = pfns[e.pfn] = len(pfns)
            else:
                pfn = -1
            add((vpn, pfn, e.writable, e.dirty))
            if e.attrs:
                plugin_state = True
                add(_frozen(e.attrs))
        add(mm.has_pinned)
        if mm.attrs or mm.flags or mm.clean:
            extend((_frozen(mm.attrs) if mm.attrs else None,
                    tuple(sorted(mm.flags.items())) if mm.flags else None,
                    tuple(sorted(mm.clean)) if mm.clean else None))
        else:
            extend(_NO_MM_STATE)
        space = space_of(pid)
        if space:
            add(len(space))
            for vpn, c in (sorted(space.items()) if len(space) > 1 else space.items()):
                i = cells.get(c)
                if i is None:
                    i = cells[c] = len(cell_objs)
                    cell_objs.append(c)
                extend((vpn, i))
        else:
            add(0)
        if dontfork or wipeonfork:
            df, wf = dontfork.get(pid), wipeonfork.get(pid)
            extend((tuple(sorted(df)) if df else (), tuple(sorted(wf)) if wf else ()))
        else:
            extend(_NO_MARKS)
    # references: by what they hold, the oracle's view of each beside the engine's
    if machine.refs:
        refs = []
        zero = machine.zero_pfn
        oracle_ref = oracle.refs.get
        for rid, r in machine.refs.items():
            # FOLL_LONGTERM matters after GUP only to tell a short-term R/O pin of the
            # shared zero page (explore's known ones, see Verdict.pins_zero_page): no
            # decision reads a reference's flags, and its pages never change
            longterm = r.longterm and r.pin and not r.write and zero in r.pfns
            refs.append(((pid_index.get(r.owner, -1), r.vpns, tuple([pfns.get(x, -1) for x in r.pfns]),
                          r.pin, r.write, longterm, r.count), r.pfns, oracle_ref(rid)))
        if len(refs) > 1:
            refs.sort(key=_first)
        add(len(refs))
        for key, raw, o in refs:
            extend(key[:2])
            extend(key[3:])
            for x in raw:
                pfn = pfns.get(x)
                if pfn is None:
                    pfn = pfns[x] = len(pfns)
                add(pfn)
            if o is not None:
                for c in o.cells:
                    i = cells.get(c)
                    if i is None:
                        i = cells[c] = len(cell_objs)
                        cell_objs.append(c)
                    add(i)
    else:
        add(0)
    shmem = machine.shmem
    add(len(shmem))
    if shmem:
        for k in sorted(shmem):
            obj = shmem[k]
            extend((k, len(obj)))
            for off in sorted(obj):
                x = obj[off]
                pfn = pfns.get(x)
                if pfn is None:
                    pfn = pfns[x] = len(pfns)
                extend((off, pfn))
    # pages, in order of first appearance; then what no mapping or reference holds
    tokens: dict[int, int] = {ZERO_TOKEN: 0}
    folios: set[int] = set()
    add(len(pfns))
    for raw in pfns:
        p = pages.get(raw)
        if p is None:
            add(None)
            continue
        content = p.content
        t = tokens.get(content)
        if t is None:
            t = tokens[content] = len(tokens)
        add((t, p._refcount, p._mapcount, p.anon, p.zero, p.pins, p.gets))
        f = p.folio
        if f is not None and id(f) not in folios:   # which mms its slots track (by name)
            folios.add(id(f))
            extend((tuple([pid_index.get(x, -1) if x else None for x in f.mm_ids]), tuple(f.mm_maps), f.shared))
        if p.attrs:
            plugin_state = True
            add(_frozen(p.attrs))
        if p.flags:         # a policy's flags hold true/false and numbers, never ids
            add(tuple(sorted(p.flags.items())))
    if len(pages) != len(pfns):
        for raw in sorted(pages):
            if raw not in pfns:
                p = pages[raw]
                extend(("orphan", tokens.setdefault(p.content, len(tokens)), p.refcount, p.mapcount,
                        _frozen(p.attrs) if p.attrs else None, tuple(sorted(p.flags.items()))))
    held = [t for t in tokens if t != ZERO_TOKEN]
    plugin_logical = _freeze_cells(oracle.state, cells, cell_objs) if plugin_state else ()
    if oracle.following:            # private views still showing their file page
        follows = []
        for view, source, n, _, _ in oracle.following.values():
            if view in cells:
                i = cells.get(source)
                if i is None:
                    i = cells[source] = len(cell_objs)
                    cell_objs.append(source)
                follows.append((cells[view], i, len(view.tokens) == n))
        add(tuple(sorted(follows)))
    add(len(cell_objs))
    origin = oracle.origin
    for c in cell_objs:
        own = c.tokens
        cur = own[-1]
        cur_i = tokens.get(cur)
        if cur_i is None:
            cur_i = tokens[cur] = len(tokens)
        writer = origin.get(cur)
        extend((cur_i, c.shared, writer is not None and writer.startswith(_DEVICE_VIA_PIN)))
        if held:
            base = c.base
            for t in held:              # held tokens the cell once had (Cell.has, its own first)
                if t != cur and (t in own or (base is not None and c.has(t))):
                    add(tokens[t])
        add(-1)
    extend((machine.fail_allocs, machine.pressure))
    if plugin_state:
        extend((_frozen(machine.attrs), plugin_logical, tuple(pfns), tuple(tokens)))
    return tuple(out)


def _freeze_cells(value: Any, cells: dict[Any, int], cell_objs: list[Any]) -> Any:
    """A plugin's oracle state, hashable, with its cells numbered as the core's."""
    if isinstance(value, dict):
        return tuple(sorted(((k, _freeze_cells(v, cells, cell_objs)) for k, v in value.items()),
                            key=repr))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_cells(v, cells, cell_objs) for v in value)
    if isinstance(value, set):
        return tuple(sorted(value, key=repr))
    if hasattr(value, "tokens") and hasattr(value, "cid"):     # an oracle Cell
        i = cells.get(value)
        if i is None:
            i = cells[value] = len(cell_objs)
            cell_objs.append(value)
        return ("cell", i)
    return value
