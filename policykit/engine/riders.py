"""Policies that ride along another policy's run, asked at each of its decisions.

A run under one policy takes the same steps as a run under another for as long as
their decisions agree: the mechanism between decisions is the same code reading the
same state.  A *rider* is another policy asked at every decision the run's own policy
makes, on the same state, before the decision's effects: while each of its answers is
the same action with the same effects on the same flags, the run is also the rider's
run, and its result is the rider's (with the rider's own rules and warnings).  At the
first answer that differs the rider falls off: a corpus run is taken again alone
(:func:`policykit.batch.run_group`), a search's step again from the state before it
(:func:`policykit.explore.search.take`).

Only a policy whose decisions are all that sets it apart may ride: the same plugins,
the same declared flags (plugins read a policy's ``anon_exclusive``), no hook of its
own but decisions (:func:`why_not`).
"""

from __future__ import annotations

from time import perf_counter
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from ..guard import stops_the_run
from ..limits import DECISION_BUDGET
from .context import Context, attribute_defaults
from .specs import Decision, Registry

if TYPE_CHECKING:
    from .mm import Dispatch

#: hooks called while a registry is built, not during runs: a policy may implement them
_REGISTRY_HOOKS = frozenset({
    "policykit_addhooks", "policykit_addoption", "policykit_configure", "policykit_add_attributes",
    "policykit_add_decision_points", "policykit_add_operations", "policykit_add_metrics",
    "policykit_add_violation_classes", "policykit_add_variants", "policykit_add_scenario_dirs"})


class Rider:
    """One policy riding along a run: its answers so far, or ``off`` since one differed."""

    __slots__ = ("name", "index", "session", "dispatch", "defaults", "same", "rules_fired", "warnings", "lines",
                 "off")

    def __init__(self, name: str, dispatch: Dispatch, registry: Registry, primary: Dispatch, index: int,
                 session: Any = None) -> None:
        self.name = name
        #: the rider's place among the policies run together (the run's own is 0)
        self.index = index
        #: what runs the rider's policy alone, once it falls off (a session)
        self.session = session
        self.dispatch = dispatch
        #: decision point -> the action when the rider's hooks give None
        self.defaults = {n: spec.default for n, spec in registry.decision_points.items()}
        #: the points where the rider's hooks are the run's policy's, code for code: its
        #: answer there is that policy's, not asked again (a mutant differs at one point)
        self.same = frozenset(point for point, mine in dispatch.fast.items()
                              if (theirs := primary.fast.get(point)) is not None and mine is not None
                              and len(mine) == len(theirs)
                              and all(same_code(a, b) for (a, _), (b, _) in zip(mine, theirs)))
        #: what :attr:`Engine.rules_fired` and :attr:`Engine.warnings` hold for the run's policy
        self.rules_fired: dict[str, int] = {}
        self.warnings: list[tuple[str, str]] = []
        #: the warnings as a run reports them (``line N: point: message``), kept by the caller
        self.lines: list[str] = []
        self.off = False

    def copy(self) -> Rider:
        new = object.__new__(Rider)
        new.name, new.index, new.session = self.name, self.index, self.session
        new.dispatch, new.defaults = self.dispatch, self.defaults
        new.same, new.off = self.same, self.off
        new.rules_fired, new.warnings, new.lines = dict(self.rules_fired), list(self.warnings), list(self.lines)
        return new

    def ask(self, point: str, d: Decision, ctx: Context | None, args: tuple[Any, ...]) -> None:
        """Ask at ``point``, with the context the run's policy was given (riders declare
        what it declares: the same defaults), what that policy answered ``d``; fall off
        unless the answer is the same action with the same effects.  Whatever goes wrong
        in the rider's hooks (an exception, an illegal answer, too long a decision) makes
        it fall off too: its run alone says so, as it would have.  ``args``: what the
        context holds, ``(page, pte, vma, mm, foll, machine, vpn)``, for a rider whose
        compiled rules alone answer (and a context made of them when ``ctx`` is None)."""
        if point in self.same:
            res = d
        else:
            direct = self.dispatch.direct[point]
            if direct is not None:              # the common case, inline: compiled rules alone
                try:
                    res = direct(*args)
                except BaseException as exc:
                    if stops_the_run(exc):
                        raise
                    self.off = True
                    return
                if type(res) is not Decision or res.action != d.action or res.effects != d.effects:
                    res = self._settle(point, d, res)
                elif res.action not in self.dispatch.actions[point]:
                    res = None
            else:
                res = self._answer(point, d, ctx, args)
            if res is None:
                self.off = True
                return
        if res.rule is not None:
            self.rules_fired[res.rule] = self.rules_fired.get(res.rule, 0) + 1
        if res.warn is not None:
            self.warnings.append((point, res.warn))

    def _answer(self, point: str, d: Decision, ctx: Context | None, args: tuple[Any, ...]) -> Decision | None:
        """The rider's answer when it is ``d``, from hooks called with a context (held to
        the decision budget where they are timed); else None."""
        disp = self.dispatch
        res = None
        try:
            if ctx is None:
                page, pte, vma, mm, foll, machine, vpn = args
                ctx = disp.views.context(point, page, pte, vma, mm, foll, machine, vpn)
            timed = disp.timed[point]
            if timed:
                started = perf_counter()
            for impl, _ in disp.fast[point]:  # type: ignore[union-attr]
                res = impl(ctx)
                if res is not None:
                    break
        except BaseException as exc:
            if stops_the_run(exc):
                raise
            return None
        if timed and perf_counter() - started > DECISION_BUDGET:
            return None
        return self._settle(point, d, res)

    def _settle(self, point: str, d: Decision, res: Any) -> Decision | None:
        """The rider's answer ``res`` as a decision, when it is ``d``; else None."""
        disp = self.dispatch
        if not isinstance(res, Decision):
            if res is None and self.defaults[point] is not None:
                res = Decision(self.defaults[point], rule="(default)")
            elif isinstance(res, str):
                res = Decision(res)
            else:
                return None
        if res.action != d.action or res.effects != d.effects or res.action not in disp.actions[point]:
            return None
        return res


def same_code(a: Any, b: Any, seen: set[tuple[int, int]] | None = None) -> bool:
    """``a`` and ``b`` compute the same: functions with equal code wherever it stands
    (and equal defaults and closures), every global they name the same in turn; other
    values equal and hashable (a dict or a list a function keeps state in is never taken
    as the same).  Two policies compiled from texts that differ elsewhere have such hooks."""
    if a is b:
        return True
    if seen is None:
        seen = set()
    if (id(a), id(b)) in seen:              # recursion: the same so far
        return True
    seen.add((id(a), id(b)))
    if isinstance(a, FunctionType) and isinstance(b, FunctionType):
        if _unplaced(a.__code__) != _unplaced(b.__code__) or a.__defaults__ != b.__defaults__ \
                or a.__kwdefaults__ != b.__kwdefaults__:
            return False
        cells_a, cells_b = a.__closure__ or (), b.__closure__ or ()
        if len(cells_a) != len(cells_b) or not all(
                same_code(x.cell_contents, y.cell_contents, seen) for x, y in zip(cells_a, cells_b)):
            return False
        ga, gb = a.__globals__, b.__globals__
        return all((n in ga) == (n in gb) and (n not in ga or same_code(ga[n], gb[n], seen))
                   for n in a.__code__.co_names)
    if type(a) is not type(b) or isinstance(a, (FunctionType, MethodType, ModuleType)):
        return False
    try:                    # a value that can change (unhashable: a dict, a list) may differ later
        hash(a)
        return bool(a == b)
    except Exception:                       # noqa: BLE001 - not comparable: not the same
        return False


def _unplaced(code: CodeType) -> CodeType:
    """``code`` without where it stands in its file: a rule two policies inherit compiles
    to the same code at other lines of each (code objects compare their line numbers)."""
    return code.replace(co_firstlineno=1, co_linetable=b"")


def why_not(pm: pluggy.PluginManager, registry: Registry, policy: str,
            other_pm: pluggy.PluginManager, other_registry: Registry, other: str,
            other_dispatch: Dispatch) -> str | None:
    """Why policy ``other`` (plugin ``policy:<other>`` of ``other_pm``) cannot ride
    along runs of ``policy``: None when it can."""
    if getattr(pm, "traced", False) or getattr(other_pm, "traced", False):
        return "hook calls are traced"
    if other_dispatch.event_hook is not None:
        return "a plugin watches engine events, which name the run's own policy's rules"
    if any(fast is None for fast in other_dispatch.fast.values()):
        return "a decision hook is not called with the context alone"

    def flags(reg: Registry) -> set[tuple[Any, ...]]:
        return {(a.owner, a.name, a.type, a.default) for a in reg.attributes.values() if a.flag}

    def declared(reg: Registry) -> tuple[Any, ...]:
        attrs = {(a.owner, a.name, a.type, a.default) for a in reg.attributes.values() if not a.flag}
        return attrs, reg.decision_points, set(reg.operations), set(reg.metrics)

    if flags(registry) != flags(other_registry):
        return "the policies declare different flags"
    if declared(registry) != declared(other_registry) or attribute_defaults(registry) != other_dispatch.defaults:
        return "the plugins declare different things"
    mine, theirs = f"policy:{policy}", f"policy:{other}"
    names = {n for n in vars(pm.hook)} | {n for n in vars(other_pm.hook)}
    for name in names - _REGISTRY_HOOKS:
        a, b = getattr(pm.hook, name, None), getattr(other_pm.hook, name, None)
        impls = [[(i.plugin_name, i.function) for i in (h.get_hookimpls() if h is not None else ())
                  if i.plugin_name not in (mine, theirs)] for h in (a, b)]
        if impls[0] != impls[1]:
            return f"the plugins differ at {name}"
        point = name[len("policykit_"):]
        for h, who in ((a, mine), (b, theirs)):
            if h is not None and point not in registry.decision_points and any(
                    i.plugin_name == who for i in h.get_hookimpls()):
                return f"policy {who[7:]} implements {name}, which is not a decision"
    return None
