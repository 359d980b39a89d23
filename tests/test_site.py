"""The docs build as a site (mkdocs, strict: a broken link or a page left out of the nav
fails), with policy and scenario blocks highlighted by policykit's own Pygments lexers."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytest.importorskip("mkdocs")
pygments = pytest.importorskip("pygments")


def build(root, out):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(root / "mkdocs.yml"), "-d", str(out)], capture_output=True, text=True, timeout=300)


def test_the_docs_build_strictly_and_highlight_policies(tmp_path):
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    page = (tmp_path / "site" / "index.html").read_text()
    assert 'class="codehilite"' in page
    assert '<span class="kn">policy</span>' in page      # the policy lexer, not plain text


def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "index.md", "a") as f:
        f.write("\nSee [the missing page](missing.md).\n")
    done = build(tmp_path, tmp_path / "site")
    assert done.returncode != 0 and "missing.md" in done.stdout + done.stderr


def test_the_lexers_are_registered_and_read_every_builtin_file_without_errors():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    from pygments.token import Error

    assert get_lexer_by_name("pol").name == "policykit policy"
    assert get_lexer_by_name("scn").name == "policykit scenario"
    files = sorted((ROOT / "policies").glob("*.pol")) + sorted((ROOT / "policykit" / "corpus").glob("*.scn"))
    assert len(files) > 40
    for path in files:
        tokens = list(get_lexer_for_filename(path.name).get_tokens(path.read_text()))
        assert not [v for t, v in tokens if t is Error], path
    kinds = {t for t, _ in get_lexer_by_name("pol").get_tokens((ROOT / "policies" / "linux-5.19.pol").read_text())}
    from pygments.token import Comment, Keyword, Name, Operator
    assert {Comment.Single, Keyword.Namespace, Name.Label, Name.Tag, Operator.Word} <= kinds
