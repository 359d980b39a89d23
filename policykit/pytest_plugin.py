"""A pytest plugin that collects scenario files (``*.scn``) and runs them under policies.

It is on in a project whose ``pyproject.toml`` has a ``[tool.policykit]`` table (see
:mod:`policykit.config`), or with ``--policykit``; ``-p no:policykit`` turns it off.
Each (scenario, variant, policy) is one test, ``NAME/VARIANT[POLICY]``: by default every
policy the scenario states an expectation for; ``--policykit-policy`` (or the project's
``policies``) names the policies to run instead.  A scenario's tags are markers
(``-m rdma``).  JUnit XML, ``-k``, ``-x``, ``--lf`` and xdist are pytest's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .errors import PolicyKitError


class ScenarioFailed(Exception):
    """A run that missed its expectation or budget (the item's failure)."""

    def __init__(self, result: Any, trace: Any) -> None:
        super().__init__(result.scenario.name)
        self.result = result
        self.trace = trace


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("policykit", "policykit scenarios")
    group.addoption("--policykit", action="store_true",
                    help="collect *.scn scenario files even without [tool.policykit] in pyproject.toml")
    group.addoption("--policykit-policy", action="append", default=[], metavar="NAME",
                    help="run the scenarios under NAME (repeatable); default: the project's "
                         "[tool.policykit] policies, or each policy a scenario has an 'expect' line for")
    group.addoption("--policykit-path", action="append", default=[], metavar="DIR",
                    help="look for policies (NAME.pol, *.py) in DIR first (repeatable)")
    group.addoption("--policykit-invariants", action="store_true",
                    help="check the engine's invariants after every step (slower)")


def pytest_configure(config: pytest.Config) -> None:
    from . import config as project_config

    project_config.use(config.getoption("policykit_path"), start=config.rootpath)
    try:
        project = project_config.project()
    except PolicyKitError as exc:
        raise pytest.UsageError(exc.render()) from None
    config.stash[_ON] = bool(config.getoption("policykit") or project.file)
    config.stash[_SESSIONS] = {}
    config.addinivalue_line("markers", "policykit: a scenario run by the policykit plugin")


_ON = pytest.StashKey[bool]()
_SESSIONS = pytest.StashKey[dict]()  # type: ignore[type-arg]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".scn" or not parent.config.stash.get(_ON, False):
        return None
    from .config import project

    corpus = project().corpus
    if corpus and not any(file_path == c or c in file_path.parents for c in corpus):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    """One ``.scn`` file: an item per variant and policy."""

    def collect(self) -> Any:
        from ._manager import plugin_registry
        from .config import project
        from .scenario import load_scenarios

        import os

        rel = os.path.relpath(self.path)
        scenarios = load_scenarios(rel if not rel.startswith("..") else self.path, plugin_registry())
        chosen = self.config.getoption("policykit_policy") or list(project().policies)
        for scn in scenarios:
            for policy in chosen or sorted(scn.expectations):
                yield ScenarioItem.from_parent(self, name=f"{scn.name}[{policy}]", scenario=scn, policy=policy)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, PolicyKitError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)


class ScenarioItem(pytest.Item):
    """One scenario (one variant) under one policy: it passes when the run meets the
    scenario's expectation for the policy (none: no violation) and its budgets."""

    def __init__(self, *, scenario: Any, policy: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.policy = policy
        self.add_marker("policykit")
        for tag in sorted(scenario.tags):
            self.config.addinivalue_line("markers", f"{tag}: scenarios tagged '{tag}'")
            self.add_marker(tag)

    def _session(self) -> Any:
        from ._manager import load_policy
        from .run import Session

        sessions = self.config.stash[_SESSIONS]
        if self.policy not in sessions:
            sessions[self.policy] = Session(load_policy(self.policy))
        return sessions[self.policy]

    def runtest(self) -> None:
        session = self._session()
        invariants = self.config.getoption("policykit_invariants")
        result = session.run(self.scenario, invariants=invariants)
        if not result.passed:
            # run again with the trace on, for the report (the passing path stays fast)
            raise ScenarioFailed(result, session.run(self.scenario, trace=True, invariants=invariants))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFailed):
            return describe_failure(excinfo.value.result, excinfo.value.trace)
        if isinstance(excinfo.value, PolicyKitError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.steps[0].line - 1 if self.scenario.steps else 0, self.name


def describe_failure(result: Any, traced: Any, context: int = 3) -> str:
    """What a failed scenario item shows: expected and got, each violation where it was
    seen (:func:`policykit.report.locate`: the end-of-run audit at the last step) with its
    step, and the trace of the steps up to the first violation (``context`` before it)."""
    import dataclasses

    from .report import locate, render_trace

    r = result
    lines = [f"{r.scenario.filename}: {r.scenario.name} under {r.policy}: expected "
             f"{' '.join(sorted(r.expected)) if r.expected else 'ok'}, got {r.verdict}"]
    by_line = {st.line: st for st in r.scenario.steps}
    last = r.scenario.steps[-1] if r.scenario.steps else None
    for v in r.violations:
        step = by_line.get(v.line) if v.line else last
        what = "step" if v.line else "after the last step"
        lines.append(f"  {locate(r, v)}: {v.cls}: {v.detail}" + (f"  [{what}: {step.text}]" if step else ""))
        if v.seen or v.expected:
            lines.append(f"      saw {v.seen}; expected {v.expected}")
    lines += [f"  over budget: {b}" for b in r.budget_failures]
    end = len(traced.steps)
    first = min((v.step if v.step is not None else end for v in r.violations), default=None)
    if first is not None:
        keep = [rec for rec in traced.steps if first - context <= rec.index <= first]
        lines += ["", render_trace(dataclasses.replace(traced, steps=keep))]
    return "\n".join(lines)
