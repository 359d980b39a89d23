"""Where policykit finds things: the project's settings and the policy search path.

A project keeps its settings in the ``[tool.policykit]`` table of the closest
``pyproject.toml`` that has one, looking upward from the working directory (as ruff and
pytest do)::

    [tool.policykit]
    policy-path = ["policies"]      # directories of NAME.pol files, relative to this file
    corpus = ["scenarios"]          # the scenarios run when a command is given none
    policies = ["my-linus"]         # what the pytest plugin runs (default: every policy
                                    # a scenario states an expectation for)

A policy named on the command line, in ``extends`` or in an ``expect`` line is looked up
(as ``NAME.pol``, or a ``*.py`` policy whose ``POLICY_NAME`` is NAME) in ``--policy-path`` directories, then ``POLICYKIT_PATH`` (directories separated by
``os.pathsep``), then the project's ``policy-path``, then the built-in policies.  One
name in two places is an error naming both files: a name means one policy.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PolicyKitError

#: the environment variable holding extra policy directories
PATH_ENV = "POLICYKIT_PATH"
_KEYS = {"policy-path": "directories of NAME.pol files", "corpus": "scenario files or directories",
         "policies": "policy names"}


@dataclass(frozen=True)
class Project:
    """A project's ``[tool.policykit]`` settings (all empty without one), paths absolute."""

    file: Path | None = None
    policy_path: tuple[Path, ...] = ()
    corpus: tuple[Path, ...] = ()
    policies: tuple[str, ...] = ()


@dataclass
class _State:
    #: directories given on the command line (or to the pytest plugin), searched first
    extra: list[Path] = field(default_factory=list)
    #: the project in force, once found
    project: Project | None = None
    start: Path | None = None


_state = _State()


def use(policy_path: Sequence[str | Path] = (), start: str | Path | None = None) -> None:
    """Set the directories searched before all others, and where the project's
    ``pyproject.toml`` is looked for (default: the working directory)."""
    _state.extra = [Path(p).resolve() for p in policy_path]
    _state.start = Path(start).resolve() if start is not None else None
    _state.project = None
    _names.cache_clear()


def project() -> Project:
    """The project in force (see the module's doc)."""
    if _state.project is None:
        _state.project = find_project(_state.start or Path.cwd())
    return _state.project


def find_project(start: Path) -> Project:
    """The settings of the closest ``pyproject.toml`` above ``start`` with a
    ``[tool.policykit]`` table."""
    for d in (start, *start.parents):
        f = d / "pyproject.toml"
        if f.is_file():
            table = _read_table(f)
            if table is not None:
                return _project(f, table)
    return Project()


def _read_table(path: Path) -> dict | None:  # type: ignore[type-arg]
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyKitError(f"{path}: cannot read it: {exc}") from None
    table = data.get("tool", {}).get("policykit")
    if table is not None and not isinstance(table, dict):
        raise PolicyKitError(f"{path}: [tool.policykit] must be a table")
    return table


def _project(path: Path, table: dict) -> Project:  # type: ignore[type-arg]
    from .errors import did_you_mean

    for key, value in table.items():
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            raise PolicyKitError(f"{path}: unknown key {key!r} in [tool.policykit]; "
                                 + (hint or f"the keys are {', '.join(_KEYS)}"))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyKitError(f"{path}: [tool.policykit] {key} must be a list of strings "
                                 f"({_KEYS[key]}), e.g. {key} = [\"...\"]")
    base = path.parent

    def dirs(key: str) -> tuple[Path, ...]:
        return tuple((base / v).resolve() for v in table.get(key, ()))

    return Project(path, dirs("policy-path"), dirs("corpus"), tuple(table.get("policies", ())))


def search_path() -> list[Path]:
    """The directories searched for ``NAME.pol``, before the built-in policies."""
    env = [Path(p).resolve() for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    return list(dict.fromkeys([*_state.extra, *env, *project().policy_path]))


@functools.cache
def _names(key: tuple[Path, ...]) -> dict[str, tuple[Path, ...]]:
    from .dsl import builtin_dir

    builtin = builtin_dir()
    found: dict[str, list[Path]] = {}
    for d in (*key, builtin, builtin / "python"):
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.pol")):
            found.setdefault(f.stem, []).append(f)
        for f in sorted(d.glob("*.py")):
            info = python_policy(f)
            if info is not None:
                found.setdefault(info[0], []).append(f)
    return {name: tuple(files) for name, files in sorted(found.items())}


def python_policy(path: Path) -> tuple[str, str] | None:
    """(name, summary) of the Python policy in ``path``, read without running it: its
    ``POLICY_NAME`` (else the file's stem with ``-`` for ``_``) and the first line of its
    ``POLICY_SUMMARY`` (else of its docstring); None when it defines no ``policykit_*``
    hook."""
    import ast

    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, str] = {}
    hooks = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("policykit_"):
            hooks = True
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("POLICY_NAME", "POLICY_SUMMARY") and isinstance(node.value, ast.Constant)
              and isinstance(node.value.value, str)):
            found[node.targets[0].id] = node.value.value
    if not hooks:
        return None
    summary = found.get("POLICY_SUMMARY") or ast.get_docstring(tree) or ""
    return found.get("POLICY_NAME") or path.stem.replace("_", "-"), summary.strip().split("\n")[0]


def policy_files() -> dict[str, tuple[Path, ...]]:
    """Every policy name on the search path (built-in ones included), with the files that
    define it: more than one is a clash, an error when the name is used."""
    return _names(tuple(search_path()))


def find_policy(name: str) -> Path | None:
    """The file of the policy called ``name`` on the search path, or None."""
    files = policy_files().get(name)
    if not files:
        return None
    if len(files) > 1:
        raise PolicyKitError(f"two policies are named {name!r}: {files[0]} and {files[1]}; "
                             "a name must mean one policy: rename one, or take its directory off "
                             f"the policy path (--policy-path, {PATH_ENV}, [tool.policykit] policy-path)")
    return files[0]


def policy_names() -> list[str]:
    """The names of every policy on the search path, built-in ones included."""
    return sorted(policy_files())

