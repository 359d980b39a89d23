"""One test per kind of policy error or warning: message, position, hint."""

from __future__ import annotations

import functools

import pytest

from policykit.dsl import check_policy, parse_policy, resolver
from policykit.dsl._syntax_errors import EXAMPLES
from policykit._manager import build_registry, get_plugin_manager
from policykit.errors import SourceError

#: every decision point decided, so that a case only needs to show its own mistake
REST = {
    "fork_pte": "on fork_pte {\n    otherwise -> share\n}\n",
    "wp_fault": "on wp_fault {\n    otherwise -> copy\n}\n",
    "unshare_fault": "on unshare_fault {\n    otherwise -> copy\n}\n",
    "gup": "on gup {\n    otherwise -> grab\n}\n",
    "mprotect_pte": "on mprotect_pte {\n    otherwise -> keep\n}\n",
    "clear_refs_pte": "on clear_refs_pte {\n    otherwise -> wrprotect\n}\n",
}


@functools.cache
def registry():
    return build_registry(get_plugin_manager(autoload=False))


def policy(text: str, *, omit: tuple[str, ...] = ()) -> str:
    """``text`` first (so its line numbers are as written), then the blocks it lacks."""
    rest = "".join(b for point, b in REST.items() if f"on {point} " not in text and point not in omit)
    return text + "\n" + rest


def diagnostics(text: str, filename: str = "bad.pol"):
    try:
        tree = parse_policy(text, filename)
    except SourceError as exc:
        return [("error", exc)]
    _, diags = check_policy(tree, registry(), resolver())
    return [(d.severity, d.error) for d in diags]


ERRORS = [
    # (id, text, line, col, message part, hint part)
    ("unknown-attribute", "on wp_fault {\n    page.refcnt == 1 -> reuse\n    otherwise -> copy\n}\n",
     2, 5, "page has no attribute 'refcnt'", "did you mean 'refcount'"),
    ("plugin-attribute", "on wp_fault {\n    page.ksm -> copy\n    otherwise -> reuse\n}\n",
     2, 5, "provided by the plugin policykit-ksm, which is not installed", "install policykit-ksm"),
    ("oracle-only", "on fork_pte {\n    page.pins > 0 -> copy\n    otherwise -> share\n}\n",
     2, 5, "page.pins is engine-private truth", "unrealizable"),
    ("unrealizable-action", "on wp_fault {\n    page.mapcount > 1 -> directed_copy\n    otherwise -> reuse\n}\n",
     2, 26, "no kernel can 'directed_copy' at wp_fault", "unrealizable"),
    ("object-not-in-context", "on wp_fault {\n    foll.write -> copy\n    otherwise -> copy\n}\n",
     2, 5, "'foll' is not available here", "available: mm, page, pte, vma"),
    ("unknown-name", "on wp_fault {\n    exclusive -> reuse\n    otherwise -> copy\n}\n",
     2, 5, "unknown name 'exclusive'", None),
    ("else-for-otherwise", "on wp_fault {\n    page.refcount == 1 -> reuse\n    else -> copy\n}\n",
     3, 5, "unknown name 'else'", "otherwise -> ACTION"),
    ("unknown-predicate", "pred pinned(page) = page.refcount > 1\non wp_fault {\n    pined(page) -> copy\n    otherwise -> reuse\n}\n",
     3, 5, "unknown predicate 'pined'", "did you mean 'pinned'"),
    ("predicate-not-called", "pred pinned(page) = page.refcount > 1\non wp_fault {\n    pinned -> copy\n    otherwise -> reuse\n}\n",
     3, 5, "'pinned' is a predicate", "pinned(...)"),
    ("arity", "pred pinned(page) = page.refcount > 1\non wp_fault {\n    pinned(page, mm) -> copy\n    otherwise -> reuse\n}\n",
     3, 5, "pinned takes 1 argument, got 2", "pinned(page: page)"),
    ("argument-type", "pred pinned(page) = page.refcount > 1\non wp_fault {\n    pinned(mm) -> copy\n    otherwise -> reuse\n}\n",
     3, 12, "argument 'page' of pinned is a page, got a mm", "pass a page"),
    ("int-as-condition", "on wp_fault {\n    page.refcount -> copy\n    otherwise -> reuse\n}\n",
     2, 5, "expected a condition, got a int", "true or false"),
    ("bool-arithmetic", "pred p(page) = page.anon + 1 > 2\n",
     1, 16, "expected a number, got a bool", "numbers"),
    ("compare-mixed", "pred p(page) = page.anon == 1\n", 1, 16, "cannot compare a bool with a int", None),
    ("order-on-bools", "pred p(page) = page.anon < true\n", 1, 16, "'<' compares numbers", "== or !="),
    ("unknown-param-type", "pred p(x: pgae) = true\n", 1, 8, "unknown parameter type 'pgae'", "did you mean 'page'"),
    ("unknown-action", "on wp_fault {\n    otherwise -> reuse_page\n}\n",
     2, 18, "wp_fault has no action 'reuse_page'", "did you mean 'reuse'"),
    ("unknown-decision-point", "on wp_faults {\n    otherwise -> copy\n}\n",
     1, 4, "unknown decision point 'wp_faults'", "did you mean 'wp_fault'"),
    ("missing-otherwise", "on wp_fault {\n    page.refcount == 1 -> reuse\n}\n",
     2, 5, "the rules of wp_fault have no fall-through", "otherwise -> reuse"),
    ("empty-block", "on wp_fault {\n}\n", 1, 4, "no fall-through", "otherwise ->"),
    ("undecided-point", "policy half\n", 1, 8, "does not decide 'wp_fault'", "on wp_fault {"),
    ("set-undeclared-flag", "on wp_fault {\n    otherwise -> reuse [set page.exclusive]\n}\n",
     2, 25, "page.exclusive is not a declared flag", "flag page.exclusive = false"),
    ("set-engine-attribute", "on wp_fault {\n    otherwise -> reuse [set page.refcount = 1]\n}\n",
     2, 25, "page.refcount belongs to the engine", "flag OWNER.NAME"),
    ("set-wrong-type", "flag page.level = 0\non wp_fault {\n    page.level == 0 -> copy\n    otherwise -> reuse [set page.level = true]\n}\n",
     4, 42, "expected a number, got a bool", "holds a int"),
    ("clear-number", "flag page.level = 0\non wp_fault {\n    page.level == 0 -> copy\n    otherwise -> reuse [clear page.level]\n}\n",
     4, 25, "'clear' applies to true/false flags", "set page.level = 0"),
    ("flag-owner", "flag vma.seen = false\n", 1, 6, "flags live on page or mm", "flag page.NAME"),
    ("flag-shadows-attribute", "flag page.refcount = 0\n", 1, 6, "page.refcount is an engine attribute", None),
    ("flag-not-constant", "flag page.x = page.refcount\n", 1, 15, "initial value must be a constant", None),
    ("duplicate-pred", "pred p(page) = true\npred p(page) = false\n", 2, 6, "predicate 'p' is defined twice", "line 1"),
    ("duplicate-block", REST["wp_fault"] + REST["wp_fault"], 4, 4, "block 'wp_fault' is defined twice", "line 1"),
    ("duplicate-header", "policy a\npolicy b\n", 2, 8, "'policy' given twice", None),
    ("recursion", "pred a(page) = b(page)\npred b(page) = a(page)\non wp_fault {\n    a(page) -> copy\n    otherwise -> reuse\n}\n",
     1, 6, "recursive predicate: a -> b -> a", "cannot call themselves"),
    ("const-cycle", "const A = B + 1\nconst B = A\n", 1, 7, "defined in terms of itself", None),
    ("const-not-constant", "const A = page.refcount\n", 1, 7, "not a constant expression", None),
    ("unknown-extends", "extends linux-5.99\n", 1, 9, "unknown policy 'linux-5.99'", "did you mean"),
    ("underscore-name", "pred _hidden(page) = true\n", 1, 6, "name '_hidden' starts with '_'", "reserved"),
    ("dunder-param", "pred p(__class__: page) = true\n", 1, 8, "name '__class__' starts with '_'", None),
    ("dunder-attribute", "on wp_fault {\n    page.__class__ -> copy\n    otherwise -> reuse\n}\n",
     2, 5, "page has no attribute '__class__'", None),
    ("syntax-arrow", "on wp_fault {\n    page.refcount == 1 reuse\n}\n", 2, 24, "unexpected 'reuse'", "CONDITION -> ACTION"),
    ("syntax-c-operators", "pred p(page) = page.anon && page.zero\n", 1, 26, "unexpected character '&'", "'and', 'or' and 'not'"),
    ("syntax-single-equals", "on wp_fault {\n    page.refcount = 1 -> reuse\n}\n", 2, 19, "unexpected '='", "compare with '=='"),
    ("syntax-unclosed-block", "#raw\non wp_fault {\n    otherwise -> copy\n", 2, 13, "this '{' is not closed",
     "close the block with '}' at its end"),
    ("syntax-unclosed-block-before-next", "#raw\non wp_fault {\n    otherwise -> copy\n\non fork_pte {\n"
     "    otherwise -> share\n}\n", 2, 13, "this '{' is not closed", "close the block with '}' before line 5"),
    ("syntax-semicolon", "on wp_fault {\n    otherwise -> copy;\n}\n", 2, 22, "unexpected character ';'", "no ';'"),
    ("syntax-effect-brackets", "on wp_fault {\n    otherwise -> reuse set page.x\n}\n", 2, 28, "unexpected 'page.x'", "in brackets"),
    ("syntax-pred-equals", "pred p(page) page.anon\n", 1, 14, "unexpected 'page.anon'", "pred NAME(PARAMS) = EXPRESSION"),
    ("huge-integer", "const BIG = 123456789012345678901234567890\n", 1, 13, "is too large", "integers go up to"),
    ("deep-nesting", "pred p(page) = " + "(page.anon and " * 200 + "true" + ")" * 200 + "\n", 1, None,
     "nested too deeply", "at most 64"),
    ("deep-not", "pred p(page) = " + "not " * 500 + "true\n", 1, None, "nested too deeply", "at most 64"),
    ("constant-overflow", "const A = 9223372036854775807 * 2\n", 1, 11, "overflows 64 bits", None),
]


@pytest.mark.parametrize("text,line,col,msg,hint", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error(text, line, col, msg, hint):
    raw = text.startswith(("policy half", "#raw"))
    diags = diagnostics(text if raw else policy(text))
    errors = [e for sev, e in diags if sev == "error"]
    assert errors, "expected an error"
    matching = [e for e in errors if msg in e.message]
    assert matching, [e.render() for e in errors]
    err = matching[0]
    assert err.span.line == line, err.render()
    if col is not None:
        assert err.span.column == col, err.render()
    assert err.hint, "every error has a hint"
    if hint:
        assert hint in err.hint, err.render()
    rendered = err.render()
    assert rendered.startswith(f"bad.pol:{line}:") and "^" in rendered and "hint: " in rendered


WARNINGS = [
    ("after-otherwise", "on wp_fault {\n    otherwise -> copy\n    page.refcount == 1 -> reuse\n}\n",
     3, "this rule never fires", "line 2 always fires"),
    ("shadowed", "on wp_fault {\n    page.refcount == 1 -> reuse\n    page.refcount == 1 -> copy\n    otherwise -> copy\n}\n",
     3, "this rule never fires", "line 2 has the same condition"),
    ("constant-false", "const ON = false\non wp_fault {\n    ON -> reuse\n    otherwise -> copy\n}\n",
     3, "always false", "remove the rule"),
    ("constant-true", "on wp_fault {\n    1 == 1 -> reuse\n    otherwise -> copy\n}\n",
     3, "this rule never fires", "line 2 always fires"),
    ("unused-pred", "pred unused(page) = true\n", 1, "predicate 'unused' is never used", "remove it"),
    ("unused-flag", "flag mm.seen = false\n", 1, "flag mm.seen is never read or set", None),
    ("unused-const", "const SPARE = 3\n", 1, "constant 'SPARE' is never used", None),
]


@pytest.mark.parametrize("text,line,msg,hint", [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS])
def test_warning(text, line, msg, hint):
    diags = diagnostics(policy(text))
    assert [e.render() for sev, e in diags if sev == "error"] == []
    warns = [e for sev, e in diags if sev == "warning" and msg in e.message]
    assert warns, [e.render() for _, e in diags]
    assert warns[0].span.line == line
    if hint:
        assert hint in warns[0].hint


def test_warning_renders_as_warning():
    from policykit.dsl import Diagnostic
    [d] = [Diagnostic(s, e) for s, e in diagnostics(policy("const SPARE = 3\n"))]
    assert d.render().startswith("bad.pol:1:7: warning[PK404]: constant 'SPARE' is never used")


def test_extends_cycle(tmp_path):
    (tmp_path / "a.pol").write_text('policy a\nextends "b.pol"\n')
    (tmp_path / "b.pol").write_text('policy b\nextends "a.pol"\n')
    tree = parse_policy((tmp_path / "a.pol").read_text(), str(tmp_path / "a.pol"))
    _, diags = check_policy(tree, registry(), resolver())
    [cycle] = [d.error for d in diags if "cycle" in d.error.message]
    assert cycle.span.filename.endswith("b.pol") and cycle.span.line == 2
    assert "a.pol -> b.pol" in cycle.message or "b.pol -> a.pol" in cycle.message


def test_extends_by_path_and_late_binding(tmp_path):
    # a child overriding one predicate changes the parent's rules that call it
    (tmp_path / "base.pol").write_text(policy(
        "policy base\npred worth_copying(page) = false\non fork_pte {\n"
        "    worth_copying(page) -> copy\n    otherwise -> share\n}\n"))
    (tmp_path / "child.pol").write_text('policy child\nextends "base.pol"\npred worth_copying(page) = true\n')
    tree = parse_policy((tmp_path / "child.pol").read_text(), str(tmp_path / "child.pol"))
    checked, diags = check_policy(tree, registry(), resolver())
    assert diags == []
    from policykit.dsl import compile_policy
    from policykit.engine.context import make_context
    from policykit.engine.model import Mm, Page, Pte, Vma
    plugin = compile_policy(checked).plugin
    defaults = {o: {} for o in ("page", "pte", "vma", "mm", "foll")}
    ctx = make_context("fork_pte", defaults, Page(1), Pte(1), Vma(0, 1), Mm())
    assert plugin.policykit_fork_pte(ctx).action == "copy"


HEADER = 'policy x\nsummary "s"\nextends linux-5.9\nconst A = 1\n\n'


@pytest.mark.parametrize("label, snippet", [(label, s) for label, snippets in EXAMPLES.items() for s in snippets])
def test_each_known_mistake_gets_its_hint_after_other_items_too(label, snippet):
    """A hint found for a snippet alone must be found in a file where items come before
    it (the parser's stack is deeper there)."""
    for text in (snippet, HEADER + snippet):
        with pytest.raises(SourceError) as exc:
            parse_policy(text, "t.pol")
        assert exc.value.hint == label, text


def test_a_missing_arrow_in_a_real_policy_gets_the_arrow_hint():
    text = HEADER + "on wp_fault {\n    page.refcount == 1 reuse\n    otherwise -> copy\n}\n"
    with pytest.raises(SourceError) as exc:
        parse_policy(text, "t.pol")
    assert exc.value.hint == "a rule reads CONDITION -> ACTION, e.g. 'page.refcount == 1 -> reuse'"


def test_a_broken_extends_does_not_cascade(tmp_path):
    from policykit.cli import main

    f = tmp_path / "c.pol"
    f.write_text("policy x\nextends linux-5.99\non wp_fault {\n    page.anon_exclusive -> reuse\n"
                 "    otherwise -> copy\n}\n", encoding="utf-8")
    from policykit import dsl
    _, found = dsl.check_file(str(f), registry())
    assert [d.code for d in found] == ["PK203"]
    assert found[0].error.hint == "did you mean 'linux-5.9'? (1 more error about names it would define not shown)"
    # a mistake that does not follow from it is still reported
    f.write_text("policy x\nextends linux-5.99\non wp_fault {\n    page.refcount + 1 -> reuse\n"
                 "    otherwise -> copy\n}\n", encoding="utf-8")
    _, found = dsl.check_file(str(f), registry())
    assert [d.code for d in found] == ["PK203", "PK307"]
    assert main(["check", str(f)]) == 2
