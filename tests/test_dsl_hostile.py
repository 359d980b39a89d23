"""A policy file is data: hostile ones get clean errors, and nothing they say runs as Python."""

from __future__ import annotations

import functools

import pytest
from test_dsl_errors import policy

from policykit import Session
from policykit._manager import build_registry, get_plugin_manager
from policykit.dsl import check_policy, compile_policy, parse_policy, resolver
from policykit.dsl.compile import UnsafeCodeError, verify_source
from policykit.errors import SourceError


@functools.cache
def registry():
    return build_registry(get_plugin_manager(autoload=False))


def compiled(text: str, filename: str = "hostile.pol"):
    checked, diags = check_policy(parse_policy(text, filename), registry(), resolver())
    assert [d.render() for d in diags if d.severity == "error"] == []
    return compile_policy(checked)


def errors_of(text: str) -> list[str]:
    try:
        tree = parse_policy(text, "hostile.pol")
    except SourceError as exc:
        return [exc.message]
    return [d.error.message for d in check_policy(tree, registry(), resolver())[1] if d.severity == "error"]


@pytest.mark.parametrize("text,message", [
    ("pred __import__(page) = true\n", "starts with '_'"),
    ("const __builtins__ = 1\n", "starts with '_'"),
    ("flag page.__dict__ = true\n", "starts with '_'"),
    ("pred p(page) = page.__class__ == 1\n", "page has no attribute '__class__'"),
    ("pred p(mm) = mm.__init__\n", "mm has no attribute '__init__'"),
    ("pred p(page) = __import__(page)\n", "unknown predicate '__import__'"),
    ("pred p(page) = eval(page)\n", "unknown predicate 'eval'"),
    ("on wp_fault {\n    otherwise -> __import__\n}\n", "no action '__import__'"),
    ("on __init__ {\n    otherwise -> copy\n}\n", "unknown decision point '__init__'"),
    ("pred p(page) = page.refcount.real > 1\n", "unexpected"),
    ("pred p(page) = page['x']\n", "unexpected"),
    ("pred p(page) = 1e9 > 2\n", "unexpected"),
    ("const A = 99999999999999999999999999999999999999\n", "too large"),
    ("const A = 3037000500 * 3037000500 * 3037000500\n", "overflows"),
    ("pred p(page) = " + "(" * 5000 + "true" + ")" * 5000 + " and " + "not " * 5000 + "true\n",
     "nested too deeply"),
    ('extends "/etc/passwd"\n', ""),
])
def test_hostile_input_is_refused_cleanly(text, message):
    errs = errors_of(policy(text))
    assert errs, "a hostile policy must not pass"
    assert any(message in e for e in errs), errs


def test_strings_enter_generated_code_only_as_data(tmp_path):
    evil = 'x"); __import__("os").system("touch PWNED"); ("'
    text = policy('on wp_fault {\n    otherwise -> copy [warn "' + evil.replace('"', '\\"') + '"]\n}\n')
    c = compiled(text, str(tmp_path / "a\nimport os.pol"))
    assert "import os" not in c.source.replace('\\nimport os', "")
    from policykit._manager import Policy
    session = Session(Policy("evil", c.plugin, "evil"), autoload=False)
    r = session.run(session.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"))
    assert r.warnings == [f"line 5: wp_fault: {evil}"]
    assert not (tmp_path / "PWNED").exists()


def test_generated_code_has_no_builtins():
    c = compiled(policy("pred p(page) = page.refcount > 1\non wp_fault {\n    p(page) -> copy\n    otherwise -> reuse\n}\n"))
    fn = c.plugin.policykit_wp_fault
    assert fn.__globals__["__builtins__"] == {}
    assert set(fn.__globals__) - {"__builtins__"} <= {"Decision", "Effect"} | {
        n for n in fn.__globals__ if n.startswith(("p_", "D_", "policykit_"))}


@pytest.mark.parametrize("source", [
    "import os\n",
    "def policykit_gup(ctx):\n    return ctx.__class__\n",
    "def policykit_gup(ctx):\n    return open('x')\n",
    "def policykit_gup(ctx):\n    return [x for x in ctx]\n",
    "def policykit_gup(ctx):\n    return lambda: 1\n",
    "x = 1.5\n",
    "def policykit_gup(ctx):\n    return p_x(**ctx)\n",
])
def test_the_whitelist_rejects_what_the_compiler_never_writes(source):
    with pytest.raises(UnsafeCodeError):
        verify_source(source)


def test_every_builtin_policy_compiles_within_the_whitelist():
    from policykit import dsl
    full = build_registry(get_plugin_manager())
    for name in dsl.builtin_names():
        checked, _ = dsl.check_file(name, full)
        verify_source(dsl.generate_source(checked))
