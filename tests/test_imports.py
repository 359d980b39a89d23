"""Every module imports on its own, in a fresh interpreter: no import cycles."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import policykit

MODULES = sorted(m.name for m in pkgutil.walk_packages(policykit.__path__, "policykit.")
                 if m.name != "policykit.__main__")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
