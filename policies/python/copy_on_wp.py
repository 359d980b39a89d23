"""copy-on-wp: share at fork, copy on every write fault, never look at references.

Safe against leaks, but a page pinned before fork is replaced under the pin when the
pinning process writes it: the RDMA breakage of September 2020, at its simplest.
"""

POLICY_NAME = "py-copy-on-wp"


def policykit_fork_pte(ctx):
    return "share"


def policykit_wp_fault(ctx):
    return "copy"


def policykit_unshare_fault(ctx):
    return "copy"


def policykit_gup(ctx):
    # after a FOLL_FORCE COW fault the PTE stays read-only: FOLL_COW and dirty will do
    if ctx.foll.write and not ctx.pte.writable and not (ctx.foll.cow and ctx.pte.dirty):
        return "write_fault"
    return "grab"


def policykit_mprotect_pte(ctx):
    return "keep"


def policykit_clear_refs_pte(ctx):
    return "wrprotect"
