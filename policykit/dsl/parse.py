"""Policy text to :class:`~policykit.dsl.ast.PolicyFile` (syntax only), cached.

A file is parsed once per process (an ``extends`` chain shared by many policies), and
its syntax tree is kept in the user's cache directory (see :mod:`policykit._parse_cache`)
keyed by its text, its name, and the parser's own files: a policy met before -- every
built-in one, a user's unchanged file -- is read back without lark, which is most of the
start-up of ``policykit check``.  The grammar itself is in :mod:`._grammar`.
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
from . import ast

#: the files whose change makes every cached tree stale
_PARSER_FILES = ("ast.py", "_grammar.py", "policy.lark")
#: cached trees kept at most; past it the oldest go
MAX_CACHED = 2_000
#: counts the trees this process stores
_stores = itertools.count(1)


@functools.lru_cache(maxsize=256)
def parse_policy(text: str, filename: str = "<policy>") -> ast.PolicyFile:
    """Parse policy text; raise :class:`~policykit.dsl._errors.PolicySyntaxError` on a
    syntax error (never cached).  The AST is immutable, so sharing it is safe."""
    path = _cached_path(text, filename)
    if path is not None:
        try:
            tree = pickle.loads(path.read_bytes())
            if isinstance(tree, ast.PolicyFile) and tree.source == text and tree.filename == filename:
                return tree
        except Exception:  # a missing, partial or stale entry is parsed again  # noqa: BLE001
            pass
    from ._grammar import parse_text

    tree = parse_text(text, filename)
    if path is not None:
        _store(path, tree)
    return tree


@functools.cache
def _parser_stamp() -> str:
    here = Path(__file__).parent
    parts = [_version.__version__]
    for name in _PARSER_FILES:
        try:
            st = (here / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(name)
    return "|".join(parts)


def _cached_path(text: str, filename: str) -> Path | None:
    directory = cache_dir("ast")
    if directory is None:
        return None
    # a cheap key (hashlib alone costs 2 ms of start-up): an entry read back is used only
    # when its text and name are the ones asked for, so a collision costs a parse
    data = "\0".join((_parser_stamp(), filename, text)).encode("utf-8", "surrogatepass")
    return directory / f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}.pickle"


def _store(path: Path, tree: ast.PolicyFile) -> None:
    """Write the entry whole or not at all (a temporary file renamed), and keep the cache
    from growing without bound."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
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
