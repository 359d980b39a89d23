"""A finding as a ready-to-commit scenario file: title, ``tags found-by-explore``, the
command line that found it, its steps, and the verdict of every built-in policy (and of
the policies searched), each computed by running it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._manager import load_policy
from ..errors import PolicyKitError
from ..run import RunResult, Session
from ..scenario import scenario_from_text
from ..scenario.model import Scenario

if TYPE_CHECKING:
    from . import DivergeResult, Finding

_sessions: dict[str, Session] = {}


def builtin_sessions() -> list[Session]:
    """A session for every built-in policy, made once per process."""
    from .. import dsl
    for name in dsl.builtin_names():
        if name not in _sessions:
            _sessions[name] = Session(load_policy(name))
    return [_sessions[n] for n in sorted(_sessions)]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def scenario_text(name: str, title: str, lines: Sequence[str], command: Sequence[str],
                  comments: Sequence[str] = (), expectations: dict[str, str] | None = None,
                  budgets: dict[str, str] | None = None) -> str:
    """The text of a witness scenario."""
    out = [f"scenario {name}", f'title "{title}"', "tags found-by-explore",
           f'source "{_quote(" ".join(shlex.quote(c) for c in command))}"', ""]
    out += [f"# {c}" for c in comments]
    if comments:
        out.append("")
    out += list(lines)
    if expectations:
        out.append("")
        out += [f"expect {p}: {v}" for p, v in expectations.items()]
    if budgets:
        out += [f"budget {p}: {b}" for p, b in budgets.items() if b]
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def parse(session: Session, text: str, filename: str) -> Scenario:
    return scenario_from_text(text, filename, session.registry)


def expectations(text: str, filename: str, searched: Sequence[Session]) -> dict[str, str]:
    """The verdict of every built-in policy and of ``searched`` on the witness, by name."""
    out: dict[str, str] = {}
    for s in list(searched) + [b for b in builtin_sessions() if b.policy.name not in
                               {x.policy.name for x in searched}]:
        scn = parse(s, text, filename)
        out[s.policy.name] = s.run(scn).verdict
    return dict(sorted(out.items()))


def traced_run(session: Session, text: str, filename: str) -> RunResult:
    return session.run(parse(session, text, filename), trace=True)


def write_file(out_dir: str, name: str, text: str) -> str:
    """Write a witness as ``OUT_DIR/NAME.scn``; its path."""
    path = Path(out_dir) / f"{name}.scn"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PolicyKitError(f"{path}: cannot write the witness: {exc.strerror}") from None
    return str(path)


def finding_witness(session: Session, f: Finding, command: Sequence[str]) -> tuple[str, str]:
    """(name, text) of an explore finding's scenario; sets the finding's ``expectations``
    and ``run`` (its witness run under the policy, traced)."""
    policy = session.policy.name
    name = slug(f"{policy}-{f.cls}-{f.point}")
    title = f"{policy}: {f.cls} after {f.point} (found by explore)"
    comments = [f"found by: {shlex.join(command)}", f"first seen {f.depth} steps after the start; shrunk"]
    bare = scenario_text(name, title, f.lines, command, comments)
    f.expectations = expectations(bare, f"{name}.scn", [session])
    text = scenario_text(name, title, f.lines, command, comments, f.expectations)
    f.run = traced_run(session, text, f"{name}.scn")
    return name, text


def divergence_witness(sessions: Sequence[Session], res: DivergeResult,
                       command: Sequence[str]) -> tuple[str, str]:
    """(name, text) of a divergence's scenario, with every policy's expectation and, for
    a difference in copies, the copies each made as budgets; sets ``res.runs``."""
    from . import cost_metrics

    assert res.lines is not None
    name = slug("diverge-" + "-vs-".join(res.policies))
    title = f"{' vs '.join(res.policies)}: the {res.what} differ (found by diverge)"
    comments = [f"found by: {shlex.join(command)}", f"the {res.what} differ at its last step"]
    bare = scenario_text(name, title, res.lines, command, comments)
    expect = expectations(bare, f"{name}.scn", sessions)
    res.runs = [traced_run(s, bare, f"{name}.scn") for s in sessions]
    budgets = {}
    if res.cost:
        differ = [m for m in cost_metrics(sessions[0]) if len({r.metrics[m] for r in res.runs}) > 1]
        budgets = {r.policy: ", ".join(f"{m} == {r.metrics[m]}" for m in differ) for r in res.runs}
    return name, scenario_text(name, title, res.lines, command, comments, expect, budgets)
