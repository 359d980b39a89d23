"""What explore may do next: the bounds of a search, and every operation of the registry
enumerated over small argument domains, as scenario steps.

Each parameter kind has a domain: a process is any live named process; a region, any
region mapped whole in it, and each of its pages on its own; a reference, any live one;
a word, its choices; flags, the subsets an operation's :class:`Param` lists in
``explore`` (else every subset); an int or a name, ``Param.explore`` (else its default,
or 1, or ``f``).  ``--domain OP.PARAM=V,...`` replaces a domain (``fork_children.count=1024``;
flags are written joined by ``+``, ``-`` for none: ``gup.flags=-,write,write+longterm``).

Steps that a scenario could not state are not taken (the scenario checker would refuse
them: a write to a read-only page, FOLL_WRITE on one without ``force``, ``unpin`` of a
FOLL_GET reference, a device write through a read-only one...), nor steps past a bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine.specs import OperationSpec, Param, Registry
from ..errors import PolicyKitError, Span, did_you_mean
from ..limits import EXPLORE_DEPTH, EXPLORE_PAGES, EXPLORE_PROCS, EXPLORE_REFS
from ..scenario.model import Step

if TYPE_CHECKING:
    from ..run import Runner

#: operations a search leaves out unless ``--ops`` names them: they only make what the
#: start state already has (a process, a mapping), do what another does (alias; pin is
#: gup ... pin; vmsplice of one buffer is gup ... get), inject failures every policy
#: meets alike, or make processes no step can name (fork_children: widen its count with
#: --domain to reach the pin bias), or move memory elsewhere (mremap: the same state at
#: other addresses, for a THP split at the move)
SETUP_OPS = frozenset({"spawn", "mmap", "alias", "pin", "fail_alloc", "memory_pressure", "fork_children",
                       "vmsplice", "mremap"})

#: the file name of steps explore makes
EXPLORE_FILE = "<explore>"


class ExploreError(PolicyKitError):
    """Bad explore or diverge arguments (an unknown operation, variant or domain)."""


@dataclass(frozen=True)
class Bounds:
    """The limits of a search.  ``procs``: live named processes; ``pages``: pages of the
    start mapping; ``refs``: live GUP references; ``depth``: steps after the start;
    ``maps``: extra mappings a path may make (only with a mapping operation in ``ops``);
    ``max_states`` and ``time``: when to stop early (0: never)."""

    procs: int = EXPLORE_PROCS
    pages: int = EXPLORE_PAGES
    refs: int = EXPLORE_REFS
    depth: int = EXPLORE_DEPTH
    maps: int = 1
    max_states: int = 0
    time: float = 0.0

    def describe(self) -> str:
        return (f"{self.procs} processes, {self.pages} page{'s' * (self.pages != 1)}, "
                f"{self.refs} reference{'s' * (self.refs != 1)}, depth {self.depth}")


def _subsets(choices: Sequence[str]) -> tuple[frozenset[str], ...]:
    out = []
    for n in range(len(choices) + 1):
        out.extend(frozenset(c) for c in itertools.combinations(choices, n))
    return tuple(out)


#: what pairs a ``gup`` or ``pin`` step with its twins (see :class:`Steps`): the call
#: but for :data:`PROBED_FLAGS`, and which of those it has; None for another step
TwinKey = tuple[tuple[Any, ...], frozenset[str]] | None

#: a step of a state's layout, None (it is taken) or the PTE condition that decides
#: whether it is (:func:`_allowed`), and its :func:`twin_key`
Candidate = tuple[Step, tuple[Any, ...] | None, TwinKey]


#: GUP flags whose twins explore watches for (see :class:`Steps`)
PROBED_FLAGS = frozenset({"longterm", "force", "zap_race"})


class Steps(list):  # type: ignore[type-arg]
    """The steps to try from a state, in order, and their *twins*: ``twin[i]`` holds the
    positions of earlier steps that step ``i`` repeats exactly unless one of the flags
    they differ in (``differ[i]``, in the same order) is consulted; None for most.  A
    core ``gup`` (or ``pin``) with some of FOLL_LONGTERM, FOLL_FORCE and the zap race,
    and the same call with fewer of them, is such a pair: FOLL_LONGTERM reaches the
    state only as a reference's record of it, which the canonical form keeps only for a
    short-term R/O pin of the zero page; FOLL_FORCE counts only for a write to a VMA
    without VM_WRITE; the race only where GUP takes a fault.  So when the other call's
    run consulted none of the flags they differ in (its FOLL flags record each; and,
    for FOLL_LONGTERM, made no such pin), this one reaches the same state with the same
    verdicts and the search need not take it
    (:func:`policykit.explore.search.transitions`).  The nearest twins (fewest flags
    apart) come first.  ``probed`` holds the positions of the twins, whose runs are
    watched."""

    __slots__ = ("twin", "differ", "probed")

    def __init__(self, steps: Iterable[Step], keys: Sequence[TwinKey] | None = None,
                 twins: Twins | None = None) -> None:
        super().__init__(steps)
        if twins is None:               # (else worked out for the same candidates before)
            twins = _twins(twin_plan(keys if keys is not None else [twin_key(st) for st in self]))
        self.twin, self.differ, self.probed = twins


#: :class:`Steps`' ``twin``, ``differ`` and ``probed``
Twins = tuple[list[tuple[int, ...] | None], list[tuple[frozenset[str], ...]], set[int]]


def _twins(plan: Sequence[Near | None]) -> Twins:
    """:class:`Steps`' ``twin``, ``differ`` and ``probed`` from a :func:`twin_plan`."""
    twin: list[tuple[int, ...] | None] = [None] * len(plan)
    differ: list[tuple[frozenset[str], ...]] = [()] * len(plan)
    probed: set[int] = set()
    for i, near in enumerate(plan):
        if near:
            twin[i] = twins = tuple([j for j, _ in near])
            differ[i] = tuple([d for _, d in near])
            probed.update(twins)
    return twin, differ, probed


#: the twins of a step: (position, the flags they differ in), nearest first
Near = tuple[tuple[int, frozenset[str]], ...]


def twin_plan(keys: Sequence[TwinKey]) -> list[Near | None]:
    """For each step, by its :func:`twin_key`: its twins among the steps before it, the
    nearest (fewest flags apart) first; None for most (see :class:`Steps`)."""
    plan: list[Near | None] = [None] * len(keys)
    groups: dict[tuple, dict[frozenset[str], int]] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        same, flags = key
        group = groups.get(same)
        if group is None:
            groups[same] = {flags: i}
            continue
        if flags:
            near = tuple([(j, d) for f, d in _fewer(flags) if (j := group.get(f)) is not None])
            if near:
                plan[i] = near
        group.setdefault(flags, i)
    return plan


#: probed flags -> each smaller set of them, and what it lacks, the largest first
_FEWER: dict[frozenset[str], tuple[tuple[frozenset[str], frozenset[str]], ...]] = {}


def _fewer(flags: frozenset[str]) -> tuple[tuple[frozenset[str], frozenset[str]], ...]:
    """Each smaller set of ``flags`` with what it lacks, the largest first (kept)."""
    out = _FEWER.get(flags)
    if out is None:
        names = sorted(flags)
        subsets = [frozenset(n for k, n in enumerate(names) if mask >> k & 1) for mask in range(1 << len(names))]
        subsets.sort(key=len, reverse=True)
        out = _FEWER[flags] = tuple((f, flags - f) for f in subsets if f != flags)
    return out


def twin_key(step: Step) -> TwinKey:
    """The :data:`TwinKey` of ``step`` (worked out once a candidate step)."""
    if step.op not in ("gup", "pin"):
        return None
    p = step.params
    flags = p.get("flags", frozenset())
    same = (tuple(sorted((k, v) for k, v in p.items() if k != "flags")), flags - PROBED_FLAGS)
    return same, flags & PROBED_FLAGS


@dataclass
class Space:
    """The operations a search takes, with their domains, resolved against a registry."""

    registry: Registry
    ops: tuple[OperationSpec, ...]
    bounds: Bounds
    domains: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    _cache: dict[Any, Steps] = field(default_factory=dict, repr=False)
    #: layout -> its candidates, their twin_plan(), and the twins of those kept by a state
    _candidates: dict[Any, tuple[list[Candidate], list[Near | None], dict[tuple[int, ...], Twins]]] = \
        field(default_factory=dict, repr=False)
    _parts: dict[Any, list[Candidate]] = field(default_factory=dict, repr=False)
    _domain_memo: dict[tuple[str, str, frozenset[str]], tuple[Any, ...]] = field(default_factory=dict, repr=False)

    # -- construction --------------------------------------------------------------------

    #: flags left out of every domain: no policy searched mentions them (Param.informs)
    unread: frozenset[str] = frozenset()

    @classmethod
    def build(cls, registry: Registry, bounds: Bounds, ops: Iterable[str] = (),
              domains: Iterable[str] = (), policies: Iterable[Any] = ()) -> Space:
        """``ops``: names to use instead of the default (every operation but
        :data:`SETUP_OPS`); ``+NAME`` adds one, ``-NAME`` leaves one out; a plugin's
        name (``file``, ``swap``) stands for all its operations.  ``policies`` (the
        :class:`~policykit.Policy` objects searched): a flag that only informs the policy
        (``Param.informs``) is not tried when none of them mentions it."""
        specs = registry.operations
        chosen = [n for n, s in specs.items() if n not in SETUP_OPS and s.provider == "policykit"]
        items = [o.strip() for o in ops if o.strip()]
        if items and not all(o[0] in "+-" for o in items):
            chosen = []
        providers = {s.provider.removeprefix("policykit_").removeprefix("policykit-") for s in specs.values()}
        for item in items:
            sign, name = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
            if name in specs:
                names = [name]
            elif name in providers:
                names = [n for n, s in specs.items() if n not in SETUP_OPS
                         and s.provider.removeprefix("policykit_").removeprefix("policykit-") == name]
            else:
                hint = did_you_mean(name, list(specs) + sorted(providers))
                raise ExploreError(f"unknown operation {name!r} in --ops"
                                   + (f"; {hint}" if hint else "")
                                   + f" (operations: {', '.join(sorted(specs))})")
            for n in names:
                if sign == "-":
                    chosen = [c for c in chosen if c != n]
                elif n not in chosen:
                    chosen.append(n)
        space = cls(registry, tuple(specs[n] for n in chosen), bounds)
        mentions = [getattr(p, "mentions", None) for p in policies]
        if mentions and all(m is not None for m in mentions):
            informs = {f for spec in space.ops for p in spec.params for f in p.informs}
            space.unread = frozenset(f for f in informs if not any(f in m for m in mentions))  # type: ignore[operator]
        for text in domains:
            space._set_domain(text)
        return space

    def _set_domain(self, text: str) -> None:
        where, eq, values = text.partition("=")
        op, dot, pname = where.strip().partition(".")
        spec = self.registry.operations.get(op)
        if not eq or not dot or spec is None:
            hint = did_you_mean(op, self.registry.operations) if spec is None and op else None
            raise ExploreError(f"--domain {text!r}: write OP.PARAM=V1,V2 (e.g. fork_children.count=1024)"
                               + (f"; {hint}" if hint else ""))
        param = next((p for p in spec.params if p.name == pname), None)
        if param is None:
            raise ExploreError(f"--domain {text!r}: {op!r} has no parameter {pname!r} "
                               f"(it has: {', '.join(p.name for p in spec.params) or 'none'})")
        parsed: list[Any] = []
        for v in values.split(","):
            v = v.strip()
            if param.kind == "int":
                if not v.isdigit() or int(v) < 1:
                    raise ExploreError(f"--domain {text!r}: {v!r} is not a positive number")
                parsed.append(int(v))
            elif param.kind == "word":
                if v not in param.choices:
                    raise ExploreError(f"--domain {text!r}: {v!r} is not one of {', '.join(param.choices)}")
                parsed.append(v)
            elif param.kind == "flags":
                flags = frozenset() if v in ("-", "") else frozenset(v.split("+"))
                bad = flags - set(param.choices)
                if bad:
                    raise ExploreError(f"--domain {text!r}: unknown flag {sorted(bad)[0]!r} "
                                       f"(flags: {', '.join(param.choices)})")
                parsed.append(flags)
            elif param.kind == "name":
                parsed.append(v)
            else:
                raise ExploreError(f"--domain {text!r}: the {param.kind} parameter {pname!r} "
                                   "takes its values from the state")
        self.domains[(op, pname)] = tuple(parsed)
        self._domain_memo.clear()

    def domain(self, spec: OperationSpec, p: Param) -> tuple[Any, ...]:
        """The values tried for a parameter that does not come from the state."""
        key = (spec.name, p.name, self.unread)
        d = self._domain_memo.get(key)
        if d is None:
            d = self._domain_memo[key] = self._domain(spec, p)
        return d

    def _domain(self, spec: OperationSpec, p: Param) -> tuple[Any, ...]:
        d = self.domains.get((spec.name, p.name))
        if d is not None:
            return d
        if p.kind == "flags":
            sets = [frozenset(v) for v in p.explore] if p.explore else list(_subsets(p.choices))
            unread = self.unread.intersection(p.informs)
            if unread:                  # the same step for these policies: try it once
                sets = list(dict.fromkeys(s - unread for s in sets))
            return tuple(sets)
        if p.explore:
            return p.explore
        if p.kind == "word":
            return p.choices
        if p.kind == "name":
            return ("f",)
        return (p.default if p.default is not None else 1,)

    def describe_ops(self) -> str:
        return ", ".join(s.name for s in self.ops)

    # -- the next steps of a state -----------------------------------------------------

    def steps(self, runner: Runner, line: int) -> Steps:
        """Every step to try from ``runner``'s state, in a fixed order, numbered ``line``.

        Three caches: the steps of a state's whole :func:`_shape`; below them the
        candidate steps of its layout (the shape but for its page table entries), each
        with what it still needs to know of the PTEs, if anything (:func:`_allowed`);
        and below those, each operation's candidates for one process (or for the
        references), which most layouts share with others.  States that differ only in
        their PTEs -- most of a level's new shapes -- share the enumeration and only
        filter it; the twins among a layout's candidates are worked out once for it."""
        shape = _shape(runner)
        key = (line, shape)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > _CACHED:
                self._cache.clear()
            outer = (line, shape[0])
            candidates = self._candidates.get(outer)
            if candidates is None:
                if len(self._candidates) > _CACHED:
                    self._candidates.clear()
                if len(self._parts) > _CACHED:
                    self._parts.clear()
                listed = list(self._enumerate(runner, line, shape[0], self._parts))
                candidates = self._candidates[outer] = (listed, twin_plan([k for _, _, k in listed]), {})
            listed, plan, by_kept = candidates
            steps, kept = _filter(listed, runner)
            twins = by_kept.get(kept)
            if twins is None:
                twins = by_kept[kept] = _twins(_kept_plan(plan, kept))
            cached = self._cache[key] = Steps(steps, twins=twins)
        return cached

    def uncached_steps(self, runner: Runner, line: int) -> list[Step]:
        """:meth:`steps` worked out afresh, no cache involved."""
        return _filter(list(self._enumerate(runner, line, _shape(runner)[0], None)), runner)[0]

    def _enumerate(self, runner: Runner, line: int, layout: tuple,
                   parts: dict[Any, list[Candidate]] | None) -> Iterable[Candidate]:
        """The candidate steps of ``runner``'s ``layout`` (see :func:`_shape`), each with
        None (allowed) or the PTE condition that still decides it (:func:`_allowed`).
        ``parts`` caches an operation's candidates for one process, or for the
        references, by what they depend on (see :func:`_split`)."""
        m = runner.engine.machine
        procs = [(n, pid) for n, pid in runner.pids.items()
                 if n not in runner.gone and m.processes[pid].alive]
        refs = [(n, m.refs[rid]) for n, rid in runner.rids.items() if rid in m.refs]
        names = set(runner.pids) | set(runner.bases) | set(runner.rids) | runner.gone
        layout_procs, bases, sizes, layout_refs, _ = layout
        b = self.bounds
        for spec in self.ops:
            if spec.result == "process" and len(procs) >= b.procs:
                continue
            if spec.result == "ref" and len(refs) >= b.refs:
                continue
            if spec.result == "region" and len(runner.bases) >= 1 + b.maps:
                continue
            result = _fresh(spec.result, names) if spec.result else None
            split = _split(spec) if parts is not None else None
            if split == "process":          # one process's VMAs, the regions' names
                for proc, entry in zip(procs, (e for e in layout_procs if e[1])):
                    yield from self._part(parts, (line, spec.name, result, entry, bases, sizes),  # type: ignore[arg-type]
                                          spec, runner, [proc], refs, result, line)
            elif split == "ref":            # the references, what each is
                yield from self._part(parts, (line, spec.name, result, layout_refs),  # type: ignore[arg-type]
                                      spec, runner, procs, refs, result, line)
            else:
                yield from self._candidates_of(spec, runner, procs, refs, result, line)

    def _part(self, parts: dict[Any, list[Candidate]], key: tuple, spec: OperationSpec, runner: Runner,
              procs: list[tuple[str, int]], refs: list[tuple[str, Any]], result: str | None,
              line: int) -> list[Candidate]:
        """:meth:`_candidates_of`, kept in ``parts`` under ``key``."""
        part = parts.get(key)
        if part is None:
            part = parts[key] = list(self._candidates_of(spec, runner, procs, refs, result, line))
        return part

    def _candidates_of(self, spec: OperationSpec, runner: Runner, procs: list[tuple[str, int]],
                       refs: list[tuple[str, Any]], result: str | None, line: int) -> Iterable[Candidate]:
        for params in self._bind(spec, 0, {}, runner, procs, refs):
            allowed = _allowed(spec, params, runner)
            if allowed is not False:
                step = _step(spec, params, result, line, runner.sizes)
                yield step, None if allowed is True else allowed, twin_key(step)

    def _bind(self, spec: OperationSpec, i: int, done: dict[str, Any], runner: Runner,
              procs: list[tuple[str, int]], refs: list[tuple[str, Any]]) -> Iterable[dict[str, Any]]:
        if i == len(spec.params):
            yield dict(done)
            return
        p = spec.params[i]
        if p.kind == "process":
            values: Iterable[Any] = [n for n, _ in procs]
        elif p.kind == "region":
            values = _regions(runner, done[_proc_param(spec)])
        elif p.kind == "ref":
            values = [(n, 0, len(r.vpns)) for n, r in refs]
        else:
            values = self.domain(spec, p)
        for v in values:
            done[p.name] = v
            yield from self._bind(spec, i + 1, done, runner, procs, refs)
        done.pop(p.name, None)


#: entries each cache of :meth:`Space.steps` holds before it starts anew
_CACHED = 8192


def _split(spec: OperationSpec) -> str | None:
    """How an operation's candidate steps can be cached apart from the rest of a layout:
    "process" when its first parameter is its only process (and it names no reference:
    its steps for one process depend on that process's VMAs and the regions), "ref"
    when it names references and no process (its steps depend on what they are)."""
    kinds = [p.kind for p in spec.params]
    if kinds and kinds[0] == "process" and kinds.count("process") == 1 and "ref" not in kinds:
        return "process"
    if "ref" in kinds and "process" not in kinds:
        return "ref"
    return None


def _proc_param(spec: OperationSpec) -> str:
    return next(p.name for p in spec.params if p.kind == "process")


def _shape(runner: Runner) -> tuple:
    """Everything the steps of a state depend on, as ``(layout, ptes)``.  The layout is
    all the enumeration reads: the names, which are live, each process's VMAs, the
    regions' sizes, the references (candidate steps are cached by it); ``ptes``, each
    process's page table entries, which are present, which writable and which map a
    small page (:func:`_small`), is what :func:`_allowed` leaves to :func:`_ptes_allow`.
    (Steps are cached by both: what they leave out, steps may not depend on.)"""
    m = runner.engine.machine
    procs = []
    ptes = []
    for n, pid in runner.pids.items():
        proc = m.processes[pid]
        mm = proc.mm
        procs.append((n, proc.alive and n not in runner.gone,
                      tuple([(v.start, v.end, v.write, v.shared, v.may_write, v.dontcopy, v.wipeonfork,
                              bool(v.attrs.get("vm_file"))) for v in mm.vmas])))
        ptes.append(tuple(sorted([(vpn, e.writable, _small(m, e.pfn)) if e.present else (vpn, None, False)
                                  for vpn, e in mm.ptes.items()])))
    refs = tuple((n, r.pin, r.write, len(r.vpns)) if r is not None else (n,)
                 for n, r in ((n, m.refs.get(rid)) for n, rid in runner.rids.items()))
    # the sizes too: a step's text names a region whole ("buf") or by page ("buf[0]")
    # by them, and two states can differ only there (a 1-page mapping, and a 2-page one
    # with a page unmapped)
    layout = (tuple(procs), tuple(runner.bases.items()), tuple(runner.sizes.items()), refs,
              frozenset(runner.gone))
    return layout, tuple(ptes)


#: a region of more pages than this (a THP's 512) is named whole and by its first page
#: only: its other pages behave alike, and naming each would multiply the search by 512
PAGE_BY_PAGE = 8


def _regions(runner: Runner, proc_name: str) -> list[tuple[str, int, int]]:
    """The region arguments a process can name: each region mapped whole in it, and,
    for a region of several pages, each page mapped in it (the first only, past
    :data:`PAGE_BY_PAGE` pages)."""
    mm = runner.engine.machine.processes[runner.pids[proc_name]].mm
    out = []
    for name, base in runner.bases.items():
        npages = runner.sizes.get(name, 1)
        if npages > PAGE_BY_PAGE:
            vma = mm.find_vma(base)
            if vma is not None and vma.end >= base + npages and vma.start <= base:
                out.append((name, 0, npages))
            if vma is not None:
                out.append((name, 0, 1))
            continue
        mapped = [mm.find_vma(base + i) is not None for i in range(npages)]
        if all(mapped):
            out.append((name, 0, npages))
        if npages > 1:
            out.extend((name, i, i + 1) for i in range(npages) if mapped[i])
    return out


def _fresh(kind: str, taken: set[str]) -> str:
    prefix = {"process": "c", "ref": "r", "region": "m"}.get(kind, "x")
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def _allowed(spec: OperationSpec, a: dict[str, Any], runner: Runner) -> bool | tuple[Any, ...]:
    """False for a step the scenario checker would refuse, or one every policy fails
    alike for the user's own mistake (FOLL_WRITE where the VMA forbids it), or one that
    changes nothing; True for the others.  What depends on the PTEs (a read of pages all
    present) is left to :func:`_ptes_allow`: the answer is then that condition,
    ``(op, process, vpns)``."""
    op = spec.name
    m = runner.engine.machine
    needs: bool | tuple[Any, ...] = True
    if "region" in a and "process" in a:
        mm = m.processes[runner.pids[a["process"]]].mm
        name, lo, hi = a["region"]
        base = runner.bases[name]
        vmas = [mm.find_vma(base + i) for i in range(lo, hi)]
        if op == "write" and not all(v.write for v in vmas):
            return False
        if op == "read":
            needs = ("read", a["process"], range(base + lo, base + hi))
        advice = a.get("advice")
        # an mprotect or madvise that changes no VMA's flags does nothing at all
        # (mprotect_fixup(), madvise_update_vma()); one that changes a single page's of
        # a region named page by page is that page's own step: both narrow the call to
        # the VMAs they change (Engine.changed_span), and the oracle's marks of the
        # pages left alone stay as they are
        changed = None
        if op == "mprotect":
            changed = [v.write != (a["prot"] == "rw") for v in vmas]
        elif advice in ("dontfork", "dofork"):
            changed = [v.dontcopy != (advice == "dontfork") for v in vmas]
        elif advice in ("wipeonfork", "keeponfork"):
            changed = [v.wipeonfork != (advice == "wipeonfork") for v in vmas]
        if changed is not None:
            n = sum(changed)
            if n == 0 or (n == 1 and 1 < len(vmas) <= PAGE_BY_PAGE):
                return False
        # MADV_DONTNEED where no page is mapped, nor any entry left in the page table,
        # does nothing either (the oracle's cells there hold zero-fill already): left to
        # the PTEs, in private memory no plugin marks
        if advice == "dontneed" and not any(v.shared or v.attrs for v in vmas):
            needs = ("dontneed", a["process"], range(base + lo, base + hi))
        flags = a.get("flags", frozenset())
        if op in ("gup", "pin") and "write" in flags and not all(
                v.write or ("force" in flags and v.is_cow_mapping) for v in vmas):
            return False
        if op == "madvise" and a["advice"] == "wipeonfork" and any(v.shared or v.attrs.get("vm_file") for v in vmas):
            return False
    if "ref" in a:
        ref = m.refs[runner.rids[a["ref"][0]]]
        if op == "unpin" and not ref.pin or op == "put" and ref.pin:
            return False
        if op == "dma_write" and not ref.write:
            return False
    return needs


def _filter(candidates: Sequence[Candidate], runner: Runner) -> tuple[list[Step], tuple[int, ...]]:
    """The candidates ``runner``'s PTEs allow: their steps, and which they are."""
    steps: list[Step] = []
    kept: list[int] = []
    for c, (step, needs, _) in enumerate(candidates):
        if needs is None or _ptes_allow(needs, runner):
            kept.append(c)
            steps.append(step)
    return steps, tuple(kept)


def _kept_plan(plan: Sequence[Near | None], kept: Sequence[int]) -> list[Near | None]:
    """A :func:`twin_plan` of candidates, for the ``kept`` ones among them."""
    at = {c: i for i, c in enumerate(kept)}
    return [None if (near := plan[c]) is None else tuple([(at[j], d) for j, d in near if j in at]) or None
            for c in kept]


def _ptes_allow(needs: tuple[Any, ...], runner: Runner) -> bool:
    """The PTE condition of :func:`_allowed` on ``runner``'s state: a read of pages all
    present changes nothing, and sees what the audit of this state saw (so a read of a
    region named page by page with a single page not present is that page's own
    step); a MADV_DONTNEED of pages without a page table entry changes nothing (and
    one of a region named page by page where a single page has an entry, mapping a small
    page, is that page's own)."""
    what, process, vpns = needs
    m = runner.engine.machine
    ptes = m.processes[runner.pids[process]].mm.ptes
    if what == "dontneed":
        entries = [e for v in vpns if (e := ptes.get(v)) is not None]
        return len(entries) > 1 or (len(entries) == 1 and not (
            1 < len(vpns) <= PAGE_BY_PAGE and entries[0].present and _small(m, entries[0].pfn)))
    missing = sum(1 for v in vpns if (e := ptes.get(v)) is None or not e.present)
    return missing > 1 or (missing == 1 and not 1 < len(vpns) <= PAGE_BY_PAGE)


def _small(m: Any, pfn: int) -> bool:
    """Is page ``pfn`` a small page (no large folio's)?"""
    page = m.pages.get(pfn)
    return page is not None and page.folio is None


def _step(spec: OperationSpec, a: dict[str, Any], result: str | None, line: int,
          sizes: dict[str, int]) -> Step:
    words = [spec.name]
    for p in spec.params:
        v = a[p.name]
        if p.kind in ("region", "ref"):
            name, lo, hi = v
            whole = (lo, hi) == (0, sizes.get(name, 1)) if p.kind == "region" else lo == 0
            words.append(name if whole else f"{name}[{lo}]" if hi == lo + 1 else f"{name}[{lo}:{hi}]")
        elif p.kind == "flags":
            words.extend(c for c in p.choices if c in v)
        elif p.kind == "word" and p.default is not None and v == p.default:
            continue
        elif p.kind == "int" and p.default is not None and v == p.default:
            continue
        else:
            words.append(str(v))
    if result:
        words += ["->", result]
        a["_name"] = result
    text = " ".join(words)
    return Step(spec.name, (), result, Span(EXPLORE_FILE, line, 1, len(text) + 1), text, params=a)
