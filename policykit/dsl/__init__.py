"""The policy language: grammar (``policy.lark``), parser (:mod:`.parse`), checker
(:mod:`.check`), compiler to a pluggy plugin (:mod:`.compile`), formatter (:mod:`.fmt`);
compiled policies kept between processes (:mod:`.cache`).

Stages point one way: parse -> check -> compile; the formatter needs only the parser.
Each stage is imported when first used: a policy loaded from the cache needs none of
them (their classes cost some 30 ms to import).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PolicyKitError

if TYPE_CHECKING:
    from ..engine.specs import Registry
    from .ast import PolicyFile
    from .check import CheckedPolicy, Diagnostic, check_policy
    from .compile import CompiledPolicy
    from .parse import parse_policy
    from .resolve import PolicyResolver

__all__ = [
    "CheckedPolicy", "CompiledPolicy", "Diagnostic", "PolicyFile", "builtin_dir", "builtin_names", "builtin_path",
    "check_file", "check_policy", "check_text", "compile_policy", "generate_source", "parse_policy", "read_policy",
    "resolver",
]

#: names this package gives from its stages, each imported when first asked for
_LAZY = {
    "PolicyFile": "ast", "CheckedPolicy": "check", "Diagnostic": "check", "PolicyResolver": "resolve",
    "check_policy": "check", "CompiledPolicy": "compile", "parse_policy": "parse",
}


def builtin_dir() -> Path:
    """The directory of the built-in policies (the package ``policykit.builtin_policies``;
    read through its ``__path__``: importlib.resources would import zipfile, ~3 ms)."""
    from .. import builtin_policies

    return Path(next(iter(builtin_policies.__path__)))


def builtin_names() -> list[str]:
    """Names of the built-in policies."""
    return sorted(p.stem for p in builtin_dir().glob("*.pol"))


def builtin_path(name: str) -> Path | None:
    path = builtin_dir() / f"{name}.pol"
    return path if path.is_file() else None


def resolver() -> PolicyResolver:
    """Finds the policies ``extends`` names on the policy search path (:mod:`policykit.config`)."""
    from ..config import find_policy, policy_names
    from .resolve import PolicyResolver

    return PolicyResolver(find_policy, policy_names)


def read_policy(spec: str) -> tuple[str, str]:
    """(text, filename) of a policy given as a path or a built-in name."""
    from ..config import find_policy, policy_names

    path = Path(spec)
    if not path.is_file():
        found = find_policy(spec)
        if found is None:
            from ..errors import did_you_mean
            hint = did_you_mean(spec, policy_names())
            raise PolicyKitError(f"{spec}: no such policy file, or policy on the policy path"
                                 + (f"; {hint}" if hint else ""))
        path = found
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyKitError(f"{spec}: cannot read policy: {exc}") from None


def check_file(spec: str, registry: Registry) -> tuple[CheckedPolicy | None, list[Diagnostic]]:
    """Parse and check a policy file or built-in name.  A syntax error comes back as the
    only diagnostic, with no policy."""
    return check_text(*read_policy(spec), registry)


def check_text(text: str, filename: str, registry: Registry) -> tuple[CheckedPolicy | None, list[Diagnostic]]:
    """:func:`check_file` of a policy already read (:func:`read_policy`)."""
    from ..errors import SourceError
    from .check import Diagnostic, check_policy
    from .parse import parse_policy

    try:
        tree = parse_policy(text, filename)
    except SourceError as exc:
        return None, [Diagnostic("error", exc)]
    return check_policy(tree, registry, resolver())


def compile_policy(checked: CheckedPolicy) -> CompiledPolicy:
    """See :func:`policykit.dsl.compile.compile_policy` (imported when first used: checking
    a policy needs no compiler)."""
    from .compile import compile_policy as compile_

    return compile_(checked)


def generate_source(checked: CheckedPolicy) -> str:
    """See :func:`policykit.dsl.compile.generate_source`."""
    from .compile import generate_source as generate

    return generate(checked)


def __getattr__(name: str) -> Any:
    stage = _LAZY.get(name)
    if stage is not None:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{stage}"), name)
    raise AttributeError(f"module 'policykit.dsl' has no attribute {name!r}")
