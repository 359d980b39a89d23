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
