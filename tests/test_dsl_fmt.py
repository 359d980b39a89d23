"""`policykit fmt`: canonical, idempotent, never changes the AST, keeps comments."""

from __future__ import annotations

import pytest

from policykit.dsl.fmt import format_policy
from policykit.dsl.parse import parse_policy

MESSY = '''# leading comment

policy   messy   # trailing on a header
summary "a \\"quoted\\" summary"
extends   "base.pol"
const  A=1
const B = A+2*3
flag page.x=true   "doc"
pred   p( page , n:int )=page.refcount>=n   and(page.anon or not page.zero)
pred q(page) = (page.refcount - 1) - (2 - 1) > 0 and not (page.anon and page.zero)
on wp_fault{
  # before a rule
  p(page,B) -> reuse[set page.x,warn "w"]   # after a rule
  otherwise->copy [ clear page.x ]
  # before the closing brace
}
# at the end
'''


def test_canonical_layout():
    out = format_policy(MESSY)
    assert out == '''# leading comment

policy messy  # trailing on a header
summary "a \\"quoted\\" summary"
extends "base.pol"

const A = 1
const B = A + 2 * 3

flag page.x = true "doc"

pred p(page, n: int) = page.refcount >= n and (page.anon or not page.zero)

pred q(page) = page.refcount - 1 - (2 - 1) > 0 and not (page.anon and page.zero)

on wp_fault {
    # before a rule
    p(page, B) -> reuse [set page.x, warn "w"]  # after a rule
    otherwise  -> copy [clear page.x]
    # before the closing brace
}

# at the end
'''


def test_idempotent_and_ast_preserving():
    once = format_policy(MESSY)
    assert format_policy(once) == once
    assert parse_policy(once).items == parse_policy(MESSY).items


@pytest.mark.parametrize("expr", [
    "a or b and c", "(a or b) and c", "(a or b) or c", "a or (b or c)", "not (a and b)", "not a == b",
    "(not a) == b", "a - (b - c) > 1", "(a - b) - c > 1", "a * (b + c) > 1", "(a + b) * c > 1",
    "f(a + 1, not b) == (c == d)", "not not a",
])
def test_parentheses_are_exactly_those_the_ast_needs(expr):
    text = f"pred t(page) = {expr}\n"
    out = format_policy(text)
    assert parse_policy(out).items == parse_policy(text).items
    assert format_policy(out) == out


def test_long_conditions_break_after_operators():
    cond = " and ".join(f"page.refcount > {i}" for i in range(12))
    out = format_policy(f"pred long(page) = {cond}\n")
    lines = out.splitlines()
    assert lines[0] == "pred long(page) ="
    assert all(len(line) <= 96 for line in lines)
    assert parse_policy(out).items == parse_policy(f"pred long(page) = {cond}\n").items


def test_a_trailing_comment_on_a_wrapped_rule_stays_put():
    text = ("policy f\nextends linux-6.x\non wp_fault {\n    page.refcount == 1 and page.mapcount == 1 and "
            "page.anon and not page.zero and page.refcount < 1024 and page.mapcount < 2 -> reuse  # keep\n"
            "    otherwise -> copy\n}\n")
    once = format_policy(text)
    assert format_policy(once) == once
    assert "    page.refcount == 1 and  # keep\n        page.mapcount == 1 and\n" in once
    assert not any(line.strip() == "" and line for line in once.split("\n")), "no whitespace-only line"


@pytest.mark.parametrize("odd", ["\u2028", "\x0b", "\x0c", "\x85", "\u2029", "\r"])
def test_odd_line_breaks_in_comments_are_kept_and_end_no_line(odd):
    """Only \\n ends a line: an error after a comment holding U+2028, a vertical tab or a
    form feed is reported at its real line, with that line under the caret; fmt keeps
    the comment and is idempotent."""
    from policykit.dsl import check_policy, resolver
    from policykit._manager import build_registry, get_plugin_manager

    text = f"policy f\nextends linux-6.x\n# a{odd}b\non wp_fault {{\n    page.refcont > 1 -> copy\n    otherwise -> copy\n}}\n"
    once = format_policy(text)
    assert format_policy(once) == once and f"# a{odd}b" in once
    tree = parse_policy(text, "odd.pol")
    [err] = [d for d in check_policy(tree, build_registry(get_plugin_manager()), resolver())[1]
             if d.severity == "error"]
    rendered = err.render()
    assert err.error.span.line == 5 and "   5 |     page.refcont > 1 -> copy\n" in rendered, rendered
