"""Known syntax mistakes, each with example bad snippets, matched by lark's
``match_examples`` to give a precise hint."""

from __future__ import annotations

from collections.abc import Callable

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ._errors import PolicyCheckError, PolicySyntaxError

__all__ = ["EXAMPLES", "PolicyCheckError", "PolicySyntaxError", "hint_for"]


#: hint -> example snippets that fail at the same parser state
EXAMPLES: dict[str, list[str]] = {
    "a rule reads CONDITION -> ACTION, e.g. 'page.refcount == 1 -> reuse'": [
        "on wp_fault { page.refcount == 1 reuse }",
        "on wp_fault { otherwise copy }",
    ],
    "a block is 'on POINT { rules }'": [
        "on wp_fault otherwise -> copy }",
        "on wp_fault: otherwise -> copy",
    ],
    "a predicate reads 'pred NAME(PARAMS) = EXPRESSION'": [
        "pred p(page",
        "pred p(page) page.refcount > 1",
        "pred p page.refcount > 1",
        "pred p(page) { page.refcount > 1 }",
    ],
    "effects go in brackets after the action: '-> reuse [set page.anon_exclusive]'": [
        "on wp_fault { a -> reuse set page.x }",
        "on wp_fault { a -> reuse, set page.x }",
        "on wp_fault { otherwise -> reuse (set page.x) }",
    ],
    "an effect is 'set OWNER.FLAG [= VALUE]', 'clear OWNER.FLAG' or 'warn \"TEXT\"'": [
        "on wp_fault { a -> reuse [page.x] }",
        "on wp_fault { a -> reuse [set x] }",
        "on wp_fault { a -> reuse [warn x] }",
    ],
    "policy names go after 'policy' and 'extends': 'extends linux-5.9'": [
        "extends",
        "policy",
    ],
    "name the action after '->', e.g. '-> copy'": [
        "on wp_fault { a -> }",
        "on wp_fault { otherwise -> }",
    ],
    "a flag reads 'flag page.NAME = VALUE \"doc\"' (or mm.NAME)": [
        "flag page",
        "flag page.x",
        "flag page.x true",
        "flag x = true",
    ],
    "a constant reads 'const NAME = VALUE'": [
        "const = 1",
        "const A 1",
    ],
    "a policy file holds headers (policy, summary, era, source, extends), const, flag, pred "
    "and 'on POINT { ... }' blocks": [
        "foo",
        "wp_fault { otherwise -> copy }",
        "if a -> b",
    ],
    "separate arguments with ','": [
        "pred p(page) = f(a b)",
        "pred p(page mm) = true",
    ],
    "header values are quoted: summary \"...\", era \"...\", source \"...\"": [
        "summary",
        "summary x",
        "era 5.9",
        "source x",
    ],
}

_FALLBACK = "see docs/policy-language.md for the grammar"
_TOP_LEVEL = ("a policy file holds headers (policy, summary, era, source, extends), const, flag, pred "
              "and 'on POINT { ... }' blocks")


def hint_for(exc: UnexpectedInput, parse: Callable[[str], object], text: str) -> str:
    """The hint of the known mistake ``exc`` looks like, or a general one."""
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream:exc.pos_in_stream + 1]
        if char in ("&", "|", "!"):
            return "write 'and', 'or' and 'not' (not &&, || or !)"
        if char == ";":
            return "no ';' is needed: statements and rules end by themselves"
    if isinstance(exc, UnexpectedToken) and str(exc.token) == "=" and "CMP" in exc.expected:
        return "compare with '==': a single '=' only appears in const, flag, pred and set"
    expected = set(getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ())
    if {"ON", "CONST", "FLAG"} <= expected:     # between items: whatever follows, this is the hint
        return _TOP_LEVEL
    try:
        label = _match(exc, parse)
    except Exception:  # matching re-parses the examples; never let it mask the error
        label = None
    return label or _FALLBACK


def _match(exc: UnexpectedInput, parse: Callable[[str], object]) -> str | None:
    """The hint of the first example that fails in the same parser state, expecting the
    same tokens -- one failing on the same token first.  (lark's ``match_examples`` also
    compares the depth of the parser's stack, which the items before the mistake change,
    so an example only matched a mistake in a file as short as itself.)"""
    state = getattr(exc, "state", None)
    if state is None:
        return None
    near = None
    for label, snippets in EXAMPLES.items():
        for snippet in snippets:
            try:
                parse(snippet)
            except UnexpectedInput as ut:
                other = getattr(ut, "state", None)
                if other is None or type(ut) is not type(exc) or other.position != state.position:
                    continue
                if getattr(ut, "accepts", None) != getattr(exc, "accepts", None):
                    continue
                if getattr(ut, "token", None) is not None and getattr(exc, "token", None) is not None \
                        and ut.token.type == exc.token.type:
                    return label
                near = near or label
    return near
