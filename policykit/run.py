"""Running scenarios under a policy: engine + oracle + expectations.  Never prints."""

from __future__ import annotations

import contextlib
import gc
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._manager import Policy, build_registry, check_policy_complete, get_plugin_manager
from .engine import builtin
from .engine.invariants import check_invariants
from .engine.mm import Dispatch, Engine, Event, OperationFailed, Outcome
from .engine.specs import OperationSpec, Registry
from .errors import PluginError
from .guard import Deadline, deadline, stops_the_run
from .oracle import Oracle, Violation
from .scenario import load_scenario, load_scenarios, scenario_from_text
from .scenario.model import Scenario, Step


if TYPE_CHECKING:
    from .engine.riders import Rider

#: the metrics of the core engine (see :func:`policykit.engine.builtin.policykit_add_metrics`)
CORE_METRICS = frozenset(m.name for m in builtin.policykit_add_metrics())
_NOT_COSTS = frozenset({"decisions", "warnings", "peak_pages"})


_collector_held = False


@contextlib.contextmanager
def collector_for_runs() -> Iterator[None]:
    """Runs allocate many short-lived objects and few cycles: while they go, the cyclic
    collector leaves alone what was there before them (``gc.freeze()``, which also spares
    forked workers copying the pages it would touch) and runs less often.  Inside
    another such block, or where the collector is off, it changes nothing."""
    global _collector_held
    if _collector_held or not gc.isenabled():
        yield
        return
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, *threshold[1:])
    _collector_held = True
    try:
        yield
    finally:
        _collector_held = False
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """While a corpus is read back (tens of thousands of objects unpickled, none in a
    cycle) the cyclic collector waits: its passes over the growing heap cost a third of
    the loading.  The runs that follow freeze what was loaded (:func:`collector_for_runs`),
    so that no pass goes over it again."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(slots=True)
class StepRecord:
    """What one step did, for ``--trace`` and ``explain``."""

    index: int
    step: Step
    status: str                                  # ok | failed | skipped | error
    message: str = ""
    events: list[Event] = field(default_factory=list)
    pages: list[tuple[int, int, int]] = field(default_factory=list)   # (pfn, refcount, mapcount)


@dataclass
class RunResult:
    """One scenario under one policy."""

    scenario: Scenario
    policy: str
    violations: list[Violation]
    metrics: dict[str, int]
    steps: list[StepRecord]
    warnings: list[str] = field(default_factory=list)
    budget_failures: list[str] = field(default_factory=list)
    #: how often each rule of the policy (``file:line``) decided
    rules: dict[str, int] = field(default_factory=dict)
    #: (the violations list, its length, classes, verdict) when last asked: a report
    #: asks each result again and again, and plugins only add violations
    _seen: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def _verdicts(self) -> tuple[Any, ...]:
        violations = self.violations
        seen = self._seen
        if seen is None or seen[0] is not violations or seen[1] != len(violations):
            classes = frozenset(v.cls for v in violations)
            seen = self._seen = (violations, len(violations), classes, " ".join(sorted(classes)) or "ok")
        return seen

    @property
    def classes(self) -> frozenset[str]:
        return self._verdicts()[2]  # type: ignore[no-any-return]

    @property
    def verdict(self) -> str:
        return self._verdicts()[3]  # type: ignore[no-any-return]

    @property
    def expected(self) -> frozenset[str] | None:
        exp = self.scenario.expectations.get(self.policy)
        return exp.classes if exp is not None else None

    @property
    def expectation_met(self) -> bool | None:
        exp = self.expected
        return None if exp is None else exp == self.classes

    @property
    def passed(self) -> bool:
        """Met its expectation (if it states one for this policy; else had no violation)
        and kept within every budget."""
        met = self.expectation_met
        ok = (not self.violations) if met is None else met
        return ok and not self.budget_failures

    @property
    def copies(self) -> int:
        m = self.metrics
        return m["fork_copies"] + m["wp_copies"] + m["unshare_copies"]

    @property
    def plugin_metrics(self) -> dict[str, int]:
        """The metrics plugins declare (``swapins``, ``thp_splits``...), by name."""
        return {k: v for k, v in self.metrics.items() if k not in CORE_METRICS}

    @property
    def costs(self) -> tuple[tuple[str, int], ...]:
        """What a run cost, as compared between policies: copies by kind, bytes copied,
        faults by kind and every plugin metric (not the count of decisions, warnings or
        the peak of pages, which say nothing of the mechanism's work)."""
        return tuple(sorted((k, v) for k, v in self.metrics.items() if k not in _NOT_COSTS))


class Session:
    """A policy loaded with the installed plugins, ready to run scenarios.

    Building the plugin manager and registry once per policy keeps running a corpus
    cheap; each :meth:`run` gets a fresh machine.
    """

    def __init__(self, policy: Policy, plugins: Iterable[Any] = (), autoload: bool | None = None) -> None:
        self.policy = policy
        self.pm = get_plugin_manager(policy, list(plugins), autoload)
        self.registry: Registry = build_registry(self.pm)
        check_policy_complete(self.pm, self.registry, policy)
        self._dispatch: Dispatch | None = None
        #: what :meth:`run` allows a run when not told: seconds (None: no limit), and
        #: pages in the machine (None: no limit beyond the scenario checker's)
        self.timeout: float | None = None
        self.max_pages: int | None = None

    def _extra_refs(self, engine: Engine):  # type: ignore[no-untyped-def]
        hook = self.pm.hook.policykit_page_refs
        if not hook.get_hookimpls():
            return None
        return lambda page: sum(hook(machine=engine.machine, page=page))

    def _error(self, exc: BaseException, where: str, default: str) -> str:
        if isinstance(exc, PluginError):
            who = ", ".join(x for x in (f"plugin {exc.plugin!r}" if exc.plugin else "",
                                        f"hook {exc.hook}" if exc.hook else "") if x)
            return f"{who}: {exc}" if who else str(exc)
        text = f": {exc}" if str(exc) else ""
        return f"{type(exc).__name__} in {where} of {_blame(exc, self.pm, default)}{text}"

    def load(self, path: str, variant: str | None = None) -> Scenario:
        """The scenario in ``path`` (with variants: the one named)."""
        return load_scenario(path, self.registry, variant)

    def load_all(self, path: str, skipped: list[tuple[str, str]] | None = None) -> list[Scenario]:
        """The scenario in ``path``, or one per variant it lists (see :func:`load_scenarios`)."""
        return load_scenarios(path, self.registry, skipped)

    def parse(self, text: str, filename: str = "<scenario>", variant: str | None = None) -> Scenario:
        return scenario_from_text(text, filename, self.registry, variant)

    def start(self) -> Runner:
        """A fresh machine and oracle, ready to take steps one by one."""
        engine = Engine(self.pm, self.registry, dispatch=self.dispatch)
        return Runner(self, engine, Oracle(engine, self.pm))

    @property
    def dispatch(self) -> Dispatch:
        """How engines of this session call the policy and plugins, worked out once."""
        if self._dispatch is None:
            self._dispatch = Dispatch(self.pm, self.registry)
        return self._dispatch

    def run(self, scenario: Scenario, trace: bool = False, invariants: bool = False,
            timeout: float | None = None, max_pages: int | None = None) -> RunResult:
        """Run ``scenario``.  Whatever goes wrong inside -- a plugin raising anything
        (SystemExit included), a broken engine invariant (checked after every step with
        ``invariants``), more than ``timeout`` seconds, more than ``max_pages`` pages in
        the machine (both default to the session's) -- ends this run with an ``error``
        verdict that says where and why; only the user's Ctrl-C propagates (see
        :mod:`policykit.guard`)."""
        timeout = self.timeout if timeout is None else timeout
        max_pages = self.max_pages if max_pages is None else max_pages
        runner = self.start()
        engine, oracle = runner.engine, runner.oracle
        records: list[StepRecord] = []
        current: list[Event] = []
        if trace:
            engine.listen(current.append)
        warnings: list[str] = []
        step: Step | None = None
        try:
            with deadline(timeout), collector_for_runs():
                for index, step in enumerate(scenario.steps):
                    rec = runner.step(index, step)
                    records.append(rec)
                    if rec.status == "error":
                        break
                    if rec.status == "skipped":
                        continue
                    if trace:
                        rec.events = list(current)
                        current.clear()
                        rec.pages = _touched_pages(engine, rec.events)
                    if self._after_step(runner, rec, warnings, max_pages, invariants):
                        break
                # after an error the machine is mid-operation: its final state proves nothing
                if not any(rec.status == "error" for rec in records):
                    self._audit(runner)
        except Deadline:
            where = f"line {step.line}: '{step.text}'" if step is not None else "the start"
            message = f"the run took more than {timeout:g} s (at {where})"
            if records and records[-1].step is step:
                records[-1].status, records[-1].message = "error", message
            elif step is not None:              # cut short inside the step
                records.append(StepRecord(len(records), step, "error", message))
            oracle.report("error", message, key=-1)
        return self._result(scenario, runner, records, warnings)

    def run_many(self, scenarios: Sequence[Scenario], invariants: bool = False, timeout: float | None = None,
                 max_pages: int | None = None,
                 on_result: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
        """``[self.run(s) for s in scenarios]``, taking the steps that scenarios begin with
        once for all of them (see :mod:`policykit.batch`): the same results, the corpus
        several times faster.  ``on_result(i, result)`` is told of each as it is done."""
        from .batch import run_batch

        timeout = self.timeout if timeout is None else timeout
        max_pages = self.max_pages if max_pages is None else max_pages
        return run_batch(self, scenarios, invariants, timeout, max_pages, on_result)

    def _after_step(self, runner: Runner, rec: StepRecord, warnings: list[str], max_pages: int | None,
                    invariants: bool) -> bool:
        """After a step that ran: the warnings it gave, then the run's limits (and, with
        ``invariants``, the engine's).  True when one is broken: the step's record and the
        oracle then say so, and the run stops."""
        engine = runner.engine
        while len(warnings) < len(engine.warnings):
            point, message = engine.warnings[len(warnings)]
            warnings.append(f"line {rec.step.line}: {point}: {message}")
        problem = self._limits(engine, max_pages)
        if problem is None and invariants:
            problem = self._invariants(engine, self._extra_refs(engine))
        if problem is None:
            return False
        rec.status, rec.message = "error", problem
        runner.oracle.report("error", problem, key=-1)
        return True

    def _audit(self, runner: Runner) -> None:
        """The end-of-run audit; a plugin's fault in it is the run's error."""
        try:
            runner.oracle.finish()
        except BaseException as exc:
            if stops_the_run(exc):
                raise
            runner.oracle.report("error", self._error(exc, "the end-of-run audit", "a plugin"), key=-1)

    def _result(self, scenario: Scenario, runner: Runner, records: list[StepRecord],
                warnings: list[str], rider: Rider | None = None) -> RunResult:
        """The run's result, as it stands: its budgets checked, plugins told.  With
        ``rider``: the result of this session's policy, which rode along the run of
        another's to the end (see :mod:`policykit.engine.riders`)."""
        engine = runner.engine
        metrics = dict(engine.metrics)
        rules = engine.rules_fired
        if rider is not None:                   # the same run; the rider's rules and warnings
            metrics["warnings"] += len(rider.warnings) - len(engine.warnings)
            rules = rider.rules_fired
        result = RunResult(scenario, self.policy.name, list(runner.oracle.violations), metrics,
                           records, list(warnings), rules=dict(rules))
        for bound in scenario.budgets.get(self.policy.name, ()):
            actual = metrics[bound.metric]
            if not bound.holds(actual):
                result.budget_failures.append(f"{bound} (was {actual})")
        try:
            self.pm.hook.policykit_run_finish(result=result)
        except BaseException as exc:
            if stops_the_run(exc):
                raise
            result.violations.append(Violation("error", None, None,
                                               self._error(exc, "policykit_run_finish", "a plugin")))
        return result

    @staticmethod
    def _limits(engine: Engine, max_pages: int | None) -> str | None:
        pages = len(engine.machine.pages)
        if max_pages is not None and pages > max_pages:
            return f"the machine holds {pages:,} pages, more than --max-pages {max_pages:,}"
        return None

    def _invariants(self, engine: Engine, extra_refs: Any) -> str | None:
        try:
            problems = check_invariants(engine.machine, extra_refs)
        except BaseException as exc:       # a plugin's page_refs raised or answered nonsense
            if stops_the_run(exc):
                raise
            return self._error(exc, "policykit_page_refs", "a plugin")
        return "engine invariant broken: " + "; ".join(problems) if problems else None


class Runner:
    """A run in progress: the engine, the oracle and the scenario's names (processes,
    regions, references), taking one step at a time.  :meth:`copy` snapshots it, which
    is how ``explore`` tries every next step from one state."""

    __slots__ = ("session", "engine", "oracle", "pids", "bases", "rids", "sizes", "gone")

    def __init__(self, session: Session, engine: Engine, oracle: Oracle) -> None:
        self.session, self.engine, self.oracle = session, engine, oracle
        self.pids: dict[str, int] = {}
        self.bases: dict[str, int] = {}
        self.rids: dict[str, int] = {}
        #: pages of each region
        self.sizes: dict[str, int] = {}
        #: names whose creating step failed (the name tables, this too, are replaced by a
        #: step that changes them, never changed: :meth:`copy` shares them)
        self.gone: frozenset[str] = frozenset()

    def copy(self, fresh: bool = False) -> Runner:
        """An independent snapshot: a copy of the machine and the oracle, the same
        policy and plugins; the engine's counters start from this one's.  ``fresh``:
        the copy's oracle starts with no violations reported (explore's way)."""
        engine = self.engine.clone()
        new = _new(Runner)
        new.session, new.engine, new.oracle = self.session, engine, self.oracle.copy(engine, fresh)
        # names to ids: a step replaces a table rather than change it, so copies share them
        new.pids, new.bases, new.rids = self.pids, self.bases, self.rids
        new.sizes = self.sizes
        new.gone = self.gone
        return new

    def copy_for(self, session: Session, fresh: bool = False) -> Runner:
        """:meth:`copy`, going on under ``session``'s policy: one that rode along this
        run so far (the same plugins and flags: :mod:`policykit.engine.riders`)."""
        new = self.copy(fresh)
        new.session = session
        new.engine.rebind(session.pm, session.registry, session.dispatch)
        new.oracle.rebind(session.pm)
        return new

    def branch(self) -> Runner:
        """A copy that goes on as this run would: the violations, warnings and rules fired
        so far carried over (:meth:`copy` starts those anew)."""
        new = self.copy()
        engine = new.engine
        engine.warnings = list(self.engine.warnings)
        engine.rules_fired = dict(self.engine.rules_fired)
        engine.zapped_by_race = list(self.engine.zapped_by_race)
        return new

    def step(self, index: int, step: Step) -> StepRecord:
        """Take ``step`` (the ``index``-th): the engine applies it, the oracle judges it.
        The record's status is ``ok``, ``failed`` (as the kernel fails it), ``skipped``
        (it names what an earlier failed step did not make) or ``error`` (a policy or
        plugin misbehaved: the run cannot go on)."""
        engine, oracle = self.engine, self.oracle
        rec = StepRecord(index, step, "ok")
        spec = self.session.registry.operations[step.op]
        gone = self.gone
        if gone:
            names = _names_used(step, spec)
            if names & gone:
                rec.status = "skipped"
                rec.message = f"{', '.join(sorted(names & gone))} does not exist (an earlier step failed)"
                if step.result:
                    self.gone = gone | {step.result}
                return rec
        args = _resolve(step, spec, self.pids, self.bases, self.rids)
        try:
            if engine.observed:
                engine.emit(Event("step", info=step.text, step=index))
            oracle.before(index, step, args)
            outcome = spec.apply(engine, args)
        except OperationFailed as exc:
            outcome = Outcome(ok=False, errno=exc.errno, message=exc.message)
        except BaseException as exc:  # a policy's or plugin's code raised (SystemExit too)
            if stops_the_run(exc):
                raise
            rec.status, rec.message = "error", self.session._error(exc, f"operation {step.op!r}", spec.provider)
            oracle.report("error", rec.message, key=-1)
            return rec
        if not outcome.ok:
            rec.status, rec.message = "failed", f"{outcome.errno}: {outcome.message}"
            if step.result:
                self.gone = gone | {step.result}
        elif step.result:
            # the name tables are shared with the copies made before: replaced, not changed
            kind = spec.result
            table = "pids" if kind == "process" else "rids" if kind == "ref" else "bases"
            setattr(self, table, {**getattr(self, table), step.result: outcome.result})
            if kind == "region":
                self.sizes = {**self.sizes, step.result: len(args["region"]) if "region" in args
                              else args.get("pages", 1)}
        try:
            oracle.step(index, step, args, outcome)
        except BaseException as exc:  # an oracle check of a plugin's raised
            if stops_the_run(exc):
                raise
            rec.status, rec.message = "error", self.session._error(exc, "an oracle check", "a plugin")
            oracle.report("error", rec.message, key=-1)
        return rec


_new = object.__new__


def _names_used(step: Step, spec: OperationSpec) -> set[str]:
    out = set()
    for p in spec.params:
        value = step.params[p.name]
        if p.kind == "process":
            out.add(value)
        elif p.kind in ("region", "ref"):
            out.add(value[0])
    return out


def _resolve(step: Step, spec: OperationSpec, pids: dict[str, int], bases: dict[str, int],
             rids: dict[str, int]) -> dict[str, Any]:
    """Scenario names to engine ids: processes to pids, regions to page-number ranges,
    references to (id, index range)."""
    out = dict(step.params)
    for p in spec.params:
        value = step.params[p.name]
        if p.kind == "process":
            out[p.name] = pids[value]
        elif p.kind == "region":
            name, lo, hi = value
            out[p.name] = range(bases[name] + lo, bases[name] + hi)
        elif p.kind == "ref":
            name, lo, hi = value
            out[p.name] = (rids[name], range(lo, hi))
    return out


def _touched_pages(engine: Engine, events: list[Event]) -> list[tuple[int, int, int]]:
    pages = engine.machine.pages
    seen = dict.fromkeys(e.pfn for e in events if e.pfn is not None)
    return [(pfn, pages[pfn].refcount, pages[pfn].mapcount) for pfn in seen if pfn in pages]


def _blame(exc: BaseException, pm: Any, default: str) -> str:
    """Name the plugin whose code raised, from the traceback."""
    files = {}
    for name, plugin in pm.list_name_plugin():
        f = getattr(plugin, "__file__", None)
        if f:
            files[f] = name
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in files:
            return f"{files[frame.filename]} ({frame.filename}:{frame.lineno})"
    return default
