"""``python -m policykit``."""

from .cli import console

console()
