"""``python -m policykit``."""

from .cli import main

raise SystemExit(main())
