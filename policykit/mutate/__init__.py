"""``policykit mutate``: how much of a policy the corpus checks (mutation testing).

Each one-token mutant of the policy (:mod:`.operators`) runs on the corpus and is
*killed* when a scenario's verdict classes, or its costs (copies by kind, bytes, faults
by kind, plugin metrics), differ from the original's; else it *survives*.  The
original's runs are made once; mutants ride along another run of the corpus by the
original, in batches (:mod:`policykit.engine.riders`), and run alone only on the
scenarios where they decided otherwise; there a mutant stops at its first verdict
difference (one that differs in cost only runs on, in case a verdict differs too);
scenarios that killed more mutants are tried first; batches are shared out between
forked workers.  A survivor may then be searched by ``diverge`` within bounds: a
witness is a gap in the corpus (written as a ``.scn``), none means equivalent within
those bounds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..dsl import check_policy, resolver
from ..dsl.check import CheckedPolicy
from ..errors import PolicyKitError
from ..run import RunResult, Session
from ..scenario.model import Scenario
from .operators import OPERATORS, Mutant, mutant_file, mutant_text, mutants

__all__ = ["OPERATORS", "Mutant", "MutantResult", "Mutation", "check_operators", "mutate", "mutant_text",
           "mutants"]


@dataclass
class MutantResult:
    """What became of one mutant: ``status`` is ``killed`` (a verdict differs), ``cost``
    (killed by costs only), ``survived`` or ``invalid`` (it does not check); ``by`` the
    scenario that killed it, ``detail`` what differed (or the first check error)."""

    mutant: Mutant
    status: str
    by: str = ""
    detail: str = ""
    runs: int = 0
    #: for a survivor searched by diverge: ``gap`` (a witness, written to ``file``) or
    #: ``equivalent`` (none within the bounds)
    diverge: str = ""
    file: str = ""
    witness: list[str] = field(default_factory=list)


@dataclass
class Mutation:
    """The whole mutation run."""

    policy: str
    scenarios: int
    results: list[MutantResult]
    bounds: str = ""                       # diverge's bounds, when survivors were searched

    def counts(self, results: Sequence[MutantResult] | None = None) -> Counter[str]:
        return Counter(r.status for r in (self.results if results is None else results))

    @staticmethod
    def score(counts: Counter[str]) -> float | None:
        """Killed (by verdict or cost) over the mutants that check."""
        valid = counts["killed"] + counts["cost"] + counts["survived"]
        return (counts["killed"] + counts["cost"]) / valid if valid else None

    def by_point(self) -> dict[str, list[MutantResult]]:
        out: dict[str, list[MutantResult]] = {}
        for r in self.results:
            out.setdefault(r.mutant.point, []).append(r)
        return out

    def by_rule(self) -> dict[tuple[str, str], list[MutantResult]]:
        """(rule ``file:line``, decision point) -> the mutants of that rule (or predicate,
        or constant), in the policy's order."""
        out: dict[tuple[str, str], list[MutantResult]] = {}
        for r in self.results:
            out.setdefault((r.mutant.rule, r.mutant.point), []).append(r)
        return out

    def telling_score(self) -> float | None:
        """Killed over the mutants that can be told apart: killed, plus survivors
        diverge found a witness for (equivalent ones, and those not searched, left out)."""
        c = self.counts()
        gaps = sum(r.diverge == "gap" for r in self.results)
        telling = c["killed"] + c["cost"] + gaps
        return (c["killed"] + c["cost"]) / telling if telling else None


def _policy_free_registry():  # type: ignore[no-untyped-def]
    from .._manager import plugin_registry
    return plugin_registry(None)


def _differ(a: RunResult, b: RunResult) -> str:
    if a.classes != b.classes:
        return "verdict"
    if a.costs != b.costs:
        return "cost"
    return ""


def _describe(a: RunResult, b: RunResult) -> str:
    if a.classes != b.classes:
        return f"{a.verdict} -> {b.verdict}"
    before = dict(a.costs)
    return ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in b.costs if before.get(k) != v)


class _Runner:
    """Runs mutants against the original's results (built before workers fork)."""

    def __init__(self, original: CheckedPolicy, session: Session, scenarios: Sequence[Scenario],
                 baseline: list[RunResult]) -> None:
        self.original = original
        self.session = session
        self.scenarios = scenarios
        self.baseline = baseline
        self.kills = [0] * len(scenarios)        # per worker: what killed most goes first
        #: the plugins' registry without the policy (whose flags a mutant declares again)
        self.registry = _policy_free_registry()

    def __call__(self, ms: Sequence[Mutant]) -> list[tuple[str, str, str, int]]:
        """(status, scenario, detail, runs) of each mutant: small, as workers send it back.
        Those that can ride along the original's runs do, all at once (see
        :mod:`policykit.engine.riders`): a mutant runs alone only on the scenarios where
        it decided otherwise, the only ones where its verdict or costs can differ."""
        from ..batch import fall_offs
        from ..engine.riders import why_not

        out: list[MutantResult | None] = [None] * len(ms)
        sessions: dict[int, Session] = {}
        for n, m in enumerate(ms):
            made = self._session(m)
            if isinstance(made, MutantResult):
                out[n] = made
            else:
                sessions[n] = made
        o = self.session
        riding = [n for n, s in sessions.items()
                  if why_not(o.pm, o.registry, o.policy.name, s.pm, s.registry, s.policy.name, s.dispatch) is None]
        fallen: dict[int, list[int]] = {}
        if riding:
            fallen = dict(zip(riding, fall_offs(o, [sessions[n] for n in riding], self.scenarios, MUTANT_TIMEOUT)))
        for n, session in sessions.items():
            out[n] = self.judge(ms[n], session, fallen.get(n))
        return [(r.status, r.by, r.detail, r.runs) for r in out]  # type: ignore[union-attr]

    def _session(self, m: Mutant) -> Session | MutantResult:
        """A session for the mutant, or why it has none (it does not check)."""
        from .._manager import policy_from_checked

        checked, diags = check_policy(mutant_file(self.original, m), self.registry, resolver())
        errors = [d for d in diags if d.severity == "error"]
        if errors:
            return MutantResult(m, "invalid", detail=errors[0].error.message)
        try:
            session = Session(policy_from_checked(checked))
        except PolicyKitError as exc:
            return MutantResult(m, "invalid", detail=str(exc))
        session.timeout = MUTANT_TIMEOUT
        return session

    def judge(self, m: Mutant, session: Session, only: Sequence[int] | None = None) -> MutantResult:
        """Run the mutant alone on the scenarios (``only`` these: on the others it is
        known to run as the original does), those that killed most first, until a
        verdict differs."""
        order = sorted(range(len(self.scenarios)) if only is None else only, key=lambda i: -self.kills[i])
        cost: tuple[int, str] | None = None
        runs = 0
        for i in order:
            r = session.run(self.scenarios[i])
            runs += 1
            kind = _differ(self.baseline[i], r)
            if kind == "verdict":
                self.kills[i] += 1
                return MutantResult(m, "killed", self.scenarios[i].name, _describe(self.baseline[i], r), runs)
            if kind == "cost" and cost is None:
                cost = (i, _describe(self.baseline[i], r))
        if cost is not None:
            self.kills[cost[0]] += 1
            return MutantResult(m, "cost", self.scenarios[cost[0]].name, cost[1], runs)
        return MutantResult(m, "survived", runs=runs)


#: seconds a mutant's run may take (a mutant may loop where the original did not)
MUTANT_TIMEOUT = 30


def check_operators(operators: Sequence[str]) -> None:
    """A clear error, with a did-you-mean, for a name that is no mutation operator."""
    from ..errors import did_you_mean

    for o in operators:
        if o not in OPERATORS:
            hint = did_you_mean(o, OPERATORS)
            raise PolicyKitError(f"unknown mutation operator {o!r}" + (f"; {hint}" if hint else "")
                                 + f" (operators: {', '.join(OPERATORS)})")


def mutate(original: CheckedPolicy, session: Session, scenarios: Sequence[Scenario],
           operators: Sequence[str] = OPERATORS, sample: int | None = None, jobs: int | None = None,
           progress: Callable[[int, int, str], None] | None = None) -> Mutation:
    """Make the mutants of ``original`` (``session`` runs it), run each on ``scenarios``
    (``sample``: a fixed random choice of that many), and say what became of each."""
    from ..parallel import default_jobs, fork_map, run_pairs

    check_operators(operators)
    ms = mutants(original, _policy_free_registry(), tuple(operators))
    if sample is not None and sample < len(ms):
        ms = sorted(random.Random(0).sample(ms, sample), key=lambda m: m.index)
    baseline = run_pairs([session], scenarios, jobs)[0]
    runner = _Runner(original, session, scenarios, baseline)
    # mutants go in batches that ride along one run of the corpus each: enough batches
    # to keep every process busy and the progress moving, few enough to share the runs
    size = max(4, min(64, -(-len(ms) // (8 * max(1, jobs or default_jobs())))))
    batches = [ms[k:k + size] for k in range(0, len(ms), size)]
    told = None if progress is None else (      # in mutants: the first of the batch at work
        lambda done, total, what: progress(min(done * size, len(ms)), len(ms),
                                           ms[int(what) * size].description if what else ""))
    outcomes = [o for batch in fork_map(runner, batches, jobs, told) for o in batch]
    return Mutation(original.name, len(scenarios), [MutantResult(m, *o) for m, o in zip(ms, outcomes)])


def search_survivors(mutation: Mutation, original: CheckedPolicy, session: Session, bounds: object,
                     out: str | None, command: list[str],
                     progress: Callable[[int, int, str], None] | None = None) -> None:
    """For each survivor, ``diverge`` (verdicts and costs) between the original and the
    mutant within ``bounds``: a witness marks a gap in the corpus (its ``.scn`` written
    into ``out``), none an equivalent mutant within those bounds."""
    from .._manager import policy_from_checked
    from ..explore import Space, check_same_registry, diverge, starts
    from ..explore.witness import divergence_witness, write_file

    survivors = [r for r in mutation.results if r.status == "survived"]
    space = Space.build(session.registry, bounds)  # type: ignore[arg-type]
    registry = _policy_free_registry()
    for n, r in enumerate(survivors):
        if progress is not None:            # (done, total, what)
            progress(n, len(survivors), r.mutant.description)
        checked, _ = check_policy(mutant_file(original, r.mutant), registry, resolver())
        other = Session(policy_from_checked(checked))
        pair = [session, other]
        check_same_registry(pair)
        res = diverge(pair, space, starts(pair, bounds), cost=True)  # type: ignore[arg-type]
        if res.lines is None:
            r.diverge = "equivalent"
            continue
        r.diverge, r.witness = "gap", list(res.lines)
        if out:
            name, text = divergence_witness(pair, res, command)
            # a scenario for the corpus: what the original (and every built-in) does; the
            # mutant is no policy anyone can name
            mutant = other.policy.name
            text = "".join(line for line in text.splitlines(True)
                           if not line.startswith((f"expect {mutant}:", f"budget {mutant}:")))
            r.file = write_file(out, f"mutant-{r.mutant.index}-{original.name}", text)
    if progress is not None:
        progress(len(survivors), len(survivors), "")
    mutation.bounds = bounds.describe()  # type: ignore[attr-defined]
