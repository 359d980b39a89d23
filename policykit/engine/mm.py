"""The mm engine: the mechanism of faults, fork, GUP and unmapping, with no policy in it.

Every COW or pin decision is asked of the policy through a decision hook
(:meth:`Engine.decide`); the engine only carries the answer out.  Function names follow
``mm/memory.c`` and ``mm/gup.c`` where there is a counterpart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn

import pluggy

from ..errors import PluginError, PolicyDecisionError
from ..guard import stops_the_run
from ..limits import DECISION_BUDGET
from .context import FLAG_PREFIX, Context, FollFlags, Views, attribute_defaults
from .folio import note_pins
from .model import GUP_PIN_COUNTING_BIAS, PAGE_SIZE, ZERO_TOKEN, Folio, GupRef, Machine, Mm, Page, Process, Pte, Vma
from .specs import Decision, Registry

if TYPE_CHECKING:
    from .riders import Rider

#: gap left between two mmap()ed regions, so VMAs never touch
_MMAP_GAP = 16
#: where mremap puts what it moves: aligned as a PMD (512 pages), as a THP's place is
_MREMAP_ALIGN = 512
#: fault_around_bytes (64 KiB) in pages, and the entries of one page table
FAULT_AROUND_PAGES = 16
PTRS_PER_PTE = 512
#: faults GUP may trigger on one page before it gives up
_GUP_MAX_FAULTS = 3


@dataclass(slots=True)
class Event:
    """One thing the engine did.  ``kind`` is e.g. ``step`` (a scenario step starts:
    ``step`` is its index, ``info`` its text), ``decision``, ``copy``, ``fault``, ``alloc``,
    ``alloc-fail``, ``free``, ``gup``, ``unpin``, ``put``, ``unmap``, ``fork``, ``exit``,
    ``read``, ``write``, ``dma_read``, ``dma_write``."""

    kind: str
    pid: int | None = None
    vpn: int | None = None
    pfn: int | None = None
    info: str = ""
    decision: Decision | None = None
    step: int | None = None
    #: for a decision, what the policy read: the page's counts and flags, the PTE
    state: str = ""


@dataclass(slots=True)
class Outcome:
    """What an operation did.  ``tokens`` are the values written or observed, one per
    page in argument order; ``result`` is a new pid, reference id or region base."""

    ok: bool = True
    errno: str | None = None
    message: str = ""
    tokens: list[int] = field(default_factory=list)
    #: a new pid, reference id or region base; the new pids for ``fork_children``
    result: Any = None


class OperationFailed(Exception):
    """An operation failed the way the kernel would fail it (-ENOMEM, -EFAULT, ...)."""

    def __init__(self, errno: str, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


_new_tuple = tuple.__new__


def _state_read(ctx: Any) -> str:
    """The state a decision read, for explanations: page counts and flags, PTE, mm, GUP."""
    parts = []
    page = ctx.page
    if page is not None:
        parts.append(f"page {page.pfn}: refcount={page.refcount} mapcount={page.mapcount}"
                     + "".join(f" {k}={v}" for k, v in sorted(page[0].attrs.items())
                               if not k.startswith(("folio", "swap_", "owner")))
                     + "".join(f" {k}={v}" for k, v in sorted(page[0].flags.items())))
    if ctx.pte is not None:
        parts.append(f"pte {'rw' if ctx.pte.writable else 'ro'}{' dirty' if ctx.pte.dirty else ''}")
    if ctx.mm is not None and ctx.mm.has_pinned:
        parts.append("mm has_pinned")
    if ctx.foll is not None:
        parts.append(repr(ctx.foll))
    return "; ".join(parts)


def _direct_calls(pm: pluggy.PluginManager, hook: Any) -> list[tuple[Callable[..., Any], tuple[str, ...], str]] | None:
    """The implementations of ``hook`` as (function, argument names, plugin name), in the
    order pluggy calls them -- or None when pluggy itself must call (a wrapper, tracing).
    Calling them directly gives pluggy's results at a fraction of the cost."""
    impls = hook.get_hookimpls()
    if getattr(pm, "traced", False) or any(i.hookwrapper or i.wrapper for i in impls):
        return None
    return [(i.function, tuple(i.argnames), i.plugin_name) for i in reversed(impls)]


def hook_caller(pm: pluggy.PluginManager, name: str) -> Any:
    """A caller for hook ``name`` (keyword arguments, as pluggy takes them), or None when
    no plugin implements it."""
    hook = getattr(pm.hook, name)
    if not hook.get_hookimpls():
        return None
    calls = _direct_calls(pm, hook)
    if calls is None:
        return hook
    every_arg = frozenset(hook.spec.argnames) if hook.spec is not None else None
    # an implementation that takes every argument is called with them as they come
    plain = [(fn, None if frozenset(names) == every_arg else names) for fn, names, _ in calls]
    if hook.spec is not None and hook.spec.opts.get("firstresult"):
        def first(**kwargs: Any) -> Any:
            for fn, names in plain:
                res = fn(**kwargs) if names is None else fn(*[kwargs[n] for n in names])
                if res is not None:
                    return res
            return None
        return first

    def every(**kwargs: Any) -> list[Any]:
        out = []
        for fn, names in plain:
            res = fn(**kwargs) if names is None else fn(*[kwargs[n] for n in names])
            if res is not None:
                out.append(res)
        return out
    return every


def positional_caller(pm: pluggy.PluginManager, name: str, only: frozenset[str] | None = None,
                      results: bool = True) -> Any:
    """A caller for hook ``name`` taking its arguments by position, in the hookspec's
    order (hot paths: no keyword dict per call), or None when no plugin implements it.
    It returns what pluggy would: the first non-None result of a firstresult hook, else
    the list of results (``results=False``: None, for a caller that ignores them).
    ``only``: the implementations of these plugins alone."""
    hook = getattr(pm.hook, name)
    if not hook.get_hookimpls():
        return None
    order = tuple(hook.spec.argnames)
    calls = _direct_calls(pm, hook)
    if calls is None:
        return lambda *args: hook(**dict(zip(order, args)))
    if only is not None:
        calls = [c for c in calls if c[2] in only]
        if not calls:
            return None
    # an implementation taking the spec's arguments in the spec's order gets them as they come
    plain = [(fn, None if names == order else tuple(order.index(n) for n in names)) for fn, names, _ in calls]
    firstresult = hook.spec.opts.get("firstresult")
    if len(plain) == 1 and plain[0][1] is None and (firstresult or not results):
        return plain[0][0]                      # one implementation: itself
    if not results and not firstresult:
        def each(*args: Any) -> None:
            for fn, picks in plain:
                if picks is None:
                    fn(*args)
                else:
                    fn(*[args[i] for i in picks])
        return each
    if firstresult:
        def first(*args: Any) -> Any:
            for fn, picks in plain:
                res = fn(*args) if picks is None else fn(*[args[i] for i in picks])
                if res is not None:
                    return res
            return None
        return first

    def every(*args: Any) -> list[Any]:
        out = []
        for fn, picks in plain:
            res = fn(*args) if picks is None else fn(*[args[i] for i in picks])
            if res is not None:
                out.append(res)
        return out
    return every


def _culprit(hook: Any, exc: BaseException) -> str | None:
    """The plugin whose hookimpl raised ``exc``, found by its code in the traceback."""
    codes = {impl.function.__code__: impl.plugin_name for impl in hook.get_hookimpls()
             if hasattr(impl.function, "__code__")}
    tb = exc.__traceback__
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code)
        if name is not None:
            return name
        tb = tb.tb_next
    return None


class Dispatch:
    """How an engine calls the policy and the plugins of one plugin manager, worked out
    once: a session makes one for all its runs (plugins registered later are not seen)."""

    def __init__(self, pm: pluggy.PluginManager, registry: Registry) -> None:
        self.defaults = attribute_defaults(registry)
        self.views = Views(self.defaults)
        self.hooks = {name: getattr(pm.hook, spec.hook_name)
                      for name, spec in registry.decision_points.items()}
        # Decision hooks take one argument, ctx: impls that take it (not fewer) are
        # called directly; otherwise, or with a wrapper or tracing, pluggy calls.
        self.fast: dict[str, tuple[tuple[Callable[..., Any], str], ...] | None] = {}
        #: the points where a decision is timed against DECISION_BUDGET: all but those
        #: only compiled policies answer (their cost is bounded when they are checked)
        self.timed: dict[str, bool] = {}
        for name, hook in self.hooks.items():
            calls = _direct_calls(pm, hook)
            plain = calls is not None and all(names == ("ctx",) for _, names, _ in calls)
            self.fast[name] = tuple((fn, who) for fn, _, who in calls) if plain else None
            self.timed[name] = not plain or not all(getattr(fn, "bounded", False) is True
                                                    for fn, _, _ in calls)  # type: ignore[union-attr]
        #: point -> the caller of the one compiled policy that alone answers it, with
        #: untimed rules: called without a context (Views.direct); else None
        self.direct: dict[str, Callable[..., Any] | None] = {}
        for name, fast in self.fast.items():
            only = fast[0][0] if fast is not None and len(fast) == 1 else None
            rules, raw = getattr(only, "direct", None), getattr(only, "raw", None)
            if rules is None or self.timed[name]:
                self.direct[name] = None
            else:                               # reading the objects themselves, where it can
                self.direct[name] = self.views.raw(*raw) if raw is not None else self.views.direct(*rules)
        self.flag_types = {(a.owner, a.name): a.type for a in registry.attributes.values() if a.flag}
        self.actions = {name: frozenset(spec.actions) for name, spec in registry.decision_points.items()}
        #: point -> the decision taken there when no policy answers (None: none is)
        self.by_default = {name: Decision(spec.default, rule="(default)") if spec.default is not None else None
                           for name, spec in registry.decision_points.items()}
        #: id(Decision) -> (the Decision, its checked effects): see Engine._check_effects
        self.checked: dict[int, tuple[Decision, tuple]] = {}
        hook = pm.hook.policykit_engine_event
        self.event_hook = hook if hook.get_hookimpls() else None
        # mechanism hooks of plugins, None when nobody implements them (the common case);
        # those of the per-page paths (faults, fork, freeing) are called by position
        self.mechanism = {name: hook_caller(pm, f"policykit_{name}") for name in (
            "zap_pte", "peek_pte", "range_prepare", "copy_page", "split_folio")}
        self.hot = {name: positional_caller(pm, f"policykit_{name}") for name in ("handle_fault", "copy_pte")}
        self.hot.update({name: positional_caller(pm, f"policykit_{name}", results=False) for name in (
            "page_added", "wp_prepare", "page_reused", "page_freed")})
        self._pm = pm
        #: a VMA attribute -> the plugin that declared it (the VMA's owner)
        self._vma_owners = {a.name: a.provider for a in registry.attributes.values() if a.owner == "vma"}
        self._by_vma: dict[tuple[str, tuple[str, ...]], Any] = {}

    def vma_caller(self, name: str, vma: Vma) -> Any:
        """The positional caller of the mechanism hook ``name`` for a present PTE of
        ``vma``: the implementations of the plugins that declared its attributes (every
        plugin's when one of them nobody declared); None when there are none."""
        keys = tuple(vma.attrs)
        try:
            return self._by_vma[name, keys]
        except KeyError:
            owners = {self._vma_owners.get(k) for k in keys}
            caller = positional_caller(self._pm, f"policykit_{name}",
                                       None if None in owners else frozenset(owners))  # type: ignore[arg-type]
            self._by_vma[name, keys] = caller
            return caller


#: the FOLL flags :meth:`Engine._unprobe` may ask a rule about flipped
_FLIPPABLE = frozenset({"force", "longterm"})


class Engine:
    """Applies operations to a :class:`Machine`, asking the policy at decision points."""

    def __init__(self, pm: pluggy.PluginManager, registry: Registry,
                 machine: Machine | None = None, dispatch: Dispatch | None = None) -> None:
        self.machine = machine if machine is not None else Machine.boot()
        self.metrics: dict[str, int] = dict.fromkeys(registry.metrics, 0)
        self._bind(pm, registry, dispatch if dispatch is not None else Dispatch(pm, registry))
        self._listeners: list[Callable[[Event], None]] = []
        #: someone watches events (a listener, or a plugin's policykit_engine_event):
        #: the engine builds them only then (see :meth:`listen`)
        self.observed = self._event_hook is not None
        #: (decision point, message) of every decision that carried a warning
        self.warnings: list[tuple[str, str]] = []
        #: how often each rule (``file:line``) decided
        self.rules_fired: dict[str, int] = {}
        #: the decision point asked last (None before the first decision)
        self.last_point: str | None = None
        #: when kept (explore keeps it, see :func:`policykit.explore.search.led_to`): pfn
        #: -> (the decision's number, its point) of the last decision asked about the page
        self.decided: dict[int, tuple[int, str]] | None = None
        #: the pages the last ``gup ... zap_race`` saw zapped after a fault
        self.zapped_by_race: list[int] = []
        #: other policies asked at each decision (:mod:`.riders`); None: none ride
        self.riders: list[Rider] | None = None
        #: given to the FOLL flags of each GUP call (:class:`FollFlags` ``probe``)
        self.foll_probe: set[str] | None = None
        self.nr_pages = len(self.machine.pages)

    def _bind(self, pm: pluggy.PluginManager, registry: Registry, d: Dispatch) -> None:
        """Call the policy and plugins of ``pm`` as ``d`` worked out."""
        self.pm = pm
        self.registry = registry
        self.defaults = d.defaults
        self._hooks, self._fast, self._flag_types, self._actions = d.hooks, d.fast, d.flag_types, d.actions
        self._timed = d.timed
        self._views = d.views
        #: point -> the one compiled policy implementation that answers it, else None
        self._solo = {point: fast[0][0] if fast is not None and len(fast) == 1 and not d.timed[point] else None
                      for point, fast in d.fast.items()}
        self._direct = d.direct
        self._by_default = d.by_default
        self._checked = d.checked
        self._event_hook = d.event_hook
        m = d.mechanism
        hot = d.hot
        self._vma_caller = d.vma_caller
        self._fault_hook = hot["handle_fault"]
        self._copy_hook = hot["copy_pte"]
        self._zap_hook = m["zap_pte"]
        self._peek_hook = m["peek_pte"]
        self._added_hook = hot["page_added"]
        self._prepare_hook = hot["wp_prepare"]
        self._reused_hook = hot["page_reused"]
        self._freed_hook = hot["page_freed"]
        self._range_hook = m["range_prepare"]
        self._split_hook = m["split_folio"]
        self._copy_page_hook = m["copy_page"]

    def clone(self) -> Engine:
        """An engine working on a copy of this one's machine, with the same policy and
        plugins; the metrics go on from this one's, listeners and warnings start anew."""
        new = object.__new__(Engine)
        new.__dict__ = self.__dict__.copy()
        new.machine = self.machine.copy()
        new.metrics = dict(self.metrics)
        new._listeners = []
        new.observed = self._event_hook is not None
        new.warnings = []
        new.rules_fired = {}
        new.zapped_by_race = []
        if self.decided is not None:
            new.decided = dict(self.decided)
        if self.riders is not None:
            new.riders = [r.copy() for r in self.riders]
        return new

    def rebind(self, pm: pluggy.PluginManager, registry: Registry, dispatch: Dispatch) -> None:
        """Ask another policy from now on: one that rode along this engine's run (the
        same plugins and flags: :mod:`.riders`) and goes on alone."""
        self._bind(pm, registry, dispatch)
        self.riders = None

    # -- bookkeeping -------------------------------------------------------------------

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event of this engine from now on."""
        self._listeners.append(listener)
        self.observed = True

    def unlisten(self, listener: Callable[[Event], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)
        self.observed = bool(self._listeners) or self._event_hook is not None

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)
        if self._event_hook is not None:
            self._event_hook(engine=self, event=event)

    def count(self, metric: str, n: int = 1) -> None:
        """Add ``n`` to a declared metric."""
        self.metrics[metric] += n

    def declares_flag(self, owner: str, name: str) -> bool:
        """Whether the policy declares the flag ``name`` on ``owner`` (``"page"`` or
        ``"mm"``): a plugin that keeps a flag in step (swap's ``anon_exclusive``) asks."""
        return FLAG_PREFIX + name in self.defaults[owner]

    def flag(self, target: Page | Mm, name: str) -> Any:
        """The value of the policy's flag ``name`` on a page or an mm (its default when
        unset); KeyError when the policy declares no such flag."""
        owner = "page" if isinstance(target, Page) else "mm"
        return target.flags.get(name, self.defaults[owner][FLAG_PREFIX + name])

    def set_flag(self, target: Page | Mm, name: str, value: Any) -> None:
        """Set the policy's flag ``name`` on a page or an mm, as a decision's effect would
        (a flag back at its default is dropped, so equal states stay equal)."""
        owner = "page" if isinstance(target, Page) else "mm"
        if value == self.defaults[owner][FLAG_PREFIX + name]:
            target.flags.pop(name, None)
        else:
            target.flags[name] = value

    def process(self, pid: int) -> Process:
        return self.machine.processes[pid]

    # -- decisions ---------------------------------------------------------------------

    def decide(self, point: str, page: Page | None, pte: Pte | None, vma: Vma | None,
               mm: Mm | None, foll: FollFlags | None = None, pid: int | None = None,
               vpn: int | None = None) -> Decision:
        """Ask the policy at ``point`` and apply the effects of its decision."""
        direct = self._direct[point]
        who = None                              # who answered: found when a message needs it
        if direct is not None and not self.observed:
            ctx = None                          # the common case: a compiled policy alone
            probe = foll.probe if foll is not None else None
            if probe is not None:
                had = set(probe)
            try:                                # answers, untimed, and no listener needs
                res = direct(page, pte, vma, mm, foll, self.machine, vpn)   # the context
            except BaseException as exc:
                self._broken(point, exc)
            if probe is not None and len(probe) > len(had):
                self._unprobe(direct, res, probe - had, (page, pte, vma, mm, foll, self.machine, vpn))
        else:
            ctx = _new_tuple(Context, (point, page, pte, vma, mm, foll, self._views, self.machine, vpn))
            solo = self._solo[point]
            if solo is not None:                # a compiled policy alone answers: untimed
                try:
                    res = solo(ctx)
                except BaseException as exc:
                    self._broken(point, exc)
            else:
                res, who = self._ask(point, ctx)
        if type(res) is Decision and res.action in self._actions[point]:
            d = res                                  # the common case: a compiled rule's
        else:
            d = self._answer(point, res, who or self._who(point))
        if self.riders is not None:                  # asked on the state this policy read
            args = (page, pte, vma, mm, foll, self.machine, vpn)
            for rider in self.riders:
                if not rider.off:
                    rider.ask(point, d, ctx, args)
        # what the policy read, before its decision's effects change the flags
        read = _state_read(ctx) if ctx is not None and self.observed else ""
        if d.effects:
            self._apply_effects(point, d, page, mm, who)
        n = self.metrics["decisions"] = self.metrics["decisions"] + 1
        self.last_point = point
        if self.decided is not None and page is not None:
            self.decided[page.pfn] = (n, point)
        rule = d.rule
        if rule is not None:
            fired = self.rules_fired
            fired[rule] = fired.get(rule, 0) + 1
        if d.warn is not None:
            self.metrics["warnings"] += 1
            self.warnings.append((point, d.warn))
        if self.observed:
            self.emit(Event("decision", pid, vpn, page.pfn if page else None, point, d, state=read))
        return d

    @staticmethod
    def _unprobe(direct: Callable[..., Any], res: Any, read: set[str], args: tuple) -> None:
        """Explore's probe (:class:`.context.FollFlags`): the flags a compiled rule read
        first at this decision (``read``) are forgotten when it decides the same with
        any of them flipped -- a rule is pure, asked again on the same state -- so the
        call went as it would have with them set.  (linux-6.2's can_follow_write_pte()
        reads FOLL_FORCE before VM_WRITE, which alone decides on a writable VMA.)"""
        if not read <= _FLIPPABLE:
            return
        foll = args[4]
        names = sorted(read)
        for mask in range(1, 1 << len(names)):
            other = foll.flipped([name for k, name in enumerate(names) if mask >> k & 1])
            try:
                if direct(*args[:4], other, *args[5:]) != res:
                    return
            except Exception:
                return
        foll.probe.difference_update(read)

    def _ask(self, point: str, ctx: Context) -> tuple[Any, str | None]:
        """The answer of the implementations at ``point`` (and who gave it), each decision
        held to DECISION_BUDGET unless only compiled policies answer."""
        fast = self._fast[point]
        who = None
        timed = self._timed[point]
        if timed:
            started = perf_counter()
        try:
            if fast is None:
                res = self._hooks[point](ctx=ctx)
            elif len(fast) == 1:
                impl, who = fast[0]
                res = impl(ctx)
            else:
                res = None
                for impl, who in fast:
                    res = impl(ctx)
                    if res is not None:
                        break
        except BaseException as exc:
            self._broken(point, exc)
        if timed and (took := perf_counter() - started) > DECISION_BUDGET:
            raise PluginError(f"the decision took {took:.2f} s; a decision may take {DECISION_BUDGET:g} s",
                              plugin=who, hook=f"policykit_{point}")
        return res, who

    def _broken(self, point: str, exc: BaseException) -> NoReturn:
        """A decision hook raised: the run's error, naming the plugin (SystemExit and the
        like are a plugin's fault too, unless they stop the whole run)."""
        if stops_the_run(exc):
            raise exc
        raise PluginError(f"{type(exc).__name__}: {exc}", plugin=_culprit(self._hooks[point], exc),
                          hook=f"policykit_{point}") from exc

    def _who(self, point: str) -> str | None:
        """The plugin that answers at ``point`` when one alone does (for messages)."""
        fast = self._fast[point]
        return fast[0][1] if fast is not None and len(fast) == 1 else None

    def _apply_effects(self, point: str, d: Decision, page: Page | None, mm: Mm | None, who: str | None) -> None:
        """Set the flags the decision's effects name (checked once per Decision);
        ``who`` answered (None: the one plugin that answers there)."""
        checked = self._checked.get(id(d))
        if checked is None or checked[0] is not d:
            checked = self._check_effects(point, d, who or self._who(point))
        for to_page, name, value, default in checked[1]:
            target = page if to_page else mm
            if target is None:
                raise PolicyDecisionError(f"decision at {point!r} sets a flag of a missing "
                                          f"{'page' if to_page else 'mm'}", plugin=who or self._who(point),
                                          hook=f"policykit_{point}")
            if default:
                target.flags.pop(name, None)
            else:
                target.flags[name] = value

    def _answer(self, point: str, res: Any, who: str | None) -> Decision:
        """A hook's answer other than a legal Decision: None (the point's default), an
        action's name, or a mistake."""
        if res is None:
            d = self._by_default[point]
            if d is None:
                raise PolicyDecisionError(
                    f"no policy answered decision point {point!r} "
                    f"(legal actions: {', '.join(sorted(self._actions[point]))})",
                    hook=f"policykit_{point}")
        elif isinstance(res, str):
            d = Decision(res)
        else:
            d = res
        if not isinstance(d, Decision) or d.action not in self._actions[point]:
            got = d.action if isinstance(d, Decision) else d
            raise PolicyDecisionError(
                f"decision point {point!r} answered {got!r}; legal actions: "
                f"{', '.join(self.registry.decision_points[point].actions)}",
                plugin=who, hook=f"policykit_{point}")
        return d

    def _check_effects(self, point: str, d: Decision, who: str | None) -> tuple[Decision, tuple]:
        """Check a decision's effects once: (decision, [(on page?, flag, value, is it the
        default?)]).  Policies return the same Decision objects again and again."""
        plan = []
        for eff in d.effects:
            kind = self._flag_types.get((eff.target, eff.name))
            if eff.target not in ("page", "mm") or kind is None:
                raise PolicyDecisionError(
                    f"decision at {point!r} sets {eff.target}.{eff.name}, which is not a "
                    f"declared {eff.target} flag", plugin=who, hook=f"policykit_{point}")
            if type(eff.value) is not kind:
                raise PolicyDecisionError(
                    f"decision at {point!r} sets {eff.target}.{eff.name} to {eff.value!r}, "
                    f"not a {kind.__name__}", plugin=who, hook=f"policykit_{point}")
            plan.append((eff.target == "page", eff.name, eff.value,
                         eff.value == self.defaults[eff.target][eff.name]))
        if len(self._checked) > 4096:           # a policy making new Decisions every time
            self._checked.clear()
        checked = self._checked[id(d)] = (d, tuple(plan))
        return checked

    # -- pages -------------------------------------------------------------------------

    def _may_allocate(self, atomic: bool) -> bool:
        """False for an injected failure (``fail_alloc``) or a GFP_ATOMIC allocation
        under memory pressure: each takes one allocation."""
        m = self.machine
        if atomic and m.pressure:
            if self.observed:
                self.emit(Event("alloc-fail", info="GFP_ATOMIC under memory pressure"))
            return False
        if m.fail_allocs:
            m.fail_allocs -= 1
            if self.observed:
                self.emit(Event("alloc-fail"))
            return False
        return True

    def _allocated(self, nr: int) -> None:
        self.nr_pages += nr
        if self.nr_pages - 1 > self.metrics["peak_pages"]:
            self.metrics["peak_pages"] = self.nr_pages - 1

    def alloc_page(self, anon: bool = True, atomic: bool = False) -> Page | None:
        """Allocate a page holding one reference for its caller; None on failure: an
        injected one (``fail_alloc``), or a GFP_ATOMIC one under memory pressure."""
        m = self.machine
        if (m.fail_allocs or (atomic and m.pressure)) and not self._may_allocate(atomic):
            return None
        pfn = m.next_pfn
        m.next_pfn += 1
        page = m.pages[pfn] = Page.fresh(pfn, anon, {}, None)
        self._allocated(1)
        if self.observed:
            self.emit(Event("alloc", pfn=pfn))
        return page

    def alloc_folio(self, nr: int, anon: bool = True, atomic: bool = False) -> list[Page] | None:
        """Allocate a large folio: ``nr`` pages with consecutive pfns in one allocation
        (``folio_alloc()`` of order log2(nr)), each holding one reference for its caller;
        ``page_count()`` of any of them is the folio's.  None on failure, as
        :meth:`alloc_page`."""
        if not self._may_allocate(atomic):
            return None
        m = self.machine
        first = m.next_pfn
        m.next_pfn += nr
        folio = Folio(first, nr, nr)
        pages = []
        table = m.pages
        fresh = Page.fresh
        for pfn in range(first, first + nr):
            page = table[pfn] = fresh(pfn, anon, {"folio": first, "folio_nr": nr}, folio)
            pages.append(page)
        self._allocated(nr)
        if self.observed:
            for page in pages:
                self.emit(Event("alloc", pfn=page.pfn))
        return pages

    def split_folio(self, page: Page) -> bool:
        """``split_folio()``: the large folio of ``page`` becomes small pages, each keeping
        its own references, mapcount and flags; plugins first undo mappings of it as a
        whole (``policykit_split_folio``).  False, and nothing changes, when a page has
        references beyond its mappings (a pin, a GUP reference, the swapcache): the
        kernel cannot split such a folio (``can_split_folio()``)."""
        folio = page.folio
        if folio is None:
            return True
        pages = self.machine.pages
        members = [p for pfn in range(folio.head, folio.head + folio.nr)
                   if (p := pages.get(pfn)) is not None]
        if any(p._refcount != p._mapcount or p.pins or p.gets for p in members):
            return False
        head = pages.get(folio.head, members[0])
        if self._split_hook is not None:
            self._split_hook(engine=self, head=head)
        for p in members:
            p.folio = None
            for key in ("folio", "folio_nr", "entire_mapcount"):
                p.attrs.pop(key, None)
        return True

    # The per-page paths below change a page's counts without its properties: a page of
    # a large folio adds the change to its folio's sums itself (see Page.refcount).

    def map_page(self, page: Page, mm: Mm, n: int = 1) -> None:
        """``mm`` maps ``page`` ``n`` more times: its mapcount, and for a page of a large
        folio the folio's mm slots (``folio_add_return_large_mapcount()``)."""
        page._mapcount += n
        folio = page.folio
        if folio is not None:
            folio.maps += n
            folio.mm_mapped(mm.mm_id, n)

    def map_pages(self, pages: Sequence[Page], mm: Mm, ref: bool = False) -> None:
        """``mm`` maps each of ``pages`` once more, as :meth:`map_page` would one by one,
        and with ``ref`` takes a reference on each (fork sharing them: ``folio_ref_add()``
        and ``folio_dup_anon_rmap_ptes()``): the pages of one large folio cost one update
        of its sums and mm slots."""
        folio = pages[0].folio if pages else None
        if folio is None or not all(p.folio is folio for p in pages):
            for page in pages:
                self.map_page(page, mm)
                if ref:
                    page.refcount += 1
            return
        for page in pages:
            page._mapcount += 1
            if ref:
                page._refcount += 1
        n = len(pages)
        folio.maps += n
        if ref:
            folio.refs += n
        folio.mm_mapped(mm.mm_id, n)

    def unmap_page(self, page: Page, mm: Mm, n: int = 1) -> None:
        """``mm`` maps ``page`` ``n`` times fewer (``folio_sub_return_large_mapcount()``)."""
        page._mapcount -= n
        folio = page.folio
        if folio is not None:
            folio.maps -= n
            folio.mm_unmapped(mm.mm_id, n)

    def put_page(self, page: Page, n: int = 1) -> None:
        if page.zero:
            return
        page._refcount -= n
        folio = page.folio
        if folio is not None:
            folio.refs -= n
        if page._refcount == 0:
            del self.machine.pages[page.pfn]
            self.nr_pages -= 1
            if self._freed_hook is not None:
                self._freed_hook(self, page)
            if self.observed:
                self.emit(Event("free", pfn=page.pfn))

    def page_added(self, page: Page, mm: Mm, vpn: int) -> None:
        """Tell plugins that a fresh ``page`` was just mapped at ``vpn`` in ``mm``
        (``policykit_page_added``): a plugin's operation that maps a new page calls it,
        as the engine's faults, COW copies and fork do."""
        if self._added_hook is not None:
            self._added_hook(self, page, mm, vpn)

    def copy_page(self, src: Page, metric: str, atomic: bool = False) -> Page | None:
        """Allocate a page and copy ``src`` into it (``copy_user_highpage``)."""
        new = self.alloc_page(atomic=atomic)
        if new is None:
            return None
        new.content = src.content
        self.metrics[metric] += 1
        self.metrics["bytes_copied"] += PAGE_SIZE
        return new

    def next_token(self) -> int:
        m = self.machine
        tok = m.next_token
        m.next_token += 1
        return tok

    # -- page table --------------------------------------------------------------------

    def zap_pte(self, mm: Mm, vpn: int) -> None:
        pte = mm.ptes.pop(vpn, None)
        if pte is None:
            return
        if not pte.present or pte.attrs or (pte.pfn in self.machine.pages
                                            and "owner" in self.machine.pages[pte.pfn].attrs):
            if self._zap_hook is None or not self._zap_hook(engine=self, mm=mm, vma=mm.find_vma(vpn),
                                                             vpn=vpn, pte=pte):
                raise PluginError(f"no plugin tears down the PTE at {vpn:#x} ({pte.attrs})")
            return
        page = self.machine.pages[pte.pfn]
        if self.observed:
            self.emit(Event("unmap", vpn=vpn, pfn=page.pfn))
        if not page.zero:
            self.unmap_page(page, mm)
            self.put_page(page)

    def zap_range(self, mm: Mm, start: int, end: int) -> None:
        ptes = mm.ptes
        if end - start > len(ptes):
            vpns = [v for v in ptes if start <= v < end]
        else:
            vpns = [v for v in range(start, end) if v in ptes]
        for vpn in vpns:
            self.zap_pte(mm, vpn)
        if mm.clean:
            mm.clean.difference_update(vpns)

    def range_prepare(self, mm: Mm, start: int, end: int) -> None:
        """Before munmap, mprotect or madvise change ``[start, end)``: plugins split what
        straddles its edges (a THP's PMD: ``vma_adjust_trans_huge``)."""
        if self._range_hook is not None:
            self._range_hook(engine=self, mm=mm, start=start, end=end)

    @staticmethod
    def merge_vmas(mm: Mm) -> None:
        """Merge neighbouring VMAs that differ in nothing (``vma_merge``)."""
        merged: list[Vma] = []
        for vma in mm.vmas:
            prev = merged[-1] if merged else None
            if prev is not None and prev.end == vma.start and prev.shared == vma.shared \
                    and prev.write == vma.write and prev.may_write == vma.may_write \
                    and prev.dontcopy == vma.dontcopy and prev.wipeonfork == vma.wipeonfork \
                    and prev.softdirty == vma.softdirty and prev.shmem == vma.shmem \
                    and prev.attrs == vma.attrs and prev.pgoff + prev.npages == vma.pgoff:
                prev.end = vma.end
            else:
                merged.append(vma)
        mm.vmas[:] = merged

    @staticmethod
    def split_vmas(mm: Mm, start: int, end: int) -> list[Vma]:
        """Split VMAs at ``start`` and ``end`` (``split_vma``); return those inside."""
        out: list[Vma] = []
        new_list: list[Vma] = []
        for vma in mm.vmas:
            pieces = [vma]
            for cut in (start, end):
                last = pieces[-1]
                if last.start < cut < last.end:
                    right = last.copy()
                    right.start = cut
                    right.pgoff = last.pgoff + (cut - last.start)
                    last.end = cut
                    pieces.append(right)
            for piece in pieces:
                new_list.append(piece)
                if start <= piece.start and piece.end <= end:
                    out.append(piece)
        mm.vmas[:] = new_list
        return out

    # -- faults ------------------------------------------------------------------------

    def handle_mm_fault(self, proc: Process, vpn: int, write: bool, unshare: bool = False,
                        force: bool = False, vma: Vma | None = None) -> Pte:
        """Fault in ``vpn`` for reading, writing, or unsharing; return the resulting PTE.

        A write to a VMA without VM_WRITE is refused (SIGSEGV) unless ``force``
        (FOLL_FORCE on a COW mapping), which breaks COW but maps the result read-only.
        ``vma``: the VMA holding ``vpn``, when the caller found it already (a fault
        changes no VMA: a loop over pages finds each once).
        """
        mm = proc.mm
        if vma is None:
            vma = mm.find_vma(vpn)
        if vma is None:
            raise OperationFailed("EFAULT", f"no VMA at page {vpn:#x}")
        if write and not vma.write and not (force and vma.is_cow_mapping):
            raise OperationFailed("EFAULT", f"write to read-only VMA at page {vpn:#x}")
        pte = mm.ptes.get(vpn)
        if write and mm.clean:
            mm.clean.discard(vpn)               # the write fault marks the PTE soft-dirty
        if self._fault_hook is not None and (vma.attrs or (pte is not None and not pte.present)):
            hook = self._fault_hook if pte is not None and not pte.present else self._vma_caller("handle_fault", vma)
            handled = hook(self, proc, vma, vpn, pte, write, unshare) if hook is not None else None
            if handled is not None:
                return handled
        if pte is None:
            return self.do_pte_missing(proc, vma, vpn, write)
        if not pte.present:
            raise PluginError(f"no plugin handles the fault on the non-present PTE at {vpn:#x} ({pte.attrs})")
        if (write and not pte.writable) or unshare:
            return self.do_wp_page(proc, vma, vpn, pte, unshare)
        return pte

    def do_pte_missing(self, proc: Process, vma: Vma, vpn: int, write: bool) -> Pte:
        """Fault on an empty PTE: ``do_anonymous_page`` or a shmem fault."""
        mm = proc.mm
        new = None
        if vma.shared:
            self.metrics["faults_shared"] += 1
            obj = self.machine.shmem[vma.shmem]  # type: ignore[index]
            off = vpn - vma.start + vma.pgoff
            pfn = obj.get(off)
            if pfn is None:
                page = self.alloc_page(anon=False)
                if page is None:
                    raise OperationFailed("ENOMEM", "shmem page allocation failed")
                obj[off] = page.pfn        # the page cache holds this reference
            else:
                page = self.machine.pages[pfn]
            page.refcount += 1
            page.mapcount += 1
            pte = Pte(page.pfn, writable=vma.write, dirty=write)
            if not write:
                self.fault_around(mm, vma, off, obj)
        elif not write:
            self.metrics["faults_read"] += 1
            pte = Pte(self.machine.zero_pfn)          # the shared zero page, read-only
        else:
            self.metrics["faults_write"] += 1
            page = self.alloc_page()
            if page is None:
                raise OperationFailed("ENOMEM", "anonymous page allocation failed")
            page.mapcount = 1
            pte = Pte(page.pfn, writable=vma.write, dirty=True)
            new = page
        mm.ptes[vpn] = pte
        if new is not None and self._added_hook is not None:
            self._added_hook(self, new, mm, vpn)
        if self.observed:
            self.emit(Event("fault", proc.pid, vpn, pte.pfn, "write" if write else "read"))
        return pte

    def fault_around(self, mm: Mm, vma: Vma, off: int, obj: dict[int, int]) -> None:
        """do_fault_around(): a read fault on shared memory also maps the pages of the
        aligned ``FAULT_AROUND_PAGES`` window around it that the shmem object holds and
        no PTE maps yet (within the VMA and its page table).  Windows are aligned on the
        object's offsets, as for a mapping placed at a 2 MiB-aligned address."""
        lo = off - off % FAULT_AROUND_PAGES
        hi = min(lo + FAULT_AROUND_PAGES, vma.pgoff + vma.npages, (off // PTRS_PER_PTE + 1) * PTRS_PER_PTE)
        pages, ptes = self.machine.pages, mm.ptes
        for o in range(max(lo, vma.pgoff), hi):
            pfn = obj.get(o)
            vpn = vma.start + o - vma.pgoff
            if o == off or pfn is None or vpn in ptes:
                continue
            page = pages[pfn]
            page.refcount += 1
            page.mapcount += 1
            ptes[vpn] = Pte(pfn, writable=vma.write)

    def do_wp_page(self, proc: Process, vma: Vma, vpn: int, pte: Pte, unshare: bool) -> Pte:
        """Write (or unshare) fault on a present PTE: reuse the page or copy it."""
        mm = proc.mm
        page = self.machine.pages[pte.pfn]
        self.metrics["faults_unshare" if unshare else "faults_wp"] += 1
        if self.observed:
            self.emit(Event("fault", proc.pid, vpn, page.pfn, "unshare" if unshare else "wp"))
        if vma.shared:                                  # wp_page_shared
            if not unshare:
                pte.writable = vma.write
                pte.dirty = True
            return pte
        if page.zero:                                   # a fresh zeroed page, not a copy
            new = self.alloc_page()
            if new is None:
                raise OperationFailed("ENOMEM", "page allocation failed replacing the zero page")
            new.mapcount = 1
            pte.pfn = new.pfn
            pte.writable = vma.write and not unshare
            pte.dirty = not unshare
            if self._added_hook is not None:
                self._added_hook(self, new, mm, vpn)
            return pte
        if unshare and pte.writable:                    # nothing to unshare
            return pte
        if not page.anon:                               # a page cache page in a private
            return self._cow_copy(proc, vma, vpn, pte, page, unshare)   # mapping: always copied
        point = "unshare_fault" if unshare else "wp_fault"
        if self._prepare_hook is not None:
            self._prepare_hook(self, proc, vma, vpn, pte, page, unshare)
        d = self.decide(point, page, pte, vma, mm, pid=proc.pid, vpn=vpn)
        if d.action == "directed_copy":                 # the others move; this mm reuses
            self.directed_copy(page, mm, "unshare_copies" if unshare else "wp_copies")
            d = Decision("reuse")
        if d.action == "reuse":                         # wp_page_reuse
            if not unshare:
                pte.writable = vma.write                # maybe_mkwrite()
                pte.dirty = True
            if self._reused_hook is not None:
                self._reused_hook(self, proc, vma, vpn, pte, page, unshare)
            return pte
        return self._cow_copy(proc, vma, vpn, pte, page, unshare)

    def directed_copy(self, page: Page, keep: Mm, metric: str) -> None:
        """COW in the direction of the page's owner: every process but ``keep``'s that maps
        ``page`` gets a copy of its own (read-only; its next write reuses it), counted in
        ``metric``.  The kernel has no such mechanism (it would have to find the other
        mappings and could not do it for a device's write): the yardstick's."""
        if page.zero or page.folio is not None or page.attrs.get("ksm") or page.attrs.get("owner"):
            raise PolicyDecisionError(f"directed_copy of page {page.pfn}: only anonymous pages that are "
                                      "mapped whole are remapped (not THP, KSM or zero pages)")
        for proc in self.machine.processes.values():
            if proc.mm is keep or not proc.alive:
                continue
            for vpn, pte in proc.mm.ptes.items():
                if pte.pfn != page.pfn or not pte.present:
                    continue
                if pte.attrs:
                    raise PolicyDecisionError(f"directed_copy of page {page.pfn}: pid {proc.pid} maps "
                                              f"it with a plugin's PTE ({pte.attrs})")
                new = self._copy_page_hook(engine=self, page=page, metric=metric) \
                    if self._copy_page_hook is not None else None
                if new is None:
                    new = self.copy_page(page, metric)
                if new is None:
                    raise OperationFailed("ENOMEM", f"directed COW: no page to copy {page.pfn} into")
                new.mapcount = 1
                pte.pfn = new.pfn
                pte.writable = False
                page.mapcount -= 1
                self.put_page(page)
                if self._added_hook is not None:
                    self._added_hook(self, new, proc.mm, vpn)
                if self.observed:
                    self.emit(Event("copy", proc.pid, vpn, new.pfn, f"directed: {page.pfn} -> {new.pfn}"))

    def _cow_copy(self, proc: Process, vma: Vma, vpn: int, pte: Pte, page: Page, unshare: bool) -> Pte:
        """wp_page_copy(): map a fresh copy of ``page`` (read-only for an unshare)."""
        mm = proc.mm
        point = "unshare_fault" if unshare else "wp_fault"
        new = self.copy_page(page, "unshare_copies" if unshare else "wp_copies")
        if new is None:
            raise OperationFailed("ENOMEM", "page allocation failed in COW")
        if self.observed:
            self.emit(Event("copy", proc.pid, vpn, new.pfn, f"{point}: {page.pfn} -> {new.pfn}"))
        new._mapcount = 1                           # a small page: no folio to sum in
        pte.pfn = new.pfn
        pte.writable = vma.write and not unshare
        pte.dirty = not unshare
        page._mapcount -= 1                         # unmap_page(), inline: once a page
        folio = page.folio
        if folio is not None:
            folio.maps -= 1
            folio.mm_unmapped(mm.mm_id, 1)
        self.put_page(page)
        if self._added_hook is not None:
            self._added_hook(self, new, mm, vpn)
        return pte

    # -- operations --------------------------------------------------------------------

    def spawn(self, name: str) -> int:
        m = self.machine
        pid = m.next_pid
        m.next_pid += 1
        m.processes[pid] = Process(pid, name, Mm(mm_id=pid))
        return pid

    def mmap(self, pid: int, npages: int, shared: bool = False, write: bool = True,
             attrs: dict[str, Any] | None = None, shmem: bool | None = None) -> int:
        """Map ``npages`` of anonymous memory; return the first page number.  ``attrs``
        marks a VMA of a plugin's (hugetlb, file); ``shmem=False`` maps a shared VMA
        without a shmem object (the plugin backs it)."""
        m = self.machine
        start = m.next_vpn
        m.next_vpn += npages + _MMAP_GAP
        obj = None
        if shared and shmem is not False:
            obj = len(m.shmem) + 1
            while obj in m.shmem:
                obj += 1
            m.shmem[obj] = {}
        mm = self.process(pid).mm
        mm.vmas.append(Vma(start, start + npages, shared=shared, write=write, shmem=obj,
                           attrs=dict(attrs or {})))
        mm.vmas.sort(key=lambda v: v.start)
        return start

    def write(self, pid: int, vpns: Iterable[int]) -> list[int]:
        """The process writes a fresh token to each page; returns the tokens."""
        proc = self.process(pid)
        mm = proc.mm
        ptes = mm.ptes
        m = self.machine
        pages = m.pages
        out = []
        vma = None
        for vpn in vpns:
            pte = ptes.get(vpn)
            if pte is None or not pte.writable:
                if vma is None or not vma.start <= vpn < vma.end:
                    vma = mm.find_vma(vpn)
                pte = self.handle_mm_fault(proc, vpn, write=True, vma=vma)
                if not pte.writable:            # the fault only mapped the page (a handler
                    pte = self.handle_mm_fault(proc, vpn, write=True, vma=vma)   # answered it): retry
            tok = m.next_token                  # next_token(), inline: once a page
            m.next_token = tok + 1
            pages[pte.pfn].content = tok
            out.append(tok)
            if self.observed:
                self.emit(Event("write", pid, vpn, pte.pfn))
        return out

    def read(self, pid: int, vpns: Iterable[int]) -> list[int]:
        """The process reads each page; returns the tokens it saw."""
        proc = self.process(pid)
        mm = proc.mm
        ptes = mm.ptes
        pages = self.machine.pages
        out = []
        vma = None
        for vpn in vpns:
            pte = ptes.get(vpn)
            if pte is None or not pte.present:
                if vma is None or not vma.start <= vpn < vma.end:
                    vma = mm.find_vma(vpn)
                pte = self.handle_mm_fault(proc, vpn, write=False, vma=vma)
            out.append(pages[pte.pfn].content)
            if self.observed:
                self.emit(Event("read", pid, vpn, pte.pfn))
        return out

    def peek(self, pid: int, vpn: int) -> int:
        """What the process would read at ``vpn``, without faulting anything in."""
        proc = self.process(pid)
        pte = proc.mm.ptes.get(vpn)
        if pte is not None and pte.present:
            return self.machine.pages[pte.pfn].content
        vma = proc.mm.find_vma(vpn)
        if self._peek_hook is not None and vma is not None and (pte is not None or vma.attrs):
            seen = self._peek_hook(engine=self, mm=proc.mm, vma=vma, vpn=vpn, pte=pte)
            if seen is not None:
                return seen
        if pte is not None:
            raise PluginError(f"no plugin says what the non-present PTE at {vpn:#x} holds")
        if vma is not None and vma.shared and vma.shmem is not None:
            pfn = self.machine.shmem[vma.shmem].get(vpn - vma.start + vma.pgoff)
            if pfn is not None:
                return self.machine.pages[pfn].content
        return ZERO_TOKEN

    def peek_many(self, pid: int, vpns: Iterable[int]) -> list[int]:
        """:meth:`peek` at each of ``vpns``."""
        ptes = self.process(pid).mm.ptes
        pages = self.machine.pages
        out = []
        for vpn in vpns:
            pte = ptes.get(vpn)
            out.append(pages[pte.pfn].content if pte is not None and pte.present else self.peek(pid, vpn))
        return out

    def fork(self, pid: int, name: str) -> int:
        """fork(): ``dup_mmap`` + ``copy_page_range``; returns the child's pid."""
        m = self.machine
        parent = self.process(pid)
        src_mm = parent.mm
        dst_mm = Mm(mm_id=m.next_pid)               # the child's pid, handed out below
        pages = m.pages
        zero_pfn = m.zero_pfn
        try:
            for src_vma in src_mm.vmas:
                if src_vma.dontcopy:
                    continue
                dst_vma = src_vma.copy()
                dst_mm.vmas.append(dst_vma)
                if src_vma.wipeonfork or src_vma.shared:
                    # No PTEs to copy: the child faults in fresh zero pages (wipe) or the
                    # shmem pages (shared) -- "a page fault will fill them correctly".
                    continue
                self.copy_pte_range(dst_mm, src_mm, dst_vma, src_vma, pages, zero_pfn, pid)
        except OperationFailed:
            for vpn in list(dst_mm.ptes):
                self.zap_pte(dst_mm, vpn)
            raise
        child = m.next_pid
        m.next_pid += 1
        m.processes[child] = Process(child, name, dst_mm)
        if self.observed:
            self.emit(Event("fork", pid, info=f"child {child}"))
        return child

    def copy_pte_range(self, dst_mm: Mm, src_mm: Mm, dst_vma: Vma, src_vma: Vma,
                       pages: dict[int, Page], zero_pfn: int, pid: int) -> None:
        src_ptes = src_mm.ptes
        dst_ptes = dst_mm.ptes
        cow = src_vma.is_cow_mapping
        if src_vma.end - src_vma.start > len(src_ptes):
            vpns: Iterable[int] = sorted(v for v in src_ptes if src_vma.start <= v < src_vma.end)
        else:
            vpns = range(src_vma.start, src_vma.end)
        plugin_vma = bool(src_vma.attrs) and self._copy_hook is not None
        owners = self._vma_caller("copy_pte", src_vma) if plugin_vma else None
        for vpn in vpns:
            pte = src_ptes.get(vpn)
            if pte is None or vpn in dst_ptes:          # a plugin copied it with a neighbour
                continue
            if plugin_vma or not pte.present:
                hook = owners if pte.present else self._copy_hook
                child = hook(self, src_mm, dst_mm, src_vma, dst_vma, vpn, pte) if hook is not None else None
                if child is False:
                    continue
                if child is not None:
                    dst_ptes[vpn] = child
                    continue
                if not pte.present:
                    raise PluginError(f"no plugin copies the non-present PTE at {vpn:#x} at fork")
            if pte.pfn == zero_pfn:
                dst_ptes[vpn] = Pte(zero_pfn)
                continue
            page = pages[pte.pfn]
            action = self.decide("fork_pte", page, pte, src_vma, src_mm, pid=pid, vpn=vpn).action
            if action == "share":
                if cow and pte.writable:
                    pte.writable = False                # ptep_set_wrprotect
                page._refcount += 1                     # as map_page() with a reference,
                page._mapcount += 1                     # inline: once a page at fork
                folio = page.folio
                if folio is not None:
                    folio.refs += 1
                    folio.maps += 1
                    folio.mm_mapped(dst_mm.mm_id, 1)
                dst_ptes[vpn] = Pte(pte.pfn, True, pte.writable, pte.dirty)
            elif action in ("copy", "copy_atomic"):     # copy_present_page
                new = self.copy_page(page, "fork_copies", atomic=action == "copy_atomic")
                if new is None:
                    raise OperationFailed("ENOMEM", f"fork: no page to copy {vpn:#x} into")
                new.mapcount = 1
                dst_ptes[vpn] = Pte(new.pfn, writable=dst_vma.write, dirty=True)
                if self._added_hook is not None:
                    self._added_hook(self, new, dst_mm, vpn)
                if self.observed:
                    self.emit(Event("copy", pid, vpn, new.pfn, f"fork_pte: {page.pfn} -> {new.pfn}"))
            else:
                raise OperationFailed("ENOMEM", f"fork_pte refused to copy {vpn:#x}")

    def exit(self, pid: int) -> None:
        """The process exits: its references are dropped, its address space torn down."""
        proc = self.process(pid)
        for ref in [r for r in self.machine.refs.values() if r.owner == pid]:
            self.release(ref.rid)
        mm = proc.mm
        for vpn in list(mm.ptes):
            self.zap_pte(mm, vpn)
        mm.vmas.clear()
        proc.alive = False
        if self.observed:
            self.emit(Event("exit", pid))

    def munmap(self, pid: int, start: int, end: int) -> None:
        mm = self.process(pid).mm
        self.range_prepare(mm, start, end)
        gone = self.split_vmas(mm, start, end)
        self.zap_range(mm, start, end)
        mm.vmas[:] = [v for v in mm.vmas if v not in gone]

    def mremap(self, pid: int, start: int, end: int) -> int:
        """mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of ``[start, end)`` to a new place, which
        it returns (aligned as a THP's would be): the VMAs and the PTEs move, the pages
        stay what they are -- part of a THP moved is one folio mapped at two places."""
        mm = self.process(pid).mm
        covered = sum(min(v.end, end) - max(v.start, start) for v in mm.vmas if v.start < end and start < v.end)
        if covered != end - start:
            raise OperationFailed("EFAULT", f"mremap: no VMA at part of pages {start:#x}..{end - 1:#x}")
        self.range_prepare(mm, start, end)
        m = self.machine
        new = -(-m.next_vpn // _MREMAP_ALIGN) * _MREMAP_ALIGN
        m.next_vpn = new + (end - start) + _MMAP_GAP
        delta = new - start
        for vma in self.split_vmas(mm, start, end):
            vma.start += delta
            vma.end += delta
        mm.vmas.sort(key=lambda v: v.start)
        moved = [(vpn, mm.ptes.pop(vpn)) for vpn in range(start, end) if vpn in mm.ptes]
        for vpn, pte in moved:
            mm.ptes[vpn + delta] = pte
        if mm.clean:
            clean = {v for v in mm.clean if start <= v < end}
            mm.clean -= clean
            mm.clean |= {v + delta for v in clean}
        for ref in m.refs.values():             # a reference holds pages; where it came from moves
            if ref.owner == pid and any(start <= v < end for v in ref.vpns):
                ref.vpns = tuple(v + delta if start <= v < end else v for v in ref.vpns)
        self.merge_vmas(mm)
        return new

    @staticmethod
    def changed_span(mm: Mm, start: int, end: int, changes: Callable[[Vma], bool]) -> tuple[int, int] | None:
        """The part of ``[start, end)`` from the first VMA that a call changes
        (``changes(vma)``) to the last, or None when it changes none.  mprotect_fixup()
        and madvise_update_vma() leave a VMA whose flags would stay as they are alone: no
        split (so no PMD split at its edge), no page table walk."""
        hit = [v for v in mm.vmas if v.start < end and start < v.end and changes(v)]
        if not hit:
            return None
        return max(start, hit[0].start), min(end, hit[-1].end)

    def mprotect(self, pid: int, start: int, end: int, write: bool) -> None:
        proc = self.process(pid)
        mm = proc.mm
        pages = self.machine.pages
        def changes(vma: Vma) -> bool:      # else mprotect_fixup() returns at once
            return vma.write != write
        span = self.changed_span(mm, start, end, changes)
        if span is None:
            return
        start, end = span
        self.range_prepare(mm, start, end)
        for vma in self.split_vmas(mm, start, end):
            if not changes(vma):
                continue
            if not write:
                vma.write = False
                for vpn in range(vma.start, vma.end):
                    pte = mm.ptes.get(vpn)
                    if pte is not None:
                        pte.writable = False
                continue
            if not vma.may_write:
                raise OperationFailed("EACCES", "mprotect(PROT_WRITE) on a VMA without VM_MAYWRITE")
            vma.write = True
            ptes = mm.ptes
            hugetlb = bool(vma.attrs.get("hugetlb"))
            for vpn in range(vma.start, vma.end):
                pte = ptes.get(vpn)
                if pte is None or pte.writable or not pte.present:
                    continue
                page = pages[pte.pfn]
                if vma.shared:
                    pte.writable = True
                elif not page.zero and page.anon and not hugetlb:
                    # hugetlb_change_protection() never upgrades: the write faults
                    d = self.decide("mprotect_pte", page, pte, vma, mm, pid=pid, vpn=vpn)
                    if d.action == "make_writable":
                        pte.writable = True
        self.merge_vmas(mm)

    def madvise(self, pid: int, start: int, end: int, advice: str) -> None:
        mm = self.process(pid).mm
        if advice == "dontneed":
            self.range_prepare(mm, start, end)
            self.zap_range(mm, start, end)
            return
        if advice in ("dontfork", "dofork"):
            flag = "dontcopy"
        elif advice in ("wipeonfork", "keeponfork"):
            flag = "wipeonfork"
        else:
            raise OperationFailed("EINVAL", f"unknown madvise advice {advice!r}")
        value = advice in ("dontfork", "wipeonfork")

        def refused(vma: Vma) -> bool:
            # madvise_behavior(): MADV_WIPEONFORK is for private anonymous memory only
            # (MADV_KEEPONFORK is never refused: there is nothing to clear)
            return advice == "wipeonfork" and bool(vma.shared or vma.attrs.get("vm_file"))

        def changes(vma: Vma) -> bool:      # (a VMA it refuses counts: the call fails there)
            return getattr(vma, flag) != value or refused(vma)
        span = self.changed_span(mm, start, end, changes)
        if span is None:                    # madvise_update_vma(): nothing to change
            return
        start, end = span
        self.range_prepare(mm, start, end)
        for vma in self.split_vmas(mm, start, end):
            if not changes(vma):
                continue
            if refused(vma):
                raise OperationFailed("EINVAL", "MADV_WIPEONFORK on a shared or file mapping")
            setattr(vma, flag, value)
        self.merge_vmas(mm)

    def clear_refs(self, pid: int) -> None:
        """``echo 4 > /proc/pid/clear_refs``: start soft-dirty tracking."""
        mm = self.process(pid).mm
        pages = self.machine.pages
        for vma in mm.vmas:
            vma.softdirty = False
            if vma.shared:
                continue
            for vpn in range(vma.start, vma.end):
                pte = mm.ptes.get(vpn)
                if pte is None or not pte.present:
                    continue
                if pte.writable:
                    page = pages[pte.pfn]
                    if self.decide("clear_refs_pte", page, pte, vma, mm, pid=pid, vpn=vpn).action != "wrprotect":
                        continue                # left as it was, its soft-dirty bit too
                    pte.writable = False
                mm.clean.add(vpn)               # clear_soft_dirty()

    def gup(self, pid: int, vpns: Iterable[int], pin: bool, write: bool = False,
            longterm: bool = False, force: bool = False, fast: bool = False,
            zap_race: bool = False, count: int = 1) -> int:
        """get_user_pages (FOLL_GET) or pin_user_pages (FOLL_PIN); returns a reference id.

        ``zap_race``: another thread's MADV_DONTNEED zaps the PTE right after each fault
        this GUP takes, before it looks again (the Dirty COW race).
        """
        proc = self.process(pid)
        mm = proc.mm
        m = self.machine
        if pin:
            mm.has_pinned = True                        # mm_set_has_pinned_flag(): sticky
        if zap_race:
            self.zapped_by_race = []
        taken: list[Page] = []
        vpns = tuple(vpns)
        # each page starts from the call's flags; a fault may change them for that page
        # (FOLL_COW, or FOLL_WRITE dropped), so it then works on a copy of its own
        flags = FollFlags(pin, write, longterm, force, fast)
        flags.probe = self.foll_probe
        vma = None
        try:
            for vpn in vpns:
                if vma is None or not vma.start <= vpn < vma.end:
                    vma = mm.find_vma(vpn)
                    if vma is None:
                        raise OperationFailed("EFAULT", f"gup: no VMA at page {vpn:#x}")
                    if write and not vma.write and not (flags.force and vma.is_cow_mapping):
                        raise OperationFailed("EFAULT", "gup: FOLL_WRITE on a read-only VMA")
                foll = flags
                race = zap_race                         # the race window opens once a page
                asked: list[str] = []                   # the faults asked for, for the error
                for _ in range(_GUP_MAX_FAULTS + 1):
                    pte = mm.ptes.get(vpn)
                    if pte is None or not pte.present:  # faultin_page()
                        if foll is flags:
                            foll = flags.copy()
                        pte = self._gup_fault(proc, vma, vpn, foll.write, foll, race)
                        if pte is None:
                            race = False
                            continue
                    page = m.pages[pte.pfn]
                    action = self.decide("gup", page, pte, vma, mm, foll, pid, vpn).action
                    if action == "grab":
                        break
                    if action == "fail":
                        raise OperationFailed("EFAULT", f"gup refused page {vpn:#x}")
                    asked.append(f"{action} (pte {'rw' if pte.writable else 'ro'}, pfn {pte.pfn})")
                    if action == "write_fault":
                        if pte.writable:
                            self.metrics["faults_wp"] += 1      # spurious: nothing to do
                        else:
                            if foll is flags:
                                foll = flags.copy()
                            race = self._gup_fault(proc, vma, vpn, True, foll, race) is not None and race
                    else:
                        self._gup_handle_fault(proc, vma, vpn, write=False, unshare=True)
                else:
                    # The kernel would retry for ever (follow_page_mask() fails again after
                    # each fault that changed nothing): GUP fails here instead, and the
                    # oracle reports it (gup-failed), with why.
                    raise OperationFailed(
                        "livelock", f"the policy asked for {len(asked)} faults at page {vpn:#x} without "
                        f"grabbing it ({'; then '.join(dict.fromkeys(asked))}"
                        f"{', each time' if len(set(asked)) == 1 else ''}): the kernel would loop for ever")
                folio = page.folio                      # try_grab_folio(), by hand
                if pin:
                    page._refcount += GUP_PIN_COUNTING_BIAS * count
                    page.pins += count
                    if folio is not None:
                        folio.refs += GUP_PIN_COUNTING_BIAS * count
                        folio.pins += count
                else:
                    page._refcount += count
                    page.gets += count
                    if folio is not None:
                        folio.refs += count
                taken.append(page)
        except OperationFailed:
            for page in taken:
                self._drop_ref(page, pin, count)
            raise
        rid = m.next_rid
        m.next_rid += 1
        m.refs[rid] = GupRef(rid, pid, vpns, [p.pfn for p in taken], pin, write, longterm, count=count)
        if self.observed:
            self.emit(Event("gup", pid, vpns[0] if vpns else None, taken[0].pfn if taken else None,
                            f"ref {rid}: {foll!r}"))
        return rid

    def _gup_handle_fault(self, proc: Process, vma: Vma, vpn: int, write: bool, unshare: bool = False,
                          force: bool = False) -> Pte:
        """handle_mm_fault() for GUP: a fault that would signal a CPU access
        (SIGBUS, SIGSEGV) fails GUP with EFAULT (vm_fault_to_errno())."""
        try:
            return self.handle_mm_fault(proc, vpn, write, unshare, force, vma)
        except OperationFailed as exc:
            if exc.errno in ("SIGBUS", "SIGSEGV"):
                raise OperationFailed("EFAULT", f"gup: the fault at page {vpn:#x} failed ({exc.errno}: "
                                      f"{exc.message})") from None
            raise

    def _refault_same(self, vma: Vma, write: bool, pte: Pte, page: Page, decisions: int) -> bool:
        """Would the zap race, after a GUP fault on an empty PTE, change nothing but the
        number of the page mapped?  So when the fault was a write fault on private
        anonymous memory that no policy was asked about, and mapped a fresh zero-filled
        page alone: zapped, the next write fault maps another just like it (explore's
        probe, :class:`.context.FollFlags`)."""
        return (write and not vma.shared and not vma.attrs and not pte.attrs
                and self.metrics["decisions"] == decisions and page.anon and not page.zero
                and page.content == ZERO_TOKEN and page._refcount == 1 and page._mapcount == 1
                and page.folio is None and not page.attrs and not page.pins and not page.gets)

    def _gup_fault(self, proc: Process, vma: Vma, vpn: int, write: bool, foll: FollFlags,
                   zap_race: bool) -> Pte | None:
        """faultin_page().  After a write fault on a VMA without VM_WRITE (FOLL_FORCE) the
        policy says how GUP looks again: with FOLL_COW (4.9+) or without FOLL_WRITE
        (before: Dirty COW).  With ``zap_race`` the result is zapped at once (another
        thread's MADV_DONTNEED won the race); None then."""
        probe = foll.probe
        if probe is not None:
            was = proc.mm.ptes.get(vpn)
            decisions = self.metrics["decisions"]
        # (FOLL_FORCE counts only for a write to a VMA without VM_WRITE: read just then)
        pte = self._gup_handle_fault(proc, vma, vpn, write, force=write and not vma.write and foll.force)
        page = self.machine.pages[pte.pfn]
        fresh = probe is not None and was is None and self._refault_same(vma, write, pte, page, decisions)
        # COW broken for FOLL_FORCE (VM_FAULT_WRITE): the PTE now maps an anonymous page.  A
        # fault that mapped a page cache page (UFFDIO_CONTINUE) broke nothing.
        if write and not vma.write and page.anon:
            if self.decide("gup_cow_retry", page, pte, vma, proc.mm, foll, proc.pid, vpn).action == "drop_write":
                foll.write = False
            else:
                foll.cow = True
        if probe is not None:                   # the race would open here (and the next
            # fault repeat this one only as a write fault again)
            probe.add("zap_race_same" if fresh and foll.write else "zap_race")
        if zap_race:
            self.zap_pte(proc.mm, vpn)
            self.zapped_by_race.append(vpn)
            return None
        return pte

    def _drop_ref(self, page: Page, pin: bool, count: int = 1) -> None:
        if pin:
            page.pins -= count
            note_pins(page, -count)
            self.put_page(page, GUP_PIN_COUNTING_BIAS * count)
        else:
            page.gets -= count
            self.put_page(page, count)

    def release(self, rid: int) -> None:
        """unpin_user_pages() or put_page() on every page of a reference."""
        ref = self.machine.refs.pop(rid)
        ref.live = False
        pages = self.machine.pages
        for pfn in ref.pfns:
            self._drop_ref(pages[pfn], ref.pin, ref.count)
        if self.observed:
            for pfn in ref.pfns:
                self.emit(Event("unpin" if ref.pin else "put", ref.owner, pfn=pfn, info=f"ref {rid}"))

    def dma_write(self, rid: int, index: Iterable[int]) -> list[int]:
        """A device writes a fresh token through the reference into each indexed page."""
        ref = self.machine.refs[rid]
        pages = self.machine.pages
        owner = self.process(ref.owner)
        out = []
        for i in index:
            page = pages[ref.pfns[i]]
            pte = owner.mm.ptes.get(ref.vpns[i])
            mapped = pte is not None and pte.present and pte.pfn == page.pfn
            if page.anon and not page.zero and page.mapcount > mapped:   # others map it too
                d = self.decide("dma_write", page, pte if mapped else None,
                                owner.mm.find_vma(ref.vpns[i]) if mapped else None, owner.mm,
                                pid=ref.owner, vpn=ref.vpns[i])
                if d.action == "directed_copy":
                    self.directed_copy(page, owner.mm, "wp_copies")
            tok = self.next_token()
            page.content = tok
            out.append(tok)
            if self.observed:
                self.emit(Event("dma_write", ref.owner, ref.vpns[i], ref.pfns[i]))
        return out

    def dma_read(self, rid: int, index: Iterable[int]) -> list[int]:
        """A device reads each indexed page through the reference."""
        ref = self.machine.refs[rid]
        pages = self.machine.pages
        if self.observed:
            for i in index:
                self.emit(Event("dma_read", ref.owner, ref.vpns[i], ref.pfns[i]))
        return [pages[ref.pfns[i]].content for i in index]
