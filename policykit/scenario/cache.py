"""Checked scenario files kept between processes, as policy syntax trees are
(:func:`policykit.dsl.parse.parse_policy`): parsing, expanding the variants and checking
the corpus costs a tenth of a second that every command would pay again.

An entry is the file's scenarios and skipped variants, pickled in the user's own cache
directory (``$XDG_CACHE_HOME/policykit/scenarios``, see :mod:`policykit._parse_cache`;
``POLICYKIT_NO_CACHE=1`` turns it off).  It is used only for the same text, file name,
scenario code (the package's files) and registry (:meth:`Registry.scenario_stamp`); a file
with an error is never stored, so its error is reported afresh.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .._parse_cache import code_stamp, entry_path, read_entry, registry_stamp, store_entry
from ..engine.specs import Registry
from .model import Scenario

#: the files whose change makes every cached scenario stale
_CODE = ("__init__.py", "cache.py", "check.py", "model.py", "parse.py", "variants.py")

Entry = tuple[list[Scenario], list[tuple[str, str]]]

@functools.cache
def _code_stamp() -> str:
    return code_stamp(Path(__file__).parent, _CODE)


def _stamp(registry: Registry) -> str:
    """The scenario code's stamp and the registry's."""
    return registry_stamp(registry, _code_stamp(), "scenario_stamp")


def load(text: str, filename: str, registry: Registry) -> Entry | None:
    """The entry for this file, or None (none, stale, or no cache)."""
    stamp = _stamp(registry)
    path = entry_path("scenarios", stamp, filename, text)
    saved = read_entry(path) if path is not None else None
    if not (isinstance(saved, tuple) and len(saved) == 4 and saved[:3] == (stamp, filename, text)):
        return None
    return saved[3]


def store(text: str, filename: str, registry: Registry, entry: Entry) -> None:
    """Keep the entry, with what it was made from."""
    stamp = _stamp(registry)
    path = entry_path("scenarios", stamp, filename, text)
    if path is not None:
        store_entry(path, (stamp, filename, text, entry))
