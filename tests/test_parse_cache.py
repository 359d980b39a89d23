"""What parsing, checking and compiling keep between processes: only in a directory of
the user's own, and used only while what it was made from still holds."""

from __future__ import annotations

import os

import pytest

from policykit._parse_cache import NO_CACHE_ENV, lark_cache
from policykit.errors import PolicyKitError


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

    from policykit.dsl import parse
    from policykit.errors import SourceError

    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SourceError):
        parse.parse_policy("policy x\non wp_fault {\n", "bad.pol")
    assert not list((tmp_path / "policykit" / "ast").glob("*.pickle"))


# -- checked scenario files -------------------------------------------------------------------

def _scenario_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "policykit" / "scenarios"


def test_a_checked_scenario_file_is_kept_and_read_back_equal(tmp_path, monkeypatch):
    from policykit.scenario import cache, load_scenarios
    from policykit.testing import session

    where = _scenario_cache(tmp_path, monkeypatch)
    registry = session("linux-6.x").registry
    path = tmp_path / "t.scn"
    path.write_text("variants base pte-mapped-thp:16k\nspawn -> p\nmmap_variant p -> buf\nfork p -> c\n"
                    "write p buf\nread c buf\nexpect linux-6.x: ok\n")
    first = load_scenarios(path, registry)
    assert len(list(where.glob("*.pickle"))) == 1
    assert cache.load(path.read_text(), str(path), registry) is not None
    again = load_scenarios(path, registry)
    assert again == first and [s.steps for s in again] == [s.steps for s in first]
    assert [s.steps[1].params for s in again] == [s.steps[1].params for s in first]
    span = again[0].steps[1].span                   # read back as it was made: frozen, hashable
    assert hash(span) == hash(first[0].steps[1].span)
    with pytest.raises(AttributeError):
        span.line = 9


def test_a_files_variants_share_the_steps_they_take_alike(tmp_path, monkeypatch):
    from policykit.scenario import load_scenarios
    from policykit.testing import session

    _scenario_cache(tmp_path, monkeypatch)
    registry = session("linux-6.x").registry
    path = tmp_path / "t.scn"
    path.write_text("variants base swapped pte-mapped-thp:16k pte-mapped-thp:32k\nspawn -> p\n"
                    "mmap_variant p -> buf\nfork p -> c\nwrite p buf[0]\nread c buf[0]\n")
    for scenarios in (load_scenarios(path, registry), load_scenarios(path, registry)):   # checked, cached
        base, swapped, thp16, thp32 = (s.steps[-3:] for s in scenarios)
        assert [s.steps[-1].text for s in scenarios] == ["read c buf[0]"] * 4
        assert base[0] is swapped[0] is thp16[0] is thp32[0]             # fork p -> c
        assert all(a is b for a, b in zip(base, swapped)) and all(a is b for a, b in zip(thp16, thp32))
        # a step whose parameters differ by variant stays each one's own: a THP variant's
        # 'buf' is the page its steps name (an alias of the THP)
        assert base[1] == thp16[1] and base[1] is not thp16[1]
        assert base[1].params != thp16[1].params


def test_a_changed_file_or_registry_is_checked_again(tmp_path, monkeypatch):
    from policykit import Session, VariantSpec, hookimpl, load_policy
    from policykit.scenario import cache, load_scenarios

    _scenario_cache(tmp_path, monkeypatch)
    text = "variants base mine\nspawn -> p\nmmap_variant p -> buf\nwrite p buf\n"
    path = tmp_path / "t.scn"
    path.write_text(text)
    plain = Session(load_policy("linux-6.x")).registry
    skipped: list = []
    assert [s.variant for s in load_scenarios(path, plain, skipped)] == ["base"]
    assert skipped == [("t/mine", "no installed plugin declares the variant 'mine'")]
    again: list = []
    load_scenarios(path, plain, again)
    assert again == skipped                                   # the skipped variants are kept too

    class Mine:
        @hookimpl
        def policykit_add_variants(self):
            return [VariantSpec("mine", "my memory", "mmap {process} 2 -> {region}\nwrite {process} {region}\n")]

    more = Session(load_policy("linux-6.x"), plugins=[Mine()]).registry
    assert cache.load(text, str(path), more) is None          # another registry: not that entry
    assert [s.variant for s in load_scenarios(path, more)] == ["base", "mine"]
    path.write_text(text.replace("write p buf", "read p buf"))
    assert cache.load(path.read_text(), str(path), plain) is None


def test_a_file_with_an_error_is_never_kept(tmp_path, monkeypatch):
    from policykit import ScenarioError
    from policykit.scenario import load_scenarios
    from policykit.testing import session

    where = _scenario_cache(tmp_path, monkeypatch)
    path = tmp_path / "bad.scn"
    path.write_text("spawn -> p\nwrite p nosuch\n")
    for _ in range(2):
        with pytest.raises(ScenarioError):
            load_scenarios(path, session("linux-6.x").registry)
    assert not list(where.glob("*.pickle"))


# -- verified policy code ---------------------------------------------------------------------

def test_a_verified_policy_is_compiled_once_and_edits_are_verified_again(tmp_path, monkeypatch):
    from policykit import dsl
    from policykit.dsl import compile as compiler
    from policykit.testing import session

    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    verified = []
    real = compiler.verify_source
    monkeypatch.setattr(compiler, "verify_source", lambda *a: verified.append(1) or real(*a))
    registry = session("linux-6.x").registry
    pol = tmp_path / "p.pol"
    pol.write_text('policy p\nsummary "s"\nextends linux-5.9\nconst GUP_PIN_COUNTING_BIAS = 2\n', encoding="utf-8")

    def decide_fork_pte():
        checked, _ = dsl.check_file(str(pol), registry)
        return dsl.compile_policy(checked).plugin.policykit_fork_pte

    first = decide_fork_pte()
    assert verified == [1]
    again = decide_fork_pte()                       # read back: not verified, not compiled again
    assert verified == [1] and again.__code__ == first.__code__ and again is not first
    entries = list((tmp_path / "cache" / "policykit" / "compiled").glob("*.pickle"))
    assert len(entries) == 1
    for e in entries:                               # a damaged entry: verified and compiled again
        e.write_bytes(b"not a pickle")
    decide_fork_pte()
    assert verified == [1, 1]
    pol.write_text(pol.read_text().replace("= 2", "= 3"), encoding="utf-8")
    decide_fork_pte()                               # another source: verified
    assert verified == [1, 1, 1]
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    decide_fork_pte()
    decide_fork_pte()
    assert verified == [1, 1, 1, 1, 1]


# -- compiled policies, whole ---------------------------------------------------------------

LOAD = """
import sys
from policykit._manager import load_policy
p = load_policy(sys.argv[1])
print(p.name, len(p.rules), "policykit.dsl.check" in sys.modules)
"""

FORK = "spawn -> p\nmmap p 1 private -> buf\nwrite p buf\nfork p -> c\n"


def _in_a_new_process(script, env, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


def _load_in_a_new_process(spec, env):
    done = _in_a_new_process(LOAD, env, spec)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _chain(tmp_path, base):
    """An environment with a cache of its own, ``base.pol`` (never-copy with ``base``
    after its header) and ``child.pol``, which extends it by path."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop(NO_CACHE_ENV, None)
    (tmp_path / "base.pol").write_text('policy base\nsummary "b"\nextends never-copy\n' + base)
    child = tmp_path / "child.pol"
    child.write_text('policy child\nsummary "c"\nextends "base.pol"\n')
    return env, tmp_path / "base.pol", child


def _fork_copies(spec):
    from policykit._manager import load_policy
    from policykit.run import Session

    session = Session(load_policy(str(spec)))
    return session.run(session.parse(FORK)).metrics["fork_copies"]


def test_a_policy_loaded_once_is_read_back_without_checking_it_again(tmp_path):
    env, base, child = _chain(tmp_path, "on fork_pte {\n    otherwise -> copy\n}\n")
    first = _load_in_a_new_process(child, env)
    assert first[0] == "child" and first[2] == "True"               # checked, compiled, kept
    assert _load_in_a_new_process(child, env) == [*first[:2], "False"]   # read back
    # a file the chain names changed: checked again, the change taken
    base.write_text('policy base\nsummary "b"\nextends never-copy\non fork_pte {\n    page.anon -> copy\n'
                    '    otherwise -> share\n}\n')
    again = _load_in_a_new_process(child, env)
    assert again[2] == "True" and int(again[1]) == int(first[1]) + 1
    for e in (tmp_path / "cache" / "policykit" / "policies").glob("*.pickle"):   # damaged: checked again
        e.write_bytes(b"not a pickle")
    assert _load_in_a_new_process(child, env)[2] == "True"
    env[NO_CACHE_ENV] = "1"
    assert _load_in_a_new_process(child, env)[2] == "True"
    assert _load_in_a_new_process(child, env)[2] == "True"


def test_a_cached_policy_follows_the_policy_path_as_it_is_now(tmp_path, monkeypatch):
    from policykit.config import PATH_ENV

    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, action in (("copies", "copy"), ("shares", "share")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "base.pol").write_text(
            f'policy base\nsummary "b"\nextends never-copy\non fork_pte {{\n    otherwise -> {action}\n}}\n')
    child = tmp_path / "child.pol"
    child.write_text('policy child\nsummary "c"\nextends base\n')
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "copies"))
    assert _fork_copies(child) == 1
    assert _fork_copies(child) == 1                                 # read back
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "shares"))          # 'base' is another file now
    assert _fork_copies(child) == 0
    monkeypatch.setenv(PATH_ENV, os.pathsep.join([str(tmp_path / "copies"), str(tmp_path / "shares")]))
    with pytest.raises(PolicyKitError, match="two policies are named 'base'"):
        _fork_copies(child)                                         # now it means two: the error, afresh


def test_a_policy_read_back_is_the_policy_loaded(tmp_path, monkeypatch):
    from policykit._manager import load_policy
    from policykit.corpus import scenario_files
    from policykit.run import Session

    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fresh, back = load_policy("linux-6.x"), load_policy("linux-6.x")
    assert list((tmp_path / "cache" / "policykit" / "policies").glob("*.pickle"))
    assert back.plugin is not fresh.plugin
    for field in ("name", "source", "summary", "rules", "unrealizable", "mentions"):
        assert getattr(back, field) == getattr(fresh, field)
    sessions = [Session(fresh), Session(back)]
    s = sessions[0]
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))][::5]
    a, b = (s.run_many(scenarios) for s in sessions)
    assert [(r.classes, r.metrics, r.rules) for r in a] == [(r.classes, r.metrics, r.rules) for r in b]


CHECK = """
import sys
from policykit.cli import main
code = main(["check", *sys.argv[1:]])
print("checker imported" if "policykit.dsl.check" in sys.modules else "checker not imported")
raise SystemExit(code)
"""


def _check_in_a_new_process(env, *args):
    done = _in_a_new_process(CHECK, env, *args)
    return done.returncode, done.stdout, done.stderr


def test_check_answers_an_unchanged_clean_policy_from_the_cache(tmp_path):
    env, base, child = _chain(tmp_path, "")
    first = _check_in_a_new_process(env, child)
    assert first[0] == 0 and "ok, policy child (extends base, never-copy)" in first[1]
    assert "checker imported" in first[1]
    again = _check_in_a_new_process(env, child)
    assert again[0] == 0 and again[1].replace("checker not imported", "checker imported") == first[1]
    assert again[2] == first[2]
    # with a warning: checked each time, the warning shown each time
    child.write_text('policy child\nsummary "c"\nextends "base.pol"\nconst UNUSED = 1\n')
    for _ in range(2):
        code, out, err = _check_in_a_new_process(env, child)
        assert "checker imported" in out and "1 warning" in out and "PK404" in err
        assert _check_in_a_new_process(env, "--strict", child)[0] == 1
    # an error in the file it extends: checked again, reported, never kept
    child.write_text('policy child\nsummary "c"\nextends "base.pol"\n')
    assert "checker not imported" in _check_in_a_new_process(env, child)[1]
    base.write_text('policy base\nsummary "b"\nextends never-copy\non fork_pte {\n    page.nosuch -> copy\n'
                    '    otherwise -> share\n}\n')
    for _ in range(2):
        code, out, err = _check_in_a_new_process(env, child)
        assert code == 2 and "nosuch" in err
