"""Stable codes of the checkers' messages, as ruff and rustc number theirs.

``PK1xx`` syntax, ``PK2xx`` names, ``PK3xx`` types and meaning, ``PK4xx`` warnings.  A code
never changes meaning once released; ``policykit check --ignore CODE`` hides a warning,
and SARIF output lists each code as a rule.  docs/codes.md is generated from this table
(a test keeps them in step).
"""

from __future__ import annotations

#: code -> (a short name, what it means)
CODES: dict[str, tuple[str, str]] = {
    # -- syntax ----------------------------------------------------------------------------
    "PK101": ("policy-syntax", "a policy file does not parse"),
    "PK151": ("scenario-syntax", "a scenario file does not parse"),
    # -- names -----------------------------------------------------------------------------
    "PK201": ("extends-twice", "a policy extends more than one policy"),
    "PK202": ("policy-name-clash", "one policy name is defined by two files on the policy path"),
    "PK203": ("unknown-policy", "extends names no policy on the policy path"),
    "PK204": ("extends-cycle", "a policy extends itself, directly or through others"),
    "PK205": ("extends-too-long", "the extends chain is longer than the limit"),
    "PK206": ("extends-unreadable", "the file an extends names cannot be read as a policy"),
    "PK207": ("header-twice", "a header (policy, summary, era, extends...) is given twice"),
    "PK208": ("too-many-definitions", "more constants, flags, predicates and blocks than the limit"),
    "PK209": ("private-name", "a name starts with '_'"),
    "PK210": ("reserved-name", "a constant is named like a context object or parameter"),
    "PK211": ("defined-twice", "a constant, flag, predicate or block is defined twice in one file"),
    "PK212": ("engine-private", "an attribute is engine-private truth no kernel can read"),
    "PK213": ("plugin-missing", "an attribute comes from a plugin that is not installed"),
    "PK214": ("unknown-attribute", "an object has no such attribute"),
    "PK215": ("unknown-name", "a name is no constant, parameter or context object"),
    "PK216": ("predicate-as-value", "a predicate is used without calling it"),
    "PK217": ("not-available-here", "a context object or parameter is not available at this decision point"),
    "PK218": ("no-attributes", "an object that has no attributes is given one"),
    "PK219": ("unknown-predicate", "a call names no predicate"),
    "PK220": ("flag-owner", "a flag is declared on something other than page or mm"),
    "PK221": ("flag-shadows-engine", "a flag is named like an engine attribute"),
    "PK222": ("flag-name", "a flag's name would clash with the engine's or a plugin's"),
    "PK223": ("unknown-type", "a predicate parameter has an unknown type"),
    "PK224": ("unknown-point", "a block names no decision point"),
    "PK225": ("unknown-action", "a rule's action is not one of its decision point's"),
    "PK226": ("effect-owner", "a set/clear names an object not available at its decision point"),
    "PK227": ("effect-on-engine", "a set/clear changes an engine attribute"),
    "PK228": ("undeclared-flag", "a set/clear names a flag that is not declared"),
    "PK251": ("scenario-name", "a scenario names an unknown operation, process, region or reference, "
                               "or gives an operation a bad argument"),
    # -- types and meaning -----------------------------------------------------------------
    "PK301": ("cyclic-constant", "a constant is defined in terms of itself"),
    "PK302": ("overflow", "a constant expression overflows 64 bits"),
    "PK303": ("argument-count", "a predicate is called with the wrong number of arguments"),
    "PK304": ("argument-type", "a predicate argument has the wrong type"),
    "PK305": ("compare-kinds", "a comparison mixes numbers and conditions"),
    "PK306": ("order-of-conditions", "an ordering comparison is given conditions"),
    "PK307": ("expected-type", "a condition is given where a number is expected, or the reverse"),
    "PK308": ("not-constant", "a constant's value is not a constant expression"),
    "PK309": ("flag-default", "a flag's initial value is not a constant"),
    "PK310": ("does-not-decide", "a policy does not decide a decision point the engine asks"),
    "PK311": ("recursive-predicate", "predicates call each other in a cycle"),
    "PK312": ("predicate-depth", "predicates call each other deeper than the limit"),
    "PK313": ("call-expansion", "a rule may make more predicate calls than the limit"),
    "PK314": ("impossible-action", "no kernel can take this action at this decision point"),
    "PK315": ("no-fall-through", "a block's rules have no 'otherwise'"),
    "PK316": ("clear-number", "'clear' is applied to a numeric flag"),
    "PK317": ("number-needs-value", "a numeric flag is set without a value"),
    # -- warnings --------------------------------------------------------------------------
    "PK401": ("rule-never-fires", "a rule is shadowed by the rules before it"),
    "PK402": ("always-false", "a rule's condition is always false"),
    "PK403": ("unused-predicate", "a predicate is never called"),
    "PK404": ("unused-constant", "a constant is never used"),
    "PK405": ("unused-flag", "a flag is never read or set"),
    "PK451": ("unknown-expect-policy", "an expect or budget line names no known policy: it is never checked"),
}


def is_warning(code: str) -> bool:
    return code.startswith("PK4")


def markdown() -> str:
    """The table of docs/codes.md."""
    rows = ["| code | name | meaning |", "|------|------|---------|"]
    rows += [f"| `{code}` | {name} | {meaning} |" for code, (name, meaning) in CODES.items()]
    return "\n".join(rows)
