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
    ('extends "/etc/passwd"\n', "extends names a policy"),
    ('extends "/bin/ls"\n', "extends names a policy"),
    # engine state through flag names
    ("flag page.folio = 0\n", "flag page.folio: the engine uses 'folio'"),
    ("flag page.count = 0\n", "the engine uses 'count'"),
    ("flag page.index = 0\n", "the engine uses 'index'"),
    ("flag page.pfn = 0\n", "the engine uses 'pfn'"),
    ("flag mm.vmas = 0\n", "the engine uses 'vmas'"),
    ("flag page.refcount = 0\n", "is an engine attribute"),
    ("flag page.f_x = true\n", "compiled policies read their flags"),
    ("flag pte.x = true\n", "flags live on page or mm"),
    ("const page = 1\n", "a constant cannot be named 'page'"),
    ("const mm = true\n", "a constant cannot be named 'mm'"),
    # what checks must run: bounded depth, length, calls
    ("const A = " + " + ".join(["1"] * 210) + "\n", "nested too deeply"),
    ("pred p(page) = page.refcount == " + " - ".join(["1"] * 500) + "\n", "nested too deeply"),
    ("pred p(page) = page.refcount == " + " * ".join(["1"] * 500) + "\n", "nested too deeply"),
    ("pred p(page) = " + " or ".join(["page.refcount > 1"] * 2500) + "\n", "longer than 2,000 terms"),
    ("const A = " + "9" * 5000 + "\n", "too large"),
    ("pred q0(page) = page.refcount > 1\n" + "".join(f"pred q{i}(page) = q{i - 1}(page)\n" for i in range(1, 3000))
     + "on wp_fault {\n    q2999(page) -> copy\n    otherwise -> copy\n}\n", "calls predicates 32 deep"),
    ("pred q0(page) = page.refcount > 1\n" + "".join(f"pred q{i}(page) = q{i - 1}(page) or q{i - 1}(page)\n"
                                                   for i in range(1, 25))
     + "on wp_fault {\n    q24(page) -> copy\n    otherwise -> copy\n}\n", "more than 10,000 predicate calls"),
    ("".join(f"const C{i} = {i}\n" for i in range(5100)), "more than 5,000 constants"),
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
    from policykit.engine.reads import HELPERS
    assert set(fn.__globals__) - {"__builtins__"} <= {"Decision", "Effect", "raw_rules", "RAW_POINTS"} | {
        n for n in fn.__globals__ if n.startswith(("p_", "D_", "decide_", "policykit_"))} | set(HELPERS)
    assert all(f.__module__ == "policykit.engine.reads" for n, f in fn.__globals__.items() if n in HELPERS)


@pytest.mark.parametrize("source", [
    "import os\n",
    "def policykit_gup(ctx):\n    return ctx.__class__\n",
    "def policykit_gup(ctx):\n    return open('x')\n",
    "def policykit_gup(ctx):\n    return [x for x in ctx]\n",
    "def policykit_gup(ctx):\n    return lambda: 1\n",
    "x = 1.5\n",
    "def policykit_gup(ctx):\n    return p_x(**ctx)\n",
    # the raw rules read an object's plain fields and its flags, and nothing more
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return page.flags.pop('x', 1)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return page.attrs.get('x', 1)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return page.flags.get(vpn, 1)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return page.flags.get('x', page)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return machine.flags.get('x', 1)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return a_refcount(page, machine=machine)\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    page.pfn = 1\n",
    "def raw_gup(page, pte, vma, mm, foll, machine, vpn):\n    return a_nothing(page)\n",
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


def run_under(text: str, scenario: str = "spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"):
    from policykit._manager import Policy
    c = compiled(text)
    session = Session(Policy("hostile", c.plugin, "hostile.pol"), autoload=False)
    return c, session.run(session.parse(scenario), invariants=True)


def test_a_flag_named_like_a_keyword_checks_compiles_and_runs():
    text = policy("flag page.if = false\non wp_fault {\n    page.if -> copy [clear page.if]\n"
                  "    otherwise -> copy [set page.if]\n}\n")
    c, r = run_under(text)
    assert "c_page.f_if" in c.source and r.verdict == "ok" and r.metrics["wp_copies"] == 1


def test_a_flag_cannot_reach_engine_state():
    """A policy's flag lives apart from the engine's keys: setting one never makes a page
    part of a large folio, whatever it is called."""
    text = policy("flag page.folio_like = 0\non wp_fault {\n    otherwise -> copy [set page.folio_like = 12345]\n}\n")
    _, r = run_under(text)
    assert r.verdict == "ok"
    from policykit._manager import Policy
    c = compiled(text)
    session = Session(Policy("hostile", c.plugin, "hostile.pol"), autoload=False)
    runner = session.start()
    for i, st in enumerate(session.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\n"
                                         "write p b\n").steps):
        runner.step(i, st)
    pages = [p for p in runner.engine.machine.pages.values() if p.flags]
    assert pages and all(p.flags == {"folio_like": 12345} and "folio" not in p.attrs and p.folio is None
                         for p in pages)


def test_compiled_code_reads_only_declared_attributes():
    """The generated source is checked against the registry's attributes and the
    policy's flags: a name outside them is refused even if the compiler wrote it."""
    c = compiled(policy("flag page.x = false\non wp_fault {\n    page.x and page.refcount > 1 -> copy\n"
                        "    otherwise -> reuse\n}\n"))
    from policykit.dsl.compile import readable
    allowed = readable(c.checked)
    verify_source(c.source, allowed)
    for bad in ("c_page.count", "c_page.pfn", "c_page.x", "c_mm.refcount", "ctx.machine", "v_x.index"):
        with pytest.raises(UnsafeCodeError):
            verify_source(f"def policykit_wp_fault(ctx):\n    return {bad}\n", allowed)
    # the raw rules: an object's plain fields, the policy's own flags
    raw = "def raw_wp_fault(page, pte, vma, mm, foll, machine, vpn):\n    return {}\n"
    for good in ("page.pfn", "page.flags.get('x', False)", "r_p.mapcount", "vma.is_cow_mapping"):
        verify_source(raw.format(good), allowed)
    for bad in ("page.refcount", "page.attrs", "page.flags", "page.flags.get('y', False)", "mm.clean",
                "machine.refs", "foll.probe", "pte.pfn", "r_p.attrs"):
        with pytest.raises(UnsafeCodeError):
            verify_source(raw.format(bad), allowed)


def test_constants_chained_five_hundred_deep_check_and_run():
    text = policy("const C0 = 1\n" + "".join(f"const C{i} = C{i - 1}\n" for i in range(1, 500))
                  + "on wp_fault {\n    page.refcount == C499 -> reuse\n    otherwise -> copy\n}\n")
    _, r = run_under(text)
    assert r.verdict == "ok"


def test_a_policy_at_every_limit_still_compiles_and_runs():
    deep = "(" * 60 + "page.refcount > 1" + ")" * 60
    chain = "pred q0(page) = page.refcount > 1\n" + "".join(
        f"pred q{i}(page) = q{i - 1}(page)\n" for i in range(1, 32))
    text = policy(chain + f"on wp_fault {{\n    {deep} and q31(page) and page.refcount < "
                  + " + ".join(["1"] * 40) + " -> copy\n    otherwise -> reuse\n}\n")
    _, r = run_under(text)
    assert r.verdict == "ok"


def test_extends_never_echoes_a_file_that_is_not_a_policy(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:SECRET-TOKEN:0:0\n")
    link = tmp_path / "sneaky.pol"
    link.symlink_to(secret)
    binary = tmp_path / "binary.pol"
    binary.write_bytes(b"\xff\xfe\x00policy")
    for target in (secret, link, binary):
        text = policy(f'extends "{target}"\n')
        diags = check_policy(parse_policy(text, str(tmp_path / "top.pol")), registry(), resolver())[1]
        rendered = "\n".join(d.render() for d in diags)
        assert "SECRET" not in rendered and "cannot extend" in rendered, rendered
        assert "does not decide" not in rendered, "no cascade after a broken extends"
