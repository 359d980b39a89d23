"""Compiled policies kept between processes, as Python keeps bytecode in ``__pycache__``.

Loading a ``.pol`` policy parses its ``extends`` chain, checks it against the registry,
generates and verifies its Python: some 15 ms a policy, and 30 ms more to import the
checker and compiler, which every command that runs a policy would pay again.  An entry
holds what a load makes (the verified code, the flags, the policy's rules and summary)
with everything it was made from: the policy file's name and text, what the checker
reads of the registry (:meth:`~policykit.engine.specs.Registry.policy_stamp`), the
language's code, and each link of the chain -- the ``extends`` as written, the file it
named and that file's text.  It is used only when all of that is still so: each link is
resolved again on the policy path as it is now, and each file read again.  A policy with
an error is never stored, so its error is reported afresh; one stored *clean* (its check
said nothing) lets ``policykit check`` answer "ok" without the checker, and one with
warnings is checked every time, so that they are shown.  The entries live in the user's
own cache directory (see :mod:`policykit._parse_cache`); ``POLICYKIT_NO_CACHE=1`` turns
them off.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from .._parse_cache import code_stamp, entry_path, read_entry, registry_stamp, store_entry
from ..engine.specs import AttributeSpec, Registry
from .plugin import policy_plugin

if TYPE_CHECKING:
    from .check import CheckedPolicy
    from .compile import CompiledPolicy
    from .resolve import PolicyResolver

#: the files whose change makes every cached policy stale: the language, its limits,
#: what generated code runs against, and what makes a Policy of a checked one
_DSL = ("__init__.py", "_grammar.py", "policy.lark", "ast.py", "parse.py", "check.py", "compile.py", "plugin.py",
        "cache.py", "resolve.py")
_ENGINE = ("specs.py", "context.py", "reads.py")

#: a link of the ``extends`` chain: (the name or path as written, quoted?, the file that
#: wrote it, the file it named, that file's text)
Link = tuple[str, bool, str, str, str]

@functools.cache
def _code_stamp() -> str:
    here = Path(__file__).parent
    return "|".join((importlib.util.MAGIC_NUMBER.hex(), code_stamp(here, _DSL),
                     code_stamp(here.parent / "engine", _ENGINE),
                     code_stamp(here.parent, ("limits.py", "_manager.py"))))


def _stamp(registry: Registry) -> str:
    """The language's code stamp and what checking a policy reads of the registry
    (:meth:`~policykit.engine.specs.Registry.policy_stamp`)."""
    return registry_stamp(registry, _code_stamp(), "policy_stamp")


def _entry(text: str, filename: str, registry: Registry, resolver: PolicyResolver) -> tuple[Any, ...] | None:
    """The stored load of the policy in ``filename`` (whose text is ``text``) while all it
    was made from still holds: (fields, code, flags, clean, chain) -- or None."""
    stamp = _stamp(registry)
    path = entry_path("policies", stamp, filename, text)
    saved = read_entry(path) if path is not None else None
    if not (isinstance(saved, tuple) and len(saved) == 5 and saved[:3] == (stamp, filename, text)):
        return None
    links, payload = saved[3], saved[4]
    try:
        for ref, quoted, relative_to, named, named_text in links:
            found = resolver.resolve(ref, quoted, relative_to)
            if found is None or str(found) != named or resolver.read(found) != (named_text, ""):
                return None
    except Exception:  # noqa: BLE001 - a name that now means two policies, a foreign entry: a miss
        return None
    return payload if isinstance(payload, tuple) and len(payload) == 5 else None


def load(text: str, filename: str, registry: Registry, resolver: PolicyResolver) -> tuple[dict[str, Any], Any] | None:
    """The policy in ``filename`` (whose text is ``text``) as stored: (the fields of its
    :class:`~policykit._manager.Policy` but the plugin, the plugin) -- or None (no entry,
    a stale one, no cache)."""
    payload = _entry(text, filename, registry, resolver)
    if payload is None:
        return None
    fields, code, flags = payload[:3]
    try:
        code = marshal.loads(code)
        flags = [AttributeSpec(*f) for f in flags]
    except Exception:  # noqa: BLE001 - a foreign entry: a miss
        return None
    if not isinstance(code, CodeType):
        return None
    return fields, policy_plugin(fields["name"], fields["source"], code, flags)


def checked_clean(text: str, filename: str, registry: Registry,
                  resolver: PolicyResolver) -> tuple[str, list[str]] | None:
    """What ``policykit check`` says of a policy stored with no error and no warning:
    (its name, the names of the policies it extends, nearest first) -- or None (not
    stored, stale, or it had diagnostics: the checker must show them)."""
    payload = _entry(text, filename, registry, resolver)
    if payload is None or payload[3] is not True:
        return None
    return payload[0]["name"], list(payload[4])


def store(text: str, filename: str, registry: Registry, checked: CheckedPolicy, compiled: CompiledPolicy,
          fields: dict[str, Any], clean: bool) -> None:
    """Keep the load of ``checked`` (the policy in ``filename``, ``text``), compiled, and
    the fields of its Policy, with what they were made from; ``clean``: its check found
    nothing to say (no error, no warning)."""
    stamp = _stamp(registry)
    path = entry_path("policies", stamp, filename, text)
    if path is None or compiled.code is None:
        return
    links: list[Link] = []
    files = checked.files                   # root first, this policy last
    for parent, child in zip(files, files[1:]):
        h = child.headers("extends")[0]
        links.append((h.value, h.quoted, child.filename, parent.filename, parent.source))
    flags = [(f.owner, f.name, f.type, f.default, f.doc, f.flag, f.oracle_only, f.provider) for f in compiled.flags]
    chain = [Path(f.filename).stem for f in reversed(files[:-1])]
    store_entry(path, (stamp, filename, text, tuple(links),
                       (fields, marshal.dumps(compiled.code), flags, clean, chain)))
