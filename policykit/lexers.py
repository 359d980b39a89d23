"""Pygments lexers for policy files (``.pol``) and scenario files (``.scn``), registered
through the ``pygments.lexers`` entry point: ``pygmentize -l pol``, and the docs'
```` ```pol ```` and ```` ```scn ```` blocks (mkdocs with codehilite) use them.

Needs Pygments (``pip install 'policykit[docs]'``); nothing else in policykit imports
this module.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

__all__ = ["PolicyLexer", "ScenarioLexer"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_POLICY = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?"


class PolicyLexer(RegexLexer):
    """policykit's policy language: headers, ``const``/``flag``/``pred``, and
    ``on POINT { CONDITION -> ACTION [effects] }`` blocks."""

    name = "policykit policy"
    aliases = ["pol", "policykit"]
    filenames = ["*.pol"]

    tokens = {
        "root": [
            (r"[ \t\r\n]+", Whitespace),
            (r"#.*$", Comment.Single),
            (rf"(policy|extends)([ \t]+)({_POLICY})", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (words(("summary", "era", "source", "unrealizable", "extends"), suffix=r"\b"), Keyword.Namespace),
            (rf"(const|pred)([ \t]+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"(flag)([ \t]+)({_NAME})(\.)({_NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Builtin, Punctuation, Name.Variable)),
            (rf"(on)([ \t]+)({_NAME})", bygroups(Keyword, Whitespace, Name.Label)),
            (r"->", Operator, "action"),
            (words(("otherwise",), suffix=r"\b"), Keyword),
            (words(("and", "or", "not"), suffix=r"\b"), Operator.Word),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (words(("set", "clear", "warn"), suffix=r"\b"), Keyword),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"[0-9]+", Number.Integer),
            (r"==|!=|<=|>=|<|>|\+|-|\*|=", Operator),
            (r"[{}()\[\],.:]", Punctuation),
            (r"[A-Z][A-Z0-9_]*\b", Name.Constant),
            (rf"({_NAME})(\.)({_NAME})", bygroups(Name.Builtin, Punctuation, Name.Attribute)),
            (rf"{_NAME}(?=\s*\()", Name.Function),
            (_NAME, Name),
        ],
        "action": [
            (r"[ \t]+", Whitespace),
            (_NAME, Name.Tag, "#pop"),
            (r"", Text, "#pop"),
        ],
    }


#: within a scenario line: blanks, the end of the line (back to the line's start), a comment
_REST_OF_LINE = [
    (r"[ \t]+", Whitespace),
    (r"\n", Whitespace, "#pop"),
    (r"#.*$", Comment.Single),
]


class ScenarioLexer(RegexLexer):
    """policykit's scenario files: headers, one operation per line with ``-> NAME``, and
    ``expect``/``budget`` lines."""

    name = "policykit scenario"
    aliases = ["scn"]
    filenames = ["*.scn"]

    tokens = {
        "root": [
            (r"[ \t]+", Whitespace),
            (r"\n", Whitespace),
            (r"#.*$", Comment.Single),
            (r"(scenario)([ \t]+)(\S+)", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (words(("title", "source"), suffix=r"\b"), Keyword.Namespace),
            (words(("tags", "variants"), suffix=r"\b"), Keyword.Namespace, "words"),
            (rf"(expect|budget)([ \t]+)({_POLICY})", bygroups(Keyword, Whitespace, Name.Namespace), "expect"),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            ("^" + _NAME, Name.Function, "operation"),
        ],
        "words": [
            *_REST_OF_LINE,
            (r"\S+", Name.Tag),
        ],
        "expect": [
            *_REST_OF_LINE,
            (words(("on",), suffix=r"\b"), Keyword),
            (r"==|!=|<=|>=|<|>", Operator),
            (r"[:,]", Punctuation),
            (r"[0-9]+", Number.Integer),
            (r"\S+?(?=[,\s]|$)", Name.Exception),
        ],
        "operation": [
            *_REST_OF_LINE,
            (r"->", Operator),
            (r"[0-9]+", Number.Integer),
            (r"[\[\]:]", Punctuation),
            (_NAME, Name.Variable),
        ],
    }
