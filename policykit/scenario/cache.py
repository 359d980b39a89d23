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
import itertools
import os
import pickle
import zlib
from pathlib import Path

from .. import _version
from .._parse_cache import cache_dir
from ..engine.specs import Registry
from .model import Scenario

#: entries kept; past it the oldest half goes
MAX_CACHED = 2_000
_stores = itertools.count(1)
_CODE = ("__init__.py", "cache.py", "check.py", "model.py", "parse.py", "variants.py")

Entry = tuple[list[Scenario], list[tuple[str, str]]]


@functools.cache
def _code_stamp() -> str:
    here = Path(__file__).parent
    parts = [_version.__version__]
    for name in _CODE:
        try:
            st = (here / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(name)
    return "|".join(parts)


_stamps: dict[int, tuple[Registry, str]] = {}


def _registry_stamp(registry: Registry) -> str:
    hit = _stamps.get(id(registry))
    if hit is None or hit[0] is not registry:
        hit = _stamps[id(registry)] = (registry, registry.scenario_stamp())
    return hit[1]


def _key(text: str, filename: str, registry: Registry) -> tuple[Path | None, str]:
    directory = cache_dir("scenarios")
    stamp = _code_stamp() + "\0" + _registry_stamp(registry)
    if directory is None:
        return None, stamp
    data = "\0".join((stamp, filename, text)).encode("utf-8", "surrogatepass")
    return directory / f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}.pickle", stamp


def load(text: str, filename: str, registry: Registry) -> Entry | None:
    """The entry for this file, or None (none, stale, or no cache)."""
    path, stamp = _key(text, filename, registry)
    if path is None:
        return None
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception:  # a missing, partial or foreign entry is checked again  # noqa: BLE001
        return None
    if not (isinstance(saved, tuple) and len(saved) == 4 and saved[:3] == (stamp, filename, text)):
        return None
    return saved[3]


def store(text: str, filename: str, registry: Registry, entry: Entry) -> None:
    """Keep the entry (written whole or not at all), and the cache from growing without bound."""
    path, stamp = _key(text, filename, registry)
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(pickle.dumps((stamp, filename, text, entry), protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
        if next(_stores) % 100 != 1:
            return
        entries = list(path.parent.glob("*.pickle"))
        if len(entries) > MAX_CACHED:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - MAX_CACHED // 2]:
                old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, RecursionError):
        tmp.unlink(missing_ok=True)
