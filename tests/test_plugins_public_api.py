"""Plugins shipped in plugins/ use policykit's public API only: what `import policykit`
exports, never a module behind it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import policykit

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
SOURCES = sorted(p for p in PLUGINS.glob("*/policykit_*/**/*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PLUGINS)) for p in SOURCES])
def test_imports_only_the_public_api(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("policykit"):
            assert not node.module.startswith("policykit."), f"{path}: from {node.module} import ..."
            if node.module == "policykit":
                for alias in node.names:
                    assert alias.name in policykit.__all__, f"{path}: {alias.name} is not public"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("policykit."), f"{path}: import {alias.name}"


def test_every_plugin_is_its_own_distribution_with_an_entry_point():
    dirs = [d for d in PLUGINS.iterdir() if d.is_dir()]
    assert dirs
    for d in dirs:
        text = (d / "pyproject.toml").read_text()
        assert f'name = "{d.name}"' in text
        assert "[project.entry-points.policykit]" in text
