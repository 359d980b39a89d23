"""Validate the simulator against the kernel: run each scenario both ways and compare
every step, aspect by aspect (see :data:`.trace.ASPECTS`)."""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..run import Session
from ..scenario.model import Scenario
from .agent import Zygote
from .backend import LiveRun, LiveSession, NotRunnable, check_exclusive_bit, why_not_runnable
from .deviations import KnownDeviation, known_deviation
from .simulate import simulate
from .system import Capabilities, Settings
from .trace import ASPECTS, COPY, REUSE, Observation


@dataclass(frozen=True, slots=True)
class Disagreement:
    step: int
    text: str
    aspect: str
    where: str                   # the page (or ``step`` for the status)
    live: object
    simulated: object


@dataclass
class Validation:
    """One scenario run live and simulated."""

    scenario: Scenario
    live: list[Observation] = field(default_factory=list)
    simulated: list[Observation] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    not_runnable: str = ""
    live_time: float = 0.0
    sim_time: float = 0.0
    #: per aspect: (values compared, values that agreed)
    compared: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: why the live run, and so the comparison, stopped early ("" when it did not)
    ended: str = ""
    #: the known kernel deviation the first disagreement is (see :mod:`.deviations`)
    deviation: KnownDeviation | None = None

    @property
    def steps_agreed(self) -> int:
        bad = {d.step for d in self.disagreements}
        return sum(1 for o in self.live if o.index not in bad)

    @property
    def agrees(self) -> bool:
        return not self.not_runnable and not self.disagreements

    @property
    def disagrees(self) -> bool:
        """The simulator disagrees with the kernel here (not a known kernel deviation)."""
        return bool(self.disagreements) and self.deviation is None


def compare(live: list[Observation], simulated: list[Observation],
            aspects: Iterable[str] = ASPECTS) -> tuple[list[Disagreement], dict[str, tuple[int, int]]]:
    """Every value on which the two traces differ, and per aspect how many were compared
    and agreed.  An aspect one side does not show for a page (the exclusive flag of a
    policy without PageAnonExclusive, mapcounts without PFNs) is not compared."""
    out: list[Disagreement] = []
    counts = {a: [0, 0] for a in aspects}
    for lv, sv in zip(live, simulated):
        for aspect in counts:
            a, b = lv.aspect(aspect), sv.aspect(aspect)
            keys = a.keys() & b.keys() if aspect in ("exclusive", "mapcount") else a.keys() | b.keys()
            differ = [key for key in keys if a.get(key, "-") != b.get(key, "-")]
            counts[aspect][0] += len(keys)
            counts[aspect][1] += len(keys) - len(differ)
            for key in sorted(differ, key=_natural):        # pages in order: buf[2] before buf[10]
                out.append(Disagreement(lv.index, lv.text, aspect, key, a.get(key, "-"), b.get(key, "-")))
    return out, {a: (n, ok) for a, (n, ok) in counts.items()}


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def run_live(scenario: Scenario, caps: Capabilities, timeout: float = 20.0,
             pools: Settings | None = None, zygote: Zygote | None = None) -> LiveRun:
    """Run ``scenario`` on this kernel (or say why it cannot be); ``pools``: the
    Settings that keeps huge page pools and swap across runs (see
    :class:`.system.Settings`); ``zygote``: what forks the agents of runs (see
    :class:`.agent.Zygote`; None: this process does)."""
    out = LiveRun(scenario, not_runnable=why_not_runnable(scenario, caps))
    if out.not_runnable:
        return out
    started = time.perf_counter()
    try:
        check_exclusive_bit(caps, timeout)
        with Settings(pools) as settings, LiveSession(caps, settings, timeout, zygote) as live:
            out.observations = live.run(scenario)
            out.ended = live.ended
    except NotRunnable as exc:
        out.not_runnable = str(exc)
    out.elapsed = time.perf_counter() - started
    return out


def validate(session: Session, scenarios: Iterable[Scenario], caps: Capabilities | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> list[Validation]:
    """Each scenario live and under the session's policy, compared step by step."""
    caps = caps or Capabilities.probe()
    # Without PFNs (not root) a write is seen to fault or not, never to copy or reuse
    aspects = ASPECTS if caps.pfns else ("status", "fault", "data", "pmd")
    out: list[Validation] = []
    scenarios = list(scenarios)
    with Settings() as pools, Zygote() as zygote:
        for scenario in scenarios:
            if progress is not None:
                progress(len(out), len(scenarios), scenario.name)
            out.append(_validate_one(session, scenario, caps, aspects, pools, zygote))
    if progress is not None:
        progress(len(out), len(scenarios), "")
    return out


def _validate_one(session: Session, scenario: Scenario, caps: Capabilities, aspects: Iterable[str],
                  pools: Settings, zygote: Zygote) -> Validation:
    """One scenario live and simulated, compared."""
    run = run_live(scenario, caps, pools=pools, zygote=zygote)
    v = Validation(scenario, not_runnable=run.not_runnable, live=run.observations, live_time=run.elapsed,
                   ended=run.ended)
    if v.not_runnable:
        return v
    started = time.perf_counter()
    v.simulated = simulate(session, scenario)
    v.sim_time = time.perf_counter() - started
    if not caps.pfns:
        for o in v.simulated:
            o.faults = {k: "fault" if x in (REUSE, COPY) else x for k, x in o.faults.items()}
    v.disagreements, v.compared = compare(v.live, v.simulated, aspects)
    if v.ended:     # the kernel killed a process at the last step: its status only
        last = v.live[-1].index
        v.disagreements = [d for d in v.disagreements if d.step != last or d.aspect == "status"]
    v.deviation = known_deviation(scenario, v.disagreements)
    return v


def kernel_release() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def era_for(release: tuple[int, int], eras: dict[str, tuple[int, int]]) -> str | None:
    """The newest era policy (name -> first kernel it describes) not newer than ``release``."""
    fit = [(v, name) for name, v in eras.items() if v <= release]
    return max(fit)[1] if fit else None
