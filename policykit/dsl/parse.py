"""Policy text to :class:`~policykit.dsl.ast.PolicyFile` (syntax only), cached.

A file is parsed once per process (an ``extends`` chain shared by many policies), and
its syntax tree is kept in the user's cache directory (see :mod:`policykit._parse_cache`)
keyed by its text, its name, and the parser's own files: a policy met before -- every
built-in one, a user's unchanged file -- is read back without lark, which is most of the
start-up of ``policykit check``.  The grammar itself is in :mod:`._grammar`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .._parse_cache import code_stamp, entry_path, read_entry, store_entry
from . import ast

#: the files whose change makes every cached tree stale
_PARSER_FILES = ("ast.py", "_grammar.py", "policy.lark")


@functools.lru_cache(maxsize=256)
def parse_policy(text: str, filename: str = "<policy>") -> ast.PolicyFile:
    """Parse policy text; raise :class:`~policykit.dsl._errors.PolicySyntaxError` on a
    syntax error (never cached).  The AST is immutable, so sharing it is safe."""
    path = entry_path("ast", _parser_stamp(), filename, text)
    if path is not None:
        tree = read_entry(path)
        if isinstance(tree, ast.PolicyFile) and tree.source == text and tree.filename == filename:
            return tree
    from ._grammar import parse_text

    tree = parse_text(text, filename)
    if path is not None:
        store_entry(path, tree)
    return tree


@functools.cache
def _parser_stamp() -> str:
    return code_stamp(Path(__file__).parent, _PARSER_FILES)
