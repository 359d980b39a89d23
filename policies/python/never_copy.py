"""never-copy: share at fork, reuse on every write fault -- COW switched off (insecure).

A baseline for the oracle: writes after fork land in the page both processes map.
"""

POLICY_NAME = "py-never-copy"


def policykit_fork_pte(ctx):
    return "share"


def policykit_wp_fault(ctx):
    return "reuse"


def policykit_unshare_fault(ctx):
    return "reuse"


def policykit_gup(ctx):
    # after a FOLL_FORCE COW fault the PTE stays read-only: FOLL_COW and dirty will do
    if ctx.foll.write and not ctx.pte.writable and not (ctx.foll.cow and ctx.pte.dirty):
        return "write_fault"
    return "grab"


def policykit_mprotect_pte(ctx):
    return "keep"


def policykit_clear_refs_pte(ctx):
    return "wrprotect"
