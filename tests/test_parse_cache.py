"""The grammar tables cache: only in a directory of the user's own."""

from __future__ import annotations

import os

from policykit._parse_cache import NO_CACHE_ENV, lark_cache


def test_cache_lives_in_a_private_directory_of_the_user(tmp_path, monkeypatch):
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = lark_cache("policy")
    assert path == str(tmp_path / "policykit" / "policy.lark-cache")
    assert os.stat(tmp_path / "policykit").st_mode & 0o777 == 0o700


def test_no_cache_where_others_may_write(tmp_path, monkeypatch):
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "policykit").mkdir()
    os.chmod(tmp_path / "policykit", 0o777)
    assert lark_cache("policy") is False


def test_no_cache_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    assert lark_cache("policy") is False
    assert not (tmp_path / "policykit").exists()


# -- syntax trees of policy files ----------------------------------------------------------

PARSE_TWICE = """
import sys
from policykit.dsl.parse import parse_policy
tree = parse_policy(open(sys.argv[1]).read(), sys.argv[1])
print("lark" in sys.modules, len(tree.items))
"""


def _parse_in_a_new_process(path, env):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PARSE_TWICE, str(path)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_policy_parsed_once_is_read_back_without_lark(tmp_path, monkeypatch):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop(NO_CACHE_ENV, None)
    pol = tmp_path / "p.pol"
    pol.write_text('policy p\nsummary "s"\nextends linux-5.9\nconst A = 1\n', encoding="utf-8")
    assert _parse_in_a_new_process(pol, env) == ["True", "4"]       # parsed by lark, kept
    assert _parse_in_a_new_process(pol, env) == ["False", "4"]      # read back
    pol.write_text('policy p\nsummary "s"\nextends linux-5.9\nconst A = 2\nconst B = 3\n', encoding="utf-8")
    assert _parse_in_a_new_process(pol, env) == ["True", "5"]       # changed text: parsed again
    entries = list((tmp_path / "cache" / "policykit" / "ast").glob("*.pickle"))
    assert len(entries) == 2
    for e in entries:                                               # a damaged entry is parsed again
        e.write_bytes(b"not a pickle")
    assert _parse_in_a_new_process(pol, env) == ["True", "5"]
    env[NO_CACHE_ENV] = "1"
    assert _parse_in_a_new_process(pol, env) == ["True", "5"]


def test_a_syntax_error_is_not_cached(tmp_path, monkeypatch):
    import pytest

    from policykit.dsl import parse
    from policykit.errors import SourceError

    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SourceError):
        parse.parse_policy("policy x\non wp_fault {\n", "bad.pol")
    assert not list((tmp_path / "policykit" / "ast").glob("*.pickle"))
