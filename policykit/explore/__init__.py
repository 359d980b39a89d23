"""``policykit explore`` and ``policykit diverge``: search operation sequences for the
shortest scenario that breaks a policy, or that tells policies apart.

The pieces, each its own module: what may be done next and within which bounds
(:mod:`.space`), the canonical form of a state (:mod:`.canonical`), the visited set
(:mod:`.visited`), the breadth-first search (:mod:`.search`, shared out between workers by
:mod:`.parallel`), shrinking (:mod:`.shrink`), and turning a finding into a scenario
file (:mod:`.witness`), what may be hidden (:mod:`.known`), and what is printed
(:mod:`.report`).  This module puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import PluginError, PolicyKitError, ScenarioError, did_you_mean
from ..run import Runner, RunResult, Session
from ..scenario import load_scenarios, scenario_from_text, scenarios_from_text
from ..scenario.model import Scenario
from .known import KNOWN, Ignore
from .search import Node, Search, Stats, Verdict, ride, take
from .shrink import shrink
from .space import EXPLORE_FILE, Bounds, ExploreError, Space

__all__ = ["Bounds", "DivergeResult", "ExploreError", "ExploreResult", "Finding", "KNOWN", "Space",
           "Start", "diverge", "explore", "replay", "starts"]


def cost_metrics(session: Session) -> tuple[str, ...]:
    """The metrics ``diverge --cost`` compares: pages and bytes copied, the core's and
    plugins'."""
    return tuple(n for n, m in session.registry.metrics.items() if m.unit in ("pages", "bytes")
                 and n != "peak_pages")


@dataclass
class Start:
    """A start state: the scenario lines that lead to it, the variant they map."""

    lines: list[str]
    variant: str
    node: Node


def starts(sessions: Sequence[Session], bounds: Bounds, variants: Sequence[str] = (),
           from_path: str | None = None) -> list[Start]:
    """The start states of a search, one per variant: ``from_path``'s steps, or a
    process ``p`` mapping ``buf`` (``bounds.pages`` private pages, or a variant's memory)."""
    registry = sessions[0].registry
    for v in variants:
        if v.partition(":")[0] not in registry.variants:       # a sized one: VARIANT:SIZE
            hint = did_you_mean(v, registry.variants)
            raise ExploreError(f"unknown variant {v!r}" + (f"; {hint}" if hint else "")
                               + f" (variants: {', '.join(sorted(registry.variants))})")
    if from_path is not None:
        scenarios = load_scenarios(from_path, registry)
        if variants:
            scenarios = [s for s in scenarios if s.variant in variants]
    elif variants:
        text = f"scenario start\nvariants {' '.join(variants)}\nspawn -> p\nmmap_variant p -> buf\n"
        scenarios = scenarios_from_text(text, EXPLORE_FILE, registry)
    else:
        text = f"scenario start\nspawn -> p\nmmap p {bounds.pages} private -> buf\n"
        scenarios = [scenario_from_text(text, EXPLORE_FILE, registry)]
    out = []
    for scn in scenarios:
        node = tuple(_tracked(s.start()) for s in sessions)
        for r in node:
            for i, step in enumerate(scn.steps):
                rec = r.step(i, step)
                if rec.status == "error":
                    raise PluginError(f"{scn.filename}:{step.line}: {rec.message}")
        out.append(Start([s.text for s in scn.steps], scn.variant, node))
    return out


def _tracked(runner: Runner) -> Runner:
    """``runner``, its engine keeping the last decision about each page (which decision
    led to what a step shows: :func:`.search.led_to`)."""
    runner.engine.decided = {}
    return runner


def parse_lines(session: Session, lines: Sequence[str]) -> Scenario | None:
    """The scenario of these step lines, or None if it does not check."""
    try:
        return scenario_from_text("scenario witness\n" + "\n".join(lines) + "\n", EXPLORE_FILE,
                                  session.registry)
    except (ScenarioError, PolicyKitError):
        return None


def replay(sessions: Sequence[Session], lines: Sequence[str],
           metrics: Sequence[str] = ()) -> list[tuple[Verdict, ...]] | None:
    """Each step's verdicts when ``lines`` run from scratch under each session, as the
    search judged them; None when the lines do not make a valid scenario."""
    scn = parse_lines(sessions[0], lines)
    if scn is None:
        return None
    node: Node = tuple(_tracked(s.start()) for s in sessions)
    out = []
    for i, step in enumerate(scn.steps):
        node, verdicts = take(node, step, i, metrics)
        out.append(verdicts)
    return out


# -- explore ---------------------------------------------------------------------------

@dataclass
class Finding:
    """A distinct violation (class, and the decision point that led to it) with its
    shrunk witness, and the verdict of every run of it."""

    cls: str
    point: str
    lines: list[str]                    # the witness's steps, start included
    start_lines: int                    # how many of them make the start state
    depth: int                          # steps after the start when first found
    found_lines: int                    # the witness's length before shrinking
    variant: str
    run: RunResult | None = None        # the witness run under the policy, traced
    file: str | None = None
    expectations: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Steps after the start state."""
        return len(self.lines) - self.start_lines


@dataclass
class ExploreResult:
    policy: str
    space: Space
    stats: Stats
    findings: list[Finding]
    hidden: dict[str, int] = field(default_factory=dict)    # why -> distinct findings hidden


def explore(session: Session, space: Space, start: Sequence[Start], ignore: Iterable[str] = (),
            baseline: Session | None = None, jobs: int = 1,
            progress: Callable[[Stats], None] | None = None, keep: int = 1_000_000,
            first: bool = False) -> ExploreResult:
    """Search for every distinct violation of ``session``'s policy within ``space`` (with
    ``first``: stop at the first one, a shortest)."""
    sessions = [session] + ([baseline] if baseline is not None else [])
    rules = Ignore(ignore, session.registry.violation_classes)
    found: dict[tuple[str, str], tuple[int, str, int]] = {}
    hidden: dict[str, set[tuple[str, str]]] = {"baseline": set(), "ignore": set()}

    def judge(parent: int, step: str, verdicts: tuple[Verdict, ...], depth: int) -> bool:
        mine = verdicts[0]
        if not mine.classes:
            return False
        base = verdicts[1].classes if len(verdicts) > 1 else frozenset()
        for cls in sorted(mine.classes):
            key = (cls, mine.point)
            if key in found:
                continue
            if cls in base:
                hidden["baseline"].add(key)
            elif rules.hides(cls, mine, lambda: _path_lines(start, search, parent, step)):
                hidden["ignore"].add(key)
            else:
                found[key] = (parent, step, depth)
                hidden["baseline"].discard(key)
                hidden["ignore"].discard(key)
                if first:
                    return True
        return False

    # a baseline that can ride along the policy's run does (see diverge below)
    search = Search(space, [ride(sessions, s.node) for s in start], judge, progress=progress, jobs=jobs, keep=keep)
    stats = search.run()
    findings = []
    for (cls, point), (parent, step, depth) in found.items():
        root, lines = _path(start, search, parent, step)
        findings.append(_shrunk_finding(sessions, rules, cls, point, lines, start[root], depth))
    findings.sort(key=lambda f: (f.depth, f.cls, f.point))
    stats.hidden = sum(len(v) for v in hidden.values())
    return ExploreResult(session.policy.name, space, stats, findings,
                         {k: len(v) for k, v in hidden.items() if v})


def _path(start: Sequence[Start], search: Search, parent: int, step: str) -> tuple[int, list[str]]:
    """(the start's position, the witness's lines) of the step ``step`` from ``parent``."""
    root, lines = search.path(parent)
    return root, start[root].lines + lines + [step]


def _path_lines(start: Sequence[Start], search: Search, parent: int, step: str) -> tuple[list[str], int]:
    root, lines = _path(start, search, parent, step)
    return lines, len(start[root].lines)


def _start_len(lines: Sequence[str], start: Start) -> int:
    """How many of ``lines`` are the start's: the longest prefix of them that is found
    in the start's lines in order (shrinking may have dropped some of those)."""
    j = n = 0
    for ln in lines:
        while j < len(start.lines) and start.lines[j] != ln:
            j += 1
        if j == len(start.lines):
            break
        j += 1
        n += 1
    return n


def _shrunk_finding(sessions: list[Session], rules: Ignore, cls: str, point: str, lines: list[str],
                    start: Start, depth: int) -> Finding:
    def holds(cand: list[str]) -> bool:
        verdicts = replay(sessions, cand)
        if verdicts is None:
            return False
        for v in verdicts:
            if cls in v[0].classes and v[0].point == point and not (len(v) > 1 and cls in v[1].classes):
                return not rules.hides(cls, v[0], lambda: (cand, _start_len(cand, start)))
        return False

    small = shrink(lines, holds)
    # the witness ends where its finding shows
    verdicts = replay(sessions, small) or []
    for i, v in enumerate(verdicts):
        if cls in v[0].classes and v[0].point == point:
            small = small[:i + 1]
            break
    return Finding(cls, point, small, _start_len(small, start), depth, len(lines), start.variant)


# -- diverge ---------------------------------------------------------------------------

@dataclass
class DivergeResult:
    policies: list[str]
    space: Space
    stats: Stats
    cost: bool
    lines: list[str] | None = None      # the shrunk witness, None when nothing differs
    start_lines: int = 0
    found_lines: int = 0
    variant: str = ""
    runs: list[RunResult] = field(default_factory=list)
    what: str = ""                      # what differs first: verdict or copies
    file: str | None = None


def _differ(verdicts: tuple[Verdict, ...], cost: bool) -> str:
    first = verdicts[0]
    if any(v.classes != first.classes for v in verdicts[1:]):
        return "verdict"
    if cost and any(v.copies != first.copies for v in verdicts[1:]):
        return "copies"
    return ""


def diverge(sessions: Sequence[Session], space: Space, start: Sequence[Start], cost: bool = False,
            jobs: int = 1, progress: Callable[[Stats], None] | None = None,
            keep: int = 1_000_000) -> DivergeResult:
    """The shortest step sequence on which the policies' verdicts (with ``cost``: also
    the pages copied by kind) differ."""
    metrics = cost_metrics(sessions[0]) if cost else ()
    hit: list[tuple[int, str, int]] = []

    def judge(parent: int, step: str, verdicts: tuple[Verdict, ...], depth: int) -> bool:
        if not hit:
            hit.append((parent, step, depth))
        return True

    # policies that can ride along the first one's runs do: one run a transition while
    # they decide alike (the same witness, found sooner)
    search = Search(space, [ride(sessions, s.node) for s in start], judge, lambda v: bool(_differ(v, cost)),
                    copy_metrics=metrics, progress=progress, jobs=jobs, keep=keep)
    stats = search.run()
    result = DivergeResult([s.policy.name for s in sessions], space, stats, cost)
    if not hit:
        return result
    parent, step, depth = hit[0]
    root, lines = _path(start, search, parent, step)

    def holds(cand: list[str]) -> bool:
        verdicts = replay(sessions, cand, metrics)
        return verdicts is not None and any(_differ(v, cost) for v in verdicts)

    small = shrink(lines, holds)
    verdicts = replay(sessions, small, metrics) or []
    for i, v in enumerate(verdicts):
        if _differ(v, cost):
            small, result.what = small[:i + 1], _differ(v, cost)
            break
    result.lines, result.found_lines, result.variant = small, len(lines), start[root].variant
    result.start_lines = _start_len(small, start[root])
    return result


def check_same_registry(sessions: Sequence[Session]) -> None:
    """Policies compared by diverge must run on the same operations."""
    ops = set(sessions[0].registry.operations)
    for s in sessions[1:]:
        if set(s.registry.operations) != ops:
            raise PolicyKitError(f"{s.policy.name} runs with other plugins than {sessions[0].policy.name}")

