"""Compiled rules read the engine's objects themselves (``raw_rules``), and decide as
the same rules reading views do: one table says how each field is read
(:data:`policykit.engine.reads.RAW_READS`), and the corpus runs alike both ways."""

from __future__ import annotations

import functools

import pytest

from policykit import Session, dsl, load_policy
from policykit.corpus import corpus_dirs, scenario_files
from policykit.engine.context import VIEWS
from policykit.engine.reads import RAW_READS

NAMES = dsl.builtin_names()


@functools.cache
def session(name: str) -> Session:
    return Session(load_policy(name))


@functools.cache
def corpus() -> list:
    s = session("linux-6.x")
    files = scenario_files([str(d) for d in corpus_dirs(s.pm)], s.pm)
    return [sc for f in files for sc in s.load_all(str(f))]


def view_fields(owner: str) -> set[str]:
    """What a rule may read of an owner's view besides declared attributes."""
    cls = VIEWS[owner]
    public = [n for n in dir(cls) if not n.startswith("_")]
    properties = {n for n in public if isinstance(getattr(cls, n), property)}
    slots = {n for n in public if n in getattr(cls, "__slots__", ())} if owner == "foll" else set()
    return (properties | slots) - {"probe"}         # (the GUP flags are FollFlags' own fields)


@pytest.mark.parametrize("owner", list(RAW_READS))
def test_every_field_a_view_shows_has_one_raw_read(owner):
    assert set(RAW_READS[owner]) == view_fields(owner)


@pytest.mark.parametrize("name", NAMES)
def test_the_engine_calls_the_raw_rules_of_a_compiled_policy(name):
    direct = session(name).dispatch.direct
    assert direct and all(fn is None or fn.__name__ == f"raw_{point}" for point, fn in direct.items())
    assert any(fn is not None for fn in direct.values())


def outcome(result) -> tuple:
    return (result.verdict, [(v.cls, v.line, v.detail, v.seen, v.expected) for v in result.violations],
            result.metrics, result.rules, result.warnings)


@pytest.mark.parametrize("name", NAMES)
def test_raw_rules_decide_as_the_rules_on_views_do(name):
    """A traced run asks the policy through a context (views, as ``explain`` does); a
    plain run through its raw rules: the same result, rule for rule, on the corpus
    (every scenario for the newest era and the yardstick, which read the most; every
    fifth for the others)."""
    s = session(name)
    scenarios = corpus() if name in ("linux-6.x", "ideal") else corpus()[::5]
    for sc in scenarios:
        plain, traced = s.run(sc), s.run(sc, trace=True)
        assert outcome(plain) == outcome(traced), sc.name
