"""What every test of the repository shares (tests/ and each plugin's tests)."""

from __future__ import annotations

import os
import shutil
import tempfile

_saved: dict[str, str | None] = {}


def pytest_configure(config):
    """The suite's parse caches (lark's tables, policies' syntax trees) go to a directory
    of its own, not the user's ~/.cache -- from before collection, which already loads
    policies."""
    _saved["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME")
    _saved["dir"] = tempfile.mkdtemp(prefix="policykit-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _saved["dir"]


def pytest_unconfigure(config):
    if "dir" not in _saved:
        return
    old = _saved.pop("XDG_CACHE_HOME")
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
    shutil.rmtree(_saved.pop("dir"), ignore_errors=True)
