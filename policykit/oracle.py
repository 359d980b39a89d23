"""The oracle: judges a run against POSIX fork semantics and pin semantics, knowing
nothing of the policy.

It keeps a *logical* model of memory, one cell per (process, page), that follows what
the operations mean rather than what the engine did:

* ``fork`` gives the child a new cell per private page, starting from the parent's
  value (the child's history shares the parent's up to the fork); shared pages keep
  one cell for both; MADV_DONTFORK pages are absent, MADV_WIPEONFORK ones start zeroed;
* every write (by a CPU or by a device through a reference) appends a fresh token to
  the cell it logically lands in;
* a reference is bound to the cells of its owner at GUP time.

Every observation (a read, a device read, the end-of-run audit of each live page, the
owner's view right after a device write) is compared with the cell: a token from
outside the cell's history is a ``leak``; an older token of the cell is a
``pin-incoherent`` (a pin involved) or a ``lost-write``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engine.mm import positional_caller
from .engine.model import ZERO_TOKEN, copy_containers

if TYPE_CHECKING:
    import pluggy

    from .engine.mm import Engine, Outcome
    from .scenario.model import Step


#: the oracle's judges of each core operation (``_op_<name>``), per class
_HANDLERS: dict[type, dict[str, Callable[..., None]]] = {}
#: operations whose failure is reported (fork-failed, gup-failed)
_AVAILABILITY = frozenset({"fork", "fork_children", "gup", "pin", "vmsplice"})


@dataclass(frozen=True)
class Violation:
    """One violation: class, the step (0-based, None for the end-of-run audit) and its
    line, what was seen and what should have been."""

    cls: str
    step: int | None
    line: int | None
    detail: str
    seen: str = ""
    expected: str = ""

    def where(self) -> str:
        return f"line {self.line}" if self.line else "end of run"


_new = object.__new__


class Cell:
    """The logical content of one page of one process (or of one shared page)."""

    __slots__ = ("cid", "tokens", "base", "base_len", "mappers", "shared")

    def __init__(self, cid: int, base: Cell | None = None, shared: bool = False) -> None:
        self.cid = cid
        self.base = base
        self.base_len = len(base.tokens) if base is not None else 0
        self.tokens = [base.tokens[-1]] if base is not None else [ZERO_TOKEN]
        self.mappers = 1
        self.shared = shared

    @property
    def current(self) -> int:
        return self.tokens[-1]

    def has(self, token: int) -> bool:
        """Did this cell ever hold ``token``, counting the history inherited at fork?"""
        if token == ZERO_TOKEN or token in self.tokens:
            return True
        cell, limit = self.base, self.base_len
        while cell is not None:
            tokens = cell.tokens
            if token in tokens and tokens.index(token) < limit:
                return True
            cell, limit = cell.base, cell.base_len
        return False


def _copy_cell(c: Cell, memo: dict[int, Cell]) -> Cell:
    """``c``'s copy in a snapshot, made once (``memo``: id of a cell -> its copy), so
    that cells processes share, and those references are bound to, stay shared."""
    n = memo.get(id(c))
    if n is None:
        n = memo[id(c)] = _new(Cell)
        n.cid = c.cid
        n.tokens = c.tokens.copy()
        n.base = c.base
        n.base_len = c.base_len
        n.mappers = c.mappers
        n.shared = c.shared
    return n


@dataclass(slots=True)
class _Ref:
    name: str
    owner: int
    vpns: tuple[int, ...]
    cells: list[Cell]
    pin: bool
    write: bool


class Oracle:
    """Follows a run step by step; collects :class:`Violation` s in ``violations``."""

    def __init__(self, engine: Engine, pm: pluggy.PluginManager | None = None) -> None:
        self.engine = engine
        self.pm = pm
        self.violations: list[Violation] = []
        self.space: dict[int, dict[int, Cell]] = {}
        #: each process's name (this table, the two below and ``_regions`` are replaced
        #: when they change, never changed: copies share them)
        self.names: dict[int, str] = {}
        #: each process's pages under MADV_DONTFORK / MADV_WIPEONFORK
        self.dontfork: dict[int, frozenset[int]] = {}
        self.wipeonfork: dict[int, frozenset[int]] = {}
        self.refs: dict[int, _Ref] = {}
        self.origin: dict[int, str] = {}
        self._seen: set[tuple[str, int]] = set()
        self._next_cid = 0
        self._step = 0
        self._line: int | None = None
        self._regions: dict[int, str] = {}          # region base vpn -> region name
        #: room for plugins' own logical state
        self.state: dict[str, Any] = {}
        #: (class, value seen, value expected) of what an audit of the state finds (kept
        #: by explore, which audits after every step and reports only what is new)
        self.audited: frozenset[tuple[str, str, str]] = frozenset()
        #: id(view) -> (view, source, tokens the view had, pid, vpn): private views that
        #: still show their source's current value (see :meth:`follow`)
        self.following: dict[int, tuple[Cell, Cell, int, int, int]] = {}
        self._plugin_checks = positional_caller(pm, "policykit_oracle_step") if pm is not None else None

    def rebind(self, pm: pluggy.PluginManager) -> None:
        """Ask the oracle checks of ``pm``'s plugins from now on."""
        self.pm = pm
        self._plugin_checks = positional_caller(pm, "policykit_oracle_step")

    def copy(self, engine: Engine, fresh: bool = False) -> Oracle:
        """A snapshot following ``engine`` (a copy of this oracle's engine): cells are
        copied once each, so the cells that processes share, and those references are
        bound to, stay shared in the copy.  A cell's inherited history (``base``) is
        shared with this oracle: it is never changed once a child cell starts from it.
        ``fresh``: the copy starts with no violations reported."""
        new = _new(Oracle)
        memo: dict[int, Cell] = {}
        new.engine = engine
        new.pm = self.pm
        space = new.space = {}
        for pid, cells in self.space.items():
            mine = space[pid] = {}
            # _copy_cell(), unrolled: a snapshot's hot loop (a call a cell costs +3% a copy)
            for vpn, c in cells.items():
                n = memo.get(id(c))
                if n is None:
                    n = memo[id(c)] = _new(Cell)
                    n.cid = c.cid
                    n.tokens = c.tokens.copy()
                    n.base = c.base
                    n.base_len = c.base_len
                    n.mappers = c.mappers
                    n.shared = c.shared
                mine[vpn] = n
        # the name and mark tables are replaced when they change, never changed: shared
        new.names, new.dontfork, new.wipeonfork = self.names, self.dontfork, self.wipeonfork
        refs = new.refs = {}
        for rid, r in self.refs.items():
            n = refs[rid] = _new(_Ref)          # not through __init__: explore copies many
            n.name = r.name
            n.owner = r.owner
            n.vpns = r.vpns
            n.cells = [_copy_cell(c, memo) for c in r.cells]
            n.pin = r.pin
            n.write = r.write
        new.origin = self.origin.copy()
        if fresh:
            new.violations = []
            new._seen = set()
        else:
            new.violations = self.violations.copy()
            new._seen = self._seen.copy()
        new._next_cid = self._next_cid
        new._step = self._step
        new._line = self._line
        new._regions = self._regions
        new.state = copy_containers(self.state, lambda v: _copy_cell(v, memo) if isinstance(v, Cell) else v) \
            if self.state else {}
        new._plugin_checks = self._plugin_checks
        new.audited = self.audited
        following = new.following = {}
        for view, source, n, pid, vpn in self.following.values():
            v = _copy_cell(view, memo)
            following[id(v)] = (v, _copy_cell(source, memo), n, pid, vpn)
        return new

    # -- reporting ---------------------------------------------------------------------

    def report(self, cls: str, detail: str, seen: str = "", expected: str = "",
               key: int | None = None) -> None:
        """Record a violation of ``cls`` at the current step, once per (class, key)."""
        if key is not None:
            if (cls, key) in self._seen:
                return
            self._seen.add((cls, key))
        step = None if self._line is None else self._step
        self.violations.append(Violation(cls, step, self._line, detail, seen, expected))

    def describe(self, token: int) -> str:
        if token == ZERO_TOKEN:
            return "zero-fill"
        return f"#{token} ({self.origin.get(token, 'unknown writer')})"

    def where(self, pid: int, vpn: int) -> str:
        base = max((b for b in self._regions if b <= vpn), default=None)
        name = self._regions.get(base) if base is not None else None
        page = f"{name}[{vpn - base}]" if name is not None and base is not None else f"page {vpn:#x}"
        return f"{self.names.get(pid, pid)}:{page}"

    def judge(self, cell: Cell, seen: int, who: Callable[[], str], exact: bool, pin: bool = False) -> None:
        """Compare an observation with the cell.  ``exact``: must be the current value
        (otherwise any value the cell held is acceptable); ``pin``: seen through a pin.
        ``who`` names the observer, for the message (called only on a violation)."""
        if seen == cell.current or (not exact and cell.has(seen)):
            return
        who = who()
        if cell.has(seen):
            last = self.origin.get(cell.current, "")
            cls = "pin-incoherent" if pin or last.startswith("device via pin") else "lost-write"
            detail = f"{who} saw an older value"
        else:
            cls = "leak"
            detail = f"{who} saw data written outside its memory"
        self.report(cls, detail, self.describe(seen), self.describe(cell.current), key=cell.cid)

    # -- the logical model ---------------------------------------------------------------

    def _cell(self, base: Cell | None = None, shared: bool = False) -> Cell:
        self._next_cid += 1
        return Cell(self._next_cid, base, shared)

    def _detach(self, pid: int, vpns: Any) -> None:
        space = self.space[pid]
        for vpn in vpns:
            cell = space.pop(vpn, None)
            if cell is not None:
                cell.mappers -= 1

    def new_cell(self, token: int = ZERO_TOKEN, base: Cell | None = None, shared: bool = False) -> Cell:
        """A logical page: starting from ``base``'s value (its history inherited), or
        holding ``token``.  ``shared`` cells are one for every process that maps them."""
        cell = self._cell(base, shared)
        if base is None:
            cell.tokens = [token]
        cell.mappers = 0
        return cell

    def map_fresh(self, pid: int, vpns: Iterable[int], shared: bool = False) -> None:
        """Fresh memory (zeros) at ``vpns``, where the process mapped nothing: a new cell
        for each page (``mmap`` of a region)."""
        space = self.space[pid]
        cid = self._next_cid
        for vpn in vpns:
            cid += 1
            cell = _new(Cell)
            cell.cid = cid
            cell.base = None
            cell.base_len = 0
            cell.tokens = [ZERO_TOKEN]
            cell.mappers = 1
            cell.shared = shared
            space[vpn] = cell
        self._next_cid = cid

    def name_region(self, base: int, name: str) -> None:
        """Name the region starting at page ``base`` in messages (``buf[2]``)."""
        self._regions = {**self._regions, base: name}

    def map_cell(self, pid: int, vpn: int, cell: Cell) -> None:
        """The process's memory at ``vpn`` is now ``cell``."""
        old = self.space[pid].get(vpn)
        if old is not None:
            old.mappers -= 1
        cell.mappers += 1
        self.space[pid][vpn] = cell

    def forget(self, pid: int, vpn: int) -> None:
        """The process no longer has memory at ``vpn`` (it was taken away by its own doing,
        such as truncating a file it maps): nothing there is judged any more."""
        self._detach(pid, [vpn])

    def follow(self, pid: int, vpn: int, source: Cell) -> None:
        """The process's private view of a file page at ``vpn`` shows ``source``'s current
        value while the process maps the page cache page: MAP_PRIVATE leaves it unspecified
        when the private copy is made, so the oracle takes the kernel's moment (the first
        write, a FOLL_WRITE GUP, an unshare).  A child's view, made at fork, follows too."""
        view = self.space[pid][vpn]
        view.tokens, view.base, view.base_len = [source.tokens[-1]], source, len(source.tokens)
        self.following[id(view)] = (view, source, 1, pid, vpn)

    def _refresh_views(self) -> None:
        """Views the process still maps the page cache page for show their source's value
        as it is now; the others are the process's own from here on."""
        processes, pages = self.engine.machine.processes, self.engine.machine.pages
        for key, (view, source, n, pid, vpn) in list(self.following.items()):
            pte = processes[pid].mm.ptes.get(vpn) if processes[pid].alive else None
            copied = pte is not None and pte.present and pages[pte.pfn].anon
            if len(view.tokens) != n or view.mappers <= 0 or copied or self.space[pid].get(vpn) is not view:
                del self.following[key]
            elif view.tokens[-1] != source.tokens[-1]:
                self.follow(pid, vpn, source)

    def record_write(self, pid: int, vpn: int, token: int, who: str) -> None:
        """A plugin's operation wrote ``token`` into the process's memory at ``vpn``: the
        logical model takes it as the process's own write.  Call it from
        ``policykit_oracle_step``."""
        self.space[pid][vpn].tokens.append(token)
        self.origin.setdefault(token, f"{who} at line {self._line}")

    def attached(self, ref: _Ref, i: int) -> bool:
        """Is the i-th cell of the reference still its owner's memory at that address?"""
        return self.space.get(ref.owner, {}).get(ref.vpns[i]) is ref.cells[i]

    def step(self, index: int, step: Step, args: dict[str, Any], outcome: Outcome) -> None:
        """Judge one step that ran (``outcome.ok`` false: it failed as the kernel would)."""
        self._step, self._line = index, step.line
        handlers = _HANDLERS.get(type(self))
        if handlers is None:
            handlers = _HANDLERS[type(self)] = {name[4:]: getattr(type(self), name) for name in dir(type(self))
                                                if name.startswith("_op_")}
        handler = handlers.get(step.op)
        # a failed step changed nothing, but a failed fork or GUP is itself a violation
        if handler is not None and (outcome.ok or step.op in _AVAILABILITY):
            handler(self, step, args, outcome)
        if self._plugin_checks is not None:
            for found in self._plugin_checks(self, step, outcome, args):
                self.violations.extend(found or ())
        if self.following:
            self._refresh_views()

    def _op_spawn(self, step: Step, a: dict, out: Outcome) -> None:
        pid = out.result
        self.space[pid] = {}
        self.names = {**self.names, pid: step.result}  # type: ignore[dict-item]
        self.dontfork = {**self.dontfork, pid: frozenset()}
        self.wipeonfork = {**self.wipeonfork, pid: frozenset()}

    def _op_mmap(self, step: Step, a: dict, out: Outcome) -> None:
        pid, base = a["process"], out.result
        self.name_region(base, step.result)  # type: ignore[arg-type]
        self.map_fresh(pid, range(base, base + a["pages"]), a["sharing"] == "shared")  # type: ignore[operator]

    def _op_write(self, step: Step, a: dict, out: Outcome) -> None:
        pid = a["process"]
        space, origin = self.space[pid], self.origin
        said = f"written by {self.names[pid]} at line {step.line}"     # one string for the step's pages
        for vpn, tok in zip(a["region"], out.tokens):
            space[vpn].tokens.append(tok)
            origin[tok] = said
        clean = self.engine.machine.processes[pid].mm.clean
        if clean:
            self._lost_dirty(pid, [vpn for vpn in a["region"] if vpn in clean])

    def _lost_dirty(self, pid: int, vpns: list[int]) -> None:
        """The process wrote these pages without a fault since clear_refs: their PTEs are
        still clean, so soft-dirty tracking misses the write (judged on small pages: a
        huge page's one soft-dirty bit is not modelled)."""
        m = self.engine.machine
        ptes = m.processes[pid].mm.ptes
        for vpn in vpns:
            pte = ptes.get(vpn)
            page = m.pages.get(pte.pfn) if pte is not None and pte.present else None
            if page is None or page.folio is not None or page.attrs:
                continue
            self.report("lost-dirty", f"{self.where(pid, vpn)} was written without a fault after clear_refs: "
                        "its PTE is not soft-dirty, and tracking misses the write", key=-vpn)

    def _op_read(self, step: Step, a: dict, out: Outcome) -> None:
        pid = a["process"]
        space = self.space[pid]
        for vpn, tok in zip(a["region"], out.tokens):
            cell = space[vpn]
            if tok != cell.tokens[-1]:
                self.judge(cell, tok, lambda vpn=vpn: f"{self.where(pid, vpn)} read", exact=True)

    def _op_fork(self, step: Step, a: dict, out: Outcome) -> None:
        pid = a["process"]
        if not out.ok:
            self.report("fork-failed", f"fork of {self.names[pid]} failed: {out.errno} ({out.message})",
                        key=-step.line)
            return
        self._children(pid, [(out.result, step.result)])  # type: ignore[list-item]

    def _op_fork_children(self, step: Step, a: dict, out: Outcome) -> None:
        pid = a["process"]
        self._children(pid, [(child, f"{self.names[pid]}#{i}")
                             for i, child in enumerate(out.result or ())])  # type: ignore[union-attr]
        if not out.ok:
            self.report("fork-failed", f"fork of {self.names[pid]} failed: {out.errno} ({out.message})",
                        key=-step.line)

    def _children(self, pid: int, named: list[tuple[int, str]]) -> None:
        """Children of ``pid`` (pid and name each) start with its memory as it was at
        fork; the name and mark tables are replaced once for them all."""
        names, dontfork, wipeonfork = dict(self.names), dict(self.dontfork), dict(self.wipeonfork)
        for child, name in named:
            space = self._child(pid, child)
            names[child] = name
            dontfork[child] = frozenset()
            wipeonfork[child] = self.wipeonfork[pid].intersection(space)
        self.names, self.dontfork, self.wipeonfork = names, dontfork, wipeonfork

    def _child(self, pid: int, child: int) -> dict[int, Cell]:
        """The memory of a child of ``pid``, as the parent's was at fork: its cells."""
        space = {}
        dontfork, wipeonfork = self.dontfork[pid], self.wipeonfork[pid]
        cid = self._next_cid
        for vpn, cell in self.space[pid].items():
            if dontfork and vpn in dontfork:
                continue
            if cell.shared and not (wipeonfork and vpn in wipeonfork):
                cell.mappers += 1
                space[vpn] = cell
                continue
            # a private copy starting from the parent's history, or zeros (MADV_WIPEONFORK)
            base = None if wipeonfork and vpn in wipeonfork else cell
            cid += 1
            new = space[vpn] = _new(Cell)
            new.cid = cid
            new.base = base
            new.mappers = 1
            new.shared = False
            if base is None:
                new.base_len = 0
                new.tokens = [ZERO_TOKEN]
            else:
                new.base_len = len(cell.tokens)
                new.tokens = [cell.tokens[-1]]
        self._next_cid = cid
        self.space[child] = space  # type: ignore[index]
        if self.following:
            for vpn, cell in space.items():
                followed = self.following.get(id(cell.base)) if cell.base is not None else None
                if followed is not None and len(cell.base.tokens) == followed[2]:  # type: ignore[union-attr]
                    self.follow(child, vpn, followed[1])
        return space

    def _set_marks(self, table: str, pid: int, marks: frozenset[int]) -> None:
        """``pid``'s pages under one mark (``table``: "dontfork" or "wipeonfork") are now
        ``marks``: the table is replaced, never changed, as copies share it."""
        setattr(self, table, {**getattr(self, table), pid: marks})

    def before(self, index: int, step: Step, args: dict[str, Any]) -> None:
        """Audit the pages a step is about to take away (exit, munmap, MADV_DONTNEED)."""
        self._step, self._line = index, step.line
        if step.op == "exit":
            self._audit(args["process"])
        elif step.op == "munmap" or (step.op == "madvise" and args["advice"] == "dontneed"):
            self._audit(args["process"], args["region"])

    def _op_exit(self, step: Step, a: dict, out: Outcome) -> None:
        pid = a["process"]
        self._detach(pid, list(self.space[pid]))
        for rid in [r for r, ref in self.refs.items() if ref.owner == pid]:
            del self.refs[rid]

    def _op_mremap(self, step: Step, a: dict, out: Outcome) -> None:
        """The memory moves: what each page holds, and what the process expects of it, go
        with it to the new place."""
        pid, new = a["process"], out.result
        old = a["region"]
        delta = new - old[0]  # type: ignore[operator]
        self.name_region(new, step.result)  # type: ignore[arg-type]
        space = self.space[pid]
        moved = [(vpn, space.pop(vpn)) for vpn in old if vpn in space]
        for vpn, cell in moved:
            space[vpn + delta] = cell
        for attr in ("dontfork", "wipeonfork"):
            marks = getattr(self, attr).get(pid)
            if marks:
                there = {v for v in marks if v in old}
                self._set_marks(attr, pid, (marks - there) | {v + delta for v in there})
        for key, (view, source, n, owner, vpn) in list(self.following.items()):
            if owner == pid and vpn in old:
                self.following[key] = (view, source, n, owner, vpn + delta)

    def _op_munmap(self, step: Step, a: dict, out: Outcome) -> None:
        self._detach(a["process"], a["region"])

    def _op_madvise(self, step: Step, a: dict, out: Outcome) -> None:
        pid, adv, vpns = a["process"], a["advice"], a["region"]
        if adv == "dontfork":
            self._set_marks("dontfork", pid, self.dontfork[pid].union(vpns))
        elif adv == "dofork":
            self._set_marks("dontfork", pid, self.dontfork[pid].difference(vpns))
        elif adv == "wipeonfork":
            self._set_marks("wipeonfork", pid, self.wipeonfork[pid].union(vpns))
        elif adv == "keeponfork":
            self._set_marks("wipeonfork", pid, self.wipeonfork[pid].difference(vpns))
        elif adv == "dontneed":
            # Private memory is dropped: the process sees a new zeroed page, as if it had
            # unmapped and mapped again.  References keep the old content.
            space = self.space[pid]
            for vpn in vpns:
                cell = space[vpn]
                if not cell.shared:
                    cell.mappers -= 1
                    space[vpn] = self._cell()

    def _take_ref(self, step: Step, a: dict, out: Outcome, pin: bool, write: bool) -> None:
        pid = a["process"]
        if not out.ok:
            self.report("gup-failed", f"{step.op} on {self.where(pid, a['region'][0])} failed: "
                        f"{out.errno} ({out.message})", key=-step.line)
            return
        vpns = tuple(a["region"])
        if "zap_race" in a.get("flags", ()):
            # another thread's MADV_DONTNEED dropped the private pages GUP faulted in
            # (the race window opens only where GUP took a fault)
            space = self.space[pid]
            zapped = self.engine.zapped_by_race
            for vpn in vpns:
                if not space[vpn].shared and vpn in zapped:
                    space[vpn].mappers -= 1
                    space[vpn] = self._cell()
        self.refs[out.result] = _Ref(step.result, pid, vpns,  # type: ignore[index,arg-type]
                                     [self.space[pid][v] for v in vpns], pin, write)

    def _op_gup(self, step: Step, a: dict, out: Outcome) -> None:
        self._take_ref(step, a, out, a["kind"] == "pin", "write" in a["flags"])

    def _op_pin(self, step: Step, a: dict, out: Outcome) -> None:
        self._take_ref(step, a, out, True, "write" in a["flags"])

    def _op_vmsplice(self, step: Step, a: dict, out: Outcome) -> None:
        self._take_ref(step, a, out, False, False)

    def _op_unpin(self, step: Step, a: dict, out: Outcome) -> None:
        self.refs.pop(a["ref"][0], None)

    _op_put = _op_unpin

    def _op_dma_write(self, step: Step, a: dict, out: Outcome) -> None:
        rid, index = a["ref"]
        ref = self.refs[rid]
        kind = "pin" if ref.pin else "FOLL_GET reference"
        said = f"device via {kind} {ref.name!r} at line {step.line}"
        for i, tok in zip(index, out.tokens):
            cell = ref.cells[i]
            cell.tokens.append(tok)
            self.origin[tok] = said
            if not self.attached(ref, i):
                continue
            seen = self.engine.peek(ref.owner, ref.vpns[i])
            if seen != tok:
                cls = "pin-incoherent" if ref.pin else "lost-write"
                self.report(cls, f"the device wrote through {ref.name!r}[{i}], but "
                            f"{self.where(ref.owner, ref.vpns[i])} does not see it",
                            self.describe(seen), self.describe(tok), key=cell.cid)

    def _op_dma_read(self, step: Step, a: dict, out: Outcome) -> None:
        rid, index = a["ref"]
        ref = self.refs[rid]
        cells = ref.cells
        for i, tok in zip(index, out.tokens):
            if tok == cells[i].tokens[-1]:      # the current value: right whatever judges it
                continue
            exact = ref.pin and self.attached(ref, i)
            self.judge(cells[i], tok, lambda: f"the device reading through {ref.name!r}[{i}]", exact, pin=ref.pin)

    # -- the end ---------------------------------------------------------------------------

    def _audit(self, pid: int, vpns: Any = None) -> None:
        """Compare what the process would see with its cells, without faulting."""
        space = self.space[pid]
        cells = [(vpn, space[vpn]) for vpn in (vpns if vpns is not None else space) if vpn in space]
        for (vpn, cell), seen in zip(cells, self.engine.peek_many(pid, [vpn for vpn, _ in cells])):
            if seen != cell.tokens[-1]:
                self.judge(cell, seen, lambda vpn=vpn: f"{self.where(pid, vpn)} (audit)", exact=True)

    def finish(self) -> list[Violation]:
        """Audit every live page of every live process; return all violations."""
        self._line = None
        for pid in list(self.space):
            if self.engine.machine.processes[pid].alive:
                self._audit(pid)
        return self.violations
