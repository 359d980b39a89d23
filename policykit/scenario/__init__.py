"""Scenario files: syntax (:mod:`.parse`), names and arguments (:mod:`.check`), AST (:mod:`.model`)."""

from __future__ import annotations

from pathlib import Path

from ..engine.specs import Registry
from ..errors import PolicyKitError
from .check import check_scenario
from .model import Scenario, Step
from .parse import parse_scenario

__all__ = ["Scenario", "Step", "load_scenario", "parse_scenario", "check_scenario", "scenario_from_text"]


def scenario_from_text(text: str, filename: str, registry: Registry) -> Scenario:
    """Parse and check scenario text."""
    return check_scenario(parse_scenario(text, filename), text, registry)


def load_scenario(path: str | Path, registry: Registry) -> Scenario:
    """Read, parse and check a scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyKitError(f"{path}: cannot read scenario: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyKitError(f"{path}: not a text file") from None
    return scenario_from_text(text, str(path), registry)
