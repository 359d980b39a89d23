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
from typing import TYPE_CHECKING, Any

from ..engine.model import ZERO_TOKEN, _frozen

if TYPE_CHECKING:
    from ..run import Runner

_DEVICE_VIA_PIN = "device via pin"


def process_order(runners: Sequence[Runner]) -> list[str]:
    """The live processes' names, in canonical order: by what they map and how (no id
    enters the key), then by when they were made."""
    first = runners[0]
    keyed = []
    for n, (name, pid) in enumerate(first.pids.items()):
        key = []
        for r in runners:
            proc = r.engine.machine.processes.get(r.pids.get(name, -1))
            if proc is None or not proc.alive:
                break
            pages = r.engine.machine.pages
            key.append(tuple(sorted(
                (vpn, e.present, e.writable, e.dirty,
                 pages[e.pfn].mapcount if e.present and e.pfn in pages else -1)
                for vpn, e in proc.mm.ptes.items())))
            key.append(len(proc.mm.vmas))
        else:
            keyed.append((tuple(key), n, name))
    keyed.sort()
    return [name for _, _, name in keyed]


def canonical(runners: Sequence[Runner]) -> tuple:
    """The canonical form of one or more runs taking the same steps (``diverge`` runs
    one per policy): each run's, with the processes visited in one shared order."""
    order = process_order(runners)
    return tuple(_one(r, order) for r in runners)


def fingerprint(runners: Sequence[Runner]) -> int:
    """A 64-bit fingerprint of :func:`canonical`."""
    return hash(canonical(runners)) & 0xFFFF_FFFF_FFFF_FFFF


def _one(runner: Runner, order: list[str]) -> tuple:
    machine = runner.engine.machine
    oracle = runner.oracle
    pages = machine.pages
    zero_pfn = machine.zero_pfn
    pfns: dict[int, int] = {zero_pfn: 0}
    cells: dict[int, int] = {}
    cell_objs: list[Any] = []
    plugin_state = any(machine.attrs.values()) or any(oracle.state.values())
    safe = _safe_page_attrs(runner)
    procs = []
    pid_index: dict[int, int] = {}
    for name in order:
        pid = runner.pids[name]
        pid_index[pid] = len(pid_index)
        mm = machine.processes[pid].mm
        vmas = []
        for v in mm.vmas:
            if v.attrs:
                plugin_state = True
            vmas.append((v.start, v.end, v.shared, v.write, v.may_write, v.dontcopy, v.wipeonfork,
                         v.softdirty, v.shmem, v.pgoff, _frozen(v.attrs) if v.attrs else ()))
        ptes = []
        for vpn in sorted(mm.ptes):
            e = mm.ptes[vpn]
            if e.attrs:
                plugin_state = True
            pfn = pfns.setdefault(e.pfn, len(pfns)) if e.present else -1
            ptes.append((vpn, pfn, e.writable, e.dirty, _frozen(e.attrs) if e.attrs else ()))
        space = oracle.space.get(pid, {})
        logical = []
        for vpn in sorted(space):
            c = space[vpn]
            i = cells.get(id(c))
            if i is None:
                i = cells[id(c)] = len(cell_objs)
                cell_objs.append(c)
            logical.append((vpn, i))
        procs.append((tuple(vmas), tuple(ptes), mm.has_pinned,
                      _frozen(mm.attrs) if mm.attrs else (), tuple(logical),
                      tuple(sorted(oracle.dontfork.get(pid, ()))),
                      tuple(sorted(oracle.wipeonfork.get(pid, ())))))
    # references: by what they hold, the oracle's view of each beside the engine's
    refs = []
    for rid, r in machine.refs.items():
        o = oracle.refs.get(rid)
        refs.append((pid_index.get(r.owner, -1), r.vpns,
                     tuple(pfns.get(x, -1) for x in r.pfns), r.pin, r.write, r.longterm, r.count,
                     rid, r.pfns, o))
    refs.sort(key=lambda t: t[:7])
    ref_forms = []
    for owner, vpns, _, pin, write, longterm, count, rid, raw, o in refs:
        held = tuple(pfns.setdefault(x, len(pfns)) for x in raw)
        ocells = ()
        if o is not None:
            oc = []
            for c in o.cells:
                i = cells.get(id(c))
                if i is None:
                    i = cells[id(c)] = len(cell_objs)
                    cell_objs.append(c)
                oc.append(i)
            ocells = tuple(oc)
        ref_forms.append((owner, vpns, held, pin, write, longterm, count, ocells))
    shm = []
    for k in sorted(machine.shmem):
        obj = machine.shmem[k]
        shm.append((k, tuple((off, pfns.setdefault(obj[off], len(pfns))) for off in sorted(obj))))
    # pages, in order of first appearance; then what no mapping or reference holds
    tokens: dict[int, int] = {ZERO_TOKEN: 0}
    page_forms = []
    for raw, i in pfns.items():
        p = pages.get(raw)
        if p is None:
            page_forms.append(None)
            continue
        if p.attrs and not safe.issuperset(p.attrs):
            plugin_state = True
        page_forms.append((tokens.setdefault(p.content, len(tokens)), p.refcount, p.mapcount, p.anon,
                           p.zero, p.pins, p.gets, _frozen(p.attrs) if p.attrs else ()))
    orphans = []
    if len(pages) != len(pfns):
        for raw in sorted(pages):
            if raw not in pfns:
                p = pages[raw]
                orphans.append((tokens.setdefault(p.content, len(tokens)), p.refcount, p.mapcount,
                                _frozen(p.attrs) if p.attrs else ()))
    held = [t for t in tokens if t != ZERO_TOKEN]
    plugin_logical = _freeze_cells(oracle.state, cells, cell_objs) if plugin_state else ()
    cell_forms = []
    origin = oracle.origin
    for c in cell_objs:
        cur = c.tokens[-1]
        cur_i = tokens.setdefault(cur, len(tokens))
        seen = tuple(tokens[t] for t in held if t != cur and c.has(t))
        cell_forms.append((cur_i, seen, c.shared, origin.get(cur, "").startswith(_DEVICE_VIA_PIN)))
    form = (tuple(procs), tuple(ref_forms), tuple(shm), tuple(page_forms), tuple(orphans),
            tuple(cell_forms), machine.fail_allocs, machine.pressure)
    if plugin_state:
        form += (_frozen(machine.attrs), plugin_logical, tuple(pfns), tuple(tokens))
    return form


def _freeze_cells(value: Any, cells: dict[int, int], cell_objs: list[Any]) -> Any:
    """A plugin's oracle state, hashable, with its cells numbered as the core's."""
    if isinstance(value, dict):
        return tuple(sorted(((k, _freeze_cells(v, cells, cell_objs)) for k, v in value.items()),
                            key=repr))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_cells(v, cells, cell_objs) for v in value)
    if isinstance(value, set):
        return tuple(sorted(value, key=repr))
    if hasattr(value, "tokens") and hasattr(value, "cid"):     # an oracle Cell
        i = cells.get(id(value))
        if i is None:
            i = cells[id(value)] = len(cell_objs)
            cell_objs.append(value)
        return ("cell", i)
    return value


_SAFE: dict[int, frozenset[str]] = {}


def _safe_page_attrs(runner: Runner) -> frozenset[str]:
    """Page attributes that are policy flags (booleans and small values, never ids)."""
    registry = runner.session.registry
    safe = _SAFE.get(id(registry))
    if safe is None:
        safe = _SAFE[id(registry)] = frozenset(
            a.name for a in registry.attributes.values() if a.owner == "page" and a.flag)
    return safe
