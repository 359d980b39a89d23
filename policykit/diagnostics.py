"""The checkers' findings in the formats CI reads: JSON, SARIF 2.1.0 (code scanning) and
GitHub workflow commands (``::error file=...``), beside the human text of
:meth:`policykit.errors.SourceError.render`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .codes import CODES, is_warning
from .errors import SourceError

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
JSON_SCHEMA = "policykit.check/1"


@dataclass(frozen=True)
class Finding:
    """One message of a checker, located."""

    file: str
    line: int
    column: int
    end_column: int
    severity: str           # error | warning
    code: str
    message: str
    hint: str

    @classmethod
    def of(cls, err: SourceError) -> Finding:
        s = err.span
        return cls(s.filename, s.line, s.column, s.end_column or s.column + 1, err.severity,
                   err.code, err.message, err.hint or "")


def render(findings: Sequence[Finding], fmt: str, checked: Sequence[dict] = ()) -> str:  # type: ignore[type-arg]
    """``findings`` as ``json``, ``sarif`` or ``github``; ``checked`` describes each file
    (JSON only)."""
    if fmt == "json":
        return json.dumps({"schema": JSON_SCHEMA, "files": list(checked),
                           "findings": [asdict(f) for f in findings]}, indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2)
    if fmt == "github":
        return "\n".join(github(f) for f in findings)
    raise ValueError(fmt)


def sarif(findings: Sequence[Finding]) -> dict:  # type: ignore[type-arg]
    """A SARIF 2.1.0 log of one run: every code is a rule of the tool, every finding a
    result located by file, line and columns (1-based, end column exclusive)."""
    from . import __version__

    codes = sorted(CODES)
    index = {code: i for i, code in enumerate(codes)}
    rules = [{"id": code, "name": CODES[code][0], "shortDescription": {"text": CODES[code][1]},
              "defaultConfiguration": {"level": "warning" if is_warning(code) else "error"}}
             for code in codes]
    results = []
    for f in findings:
        text = f.message + (f" (hint: {f.hint})" if f.hint else "")
        result = {"level": "warning" if f.severity == "warning" else "error", "message": {"text": text},
                  "locations": [{"physicalLocation": {
                      "artifactLocation": {"uri": f.file},
                      "region": {"startLine": f.line, "startColumn": f.column, "endColumn": f.end_column}}}]}
        if f.code in index:
            result = {"ruleId": f.code, "ruleIndex": index[f.code], **result}
        results.append(result)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "policykit", "version": __version__, "rules": rules}},
                      "columnKind": "unicodeCodePoints", "results": results}]}


def github(f: Finding) -> str:
    """A GitHub Actions workflow command that annotates the line."""
    props = ",".join(f"{k}={_escape_property(str(v))}" for k, v in (
        ("file", f.file), ("line", f.line), ("col", f.column), ("endColumn", f.end_column),
        ("title", f"policykit {f.code}" if f.code else "policykit")))
    text = f.message + (f" (hint: {f.hint})" if f.hint else "")
    return f"::{'warning' if f.severity == 'warning' else 'error'} {props}::{_escape_data(text)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
