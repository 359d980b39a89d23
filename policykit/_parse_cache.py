"""Where parsing keeps what it built, between processes: lark's parse tables for our
grammars, the syntax trees of policy files already parsed, checked scenario files
(:mod:`policykit.scenario.cache`), verified policy code and whole policy loads
(:mod:`policykit.dsl.compile`, :mod:`policykit.dsl.cache`).

Building the LALR tables of the policy grammar costs more than parsing every built-in
policy; lark can keep them in a file.  Its default file is a pickle in the shared temp
directory, which another user of the machine could replace, so ours live in the user's
own cache directory (``$XDG_CACHE_HOME/policykit``, else ``~/.cache/policykit``), used
only when that directory belongs to the user and nobody else may write to it -- the
trust Python gives ``__pycache__``.  Lark rebuilds a file whose grammar, options or lark
version changed.  ``POLICYKIT_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import itertools
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

from . import _version

NO_CACHE_ENV = "POLICYKIT_NO_CACHE"


def cache_dir(sub: str = "") -> Path | None:
    """The user's own cache directory for policykit (or its ``sub`` directory), made if
    need be; None when there is no safe one or caching is off."""
    if os.environ.get(NO_CACHE_ENV):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    directory = Path(root) / "policykit"
    if sub:
        directory = directory / sub
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return directory


def lark_cache(grammar: str) -> str | bool:
    """The ``cache=`` argument for ``Lark`` building ``grammar`` (a file stem): a path in
    the user's cache directory, or False when there is no safe one."""
    directory = cache_dir()
    return str(directory / f"{grammar}.lark-cache") if directory is not None else False


# -- pickled entries (policy syntax trees, checked scenario files) --------------------------

#: entries kept per cache directory; past it the oldest half goes
MAX_CACHED = 2_000
#: counts the entries this process stores
_stores = itertools.count(1)


def code_stamp(here: Path, names: tuple[str, ...]) -> str:
    """What makes a cached entry stale besides its own key: the package version and the
    size and time of the files (in ``here``) that built it."""
    parts = [_version.__version__]
    for name in names:
        try:
            st = (here / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(name)
    return "|".join(parts)


#: (registry id, code stamp, which stamp) -> (the registry, the stamp)
_registry_stamps: dict[tuple[int, str, str], tuple[Any, str]] = {}


def registry_stamp(registry: Any, code: str, which: str) -> str:
    """``code`` (a :func:`code_stamp`) and the registry's ``which`` stamp
    (``scenario_stamp``, ``policy_stamp``): what makes an entry stale, worked out once
    per registry."""
    key = (id(registry), code, which)
    hit = _registry_stamps.get(key)
    if hit is None or hit[0] is not registry:
        hit = _registry_stamps[key] = (registry, code + "\0" + getattr(registry, which)())
    return hit[1]


def entry_path(sub: str, *key: str) -> Path | None:
    """Where the entry for ``key`` lives in the cache directory ``sub`` (None: no cache).
    A cheap key (hashlib alone costs 2 ms of start-up): an entry holds what it was made
    from and is used only when that is what is asked for, so a collision costs a miss."""
    directory = cache_dir(sub)
    if directory is None:
        return None
    data = "\0".join(key).encode("utf-8", "surrogatepass")
    return directory / f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}.pickle"


def read_entry(path: Path) -> Any:
    """The object pickled at ``path``, or None when it is missing, partial or foreign."""
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - any unreadable entry is a miss
        return None


def store_entry(path: Path, value: Any) -> None:
    """Write the entry whole or not at all (a temporary file renamed), and keep the cache
    from growing without bound."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
        if next(_stores) % 100 != 1:        # count the entries now and then, not every time
            return
        entries = list(path.parent.glob("*.pickle"))
        if len(entries) > MAX_CACHED:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - MAX_CACHED // 2]:
                old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, RecursionError):
        tmp.unlink(missing_ok=True)
