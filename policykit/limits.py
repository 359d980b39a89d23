"""Every bound policykit puts on its input, in one place (docs/security.md lists them).

A policy file is untrusted data: whatever ``check`` accepts must compile and run in
bounded time and memory, so the checker enforces these before anything is built.  A
scenario is bounded before anything is allocated, and a run in time and pages.
"""

from __future__ import annotations

# -- policies ----------------------------------------------------------------------------

#: largest policy file, in bytes
MAX_POLICY_BYTES = 1 << 20
#: deepest expression: each operator, call, ``not`` and pair of parentheses is a level
MAX_EXPR_DEPTH = 64
#: most operators, operands and calls in one expression
MAX_EXPR_NODES = 2_000
#: digits of an integer literal (policies and scenarios): 2**63 - 1 has 19
MAX_INT_DIGITS = 19
#: largest integer a policy or a scenario may write
MAX_INT = 2**63 - 1
#: longest chain of predicates calling predicates
MAX_CALL_DEPTH = 32
#: most predicate calls one evaluation of a rule's condition may make, counting every
#: call a predicate makes in turn (``a(x) = b(x) and b(x)`` doubles at each level)
MAX_CALL_EXPANSION = 10_000
#: most constants, flags, predicates and rules in one policy and what it extends
MAX_DEFINITIONS = 5_000
#: longest ``extends`` chain
MAX_EXTENDS = 32

# -- scenarios ---------------------------------------------------------------------------

#: largest scenario file, in bytes
MAX_SCENARIO_BYTES = 1 << 20
#: most steps in one scenario
MAX_STEPS = 10_000
#: largest mapping (or file) a scenario may make, in pages (256 MiB)
MAX_PAGES_PER_MAPPING = 1 << 16
#: most processes a scenario may make, ``fork_children`` included
MAX_PROCESSES = 8_192
#: most files a scenario may create
MAX_FILES = 256
#: most pages all live processes may map at once, and all files hold, together
MAX_TOTAL_PAGES = 1 << 20

# -- runs -------------------------------------------------------------------------------

#: a run's time limit, in seconds (``--timeout``): past it, the run gets an ``error``
#: verdict naming the step, and the others go on
RUN_TIMEOUT = 60.0
#: what one call of a decision hook may take, in seconds
DECISION_BUDGET = 1.0

# -- explore / diverge ---------------------------------------------------------------------

#: default bounds of a search (``--procs``, ``--pages``, ``--refs``, ``--depth``)
EXPLORE_PROCS = 2
EXPLORE_PAGES = 1
EXPLORE_REFS = 2
EXPLORE_DEPTH = 6
