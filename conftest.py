"""What every test of the repository shares (tests/ and each plugin's tests)."""

from __future__ import annotations

import os
import shutil
import tempfile

_saved: dict[str, str | None] = {}


#: what the suite takes out of the environment while it runs: a terminal size (tables are
#: laid out for ``$COLUMNS`` when it is set; a test that wants a width sets it, the
#: others get tables whole, whatever the shell exported -- pytest-xdist's workers have
#: COLUMNS=80)
_UNSET = ("COLUMNS", "LINES")


def pytest_configure(config):
    """The suite's parse caches (lark's tables, policies' syntax trees) go to a directory
    of its own, not the user's ~/.cache -- from before collection, which already loads
    policies; no terminal size comes from the environment."""
    for name in ("XDG_CACHE_HOME", *_UNSET):
        _saved[name] = os.environ.pop(name, None)
    _saved["dir"] = tempfile.mkdtemp(prefix="policykit-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _saved["dir"]


def pytest_unconfigure(config):
    if "dir" not in _saved:
        return
    for name in ("XDG_CACHE_HOME", *_UNSET):
        old = _saved.pop(name)
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
    shutil.rmtree(_saved.pop("dir"), ignore_errors=True)
