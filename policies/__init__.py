"""The built-in policies (``*.pol``), installed as ``policykit.builtin_policies``."""
