"""The errors of policy files (kept apart from lark, so that a policy found in the parse
cache is checked without importing it)."""

from __future__ import annotations

from ..errors import SourceError


class PolicySyntaxError(SourceError):
    """A `.pol` file that does not parse."""

    code = "PK101"


class PolicyCheckError(SourceError):
    """A `.pol` file that parses but says something wrong (names, types, actions...)."""
