"""Where parsing keeps what it built, between processes: lark's parse tables for our
grammars, and the syntax trees of policy files already parsed.

Building the LALR tables of the policy grammar costs more than parsing every built-in
policy; lark can keep them in a file.  Its default file is a pickle in the shared temp
directory, which another user of the machine could replace, so ours live in the user's
own cache directory (``$XDG_CACHE_HOME/policykit``, else ``~/.cache/policykit``), used
only when that directory belongs to the user and nobody else may write to it -- the
trust Python gives ``__pycache__``.  Lark rebuilds a file whose grammar, options or lark
version changed.  ``POLICYKIT_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

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
