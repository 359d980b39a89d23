"""anon-exclusive: the PageAnonExclusive rules of Linux 5.19 and later, by hand in Python.

Sources: "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive"
(6c287605fd56), "mm/gup: trigger FAULT_FLAG_UNSHARE when R/O-pinning a possibly
shared anonymous page" (a7f226604170), "mm/gup: reliable R/O long-term pinning in COW
mappings" (84209e87c696, 6.2).  Also the example of a hand-written policy plugin.
"""

from policykit import AttributeSpec, Decision, Effect, hookimpl

POLICY_NAME = "py-anon-exclusive"
GUP_PIN_COUNTING_BIAS = 1024

_SET_EXCLUSIVE = (Effect("page", "anon_exclusive", True),)
_CLEAR_EXCLUSIVE = (Effect("page", "anon_exclusive", False),)


@hookimpl
def policykit_add_attributes():
    return [AttributeSpec("page", "anon_exclusive", bool, True,
                          "PageAnonExclusive: mapped by this mm only, may be pinned; "
                          "set on every new anonymous page", flag=True)]


def page_maybe_dma_pinned(page):
    return page.refcount >= GUP_PIN_COUNTING_BIAS


def page_needs_cow_for_dma(mm, page):
    return mm.has_pinned and page_maybe_dma_pinned(page)


def wp_can_reuse_anon_folio(page):
    return page.refcount == 1


@hookimpl
def policykit_fork_pte(ctx):
    # page_try_dup_anon_rmap() fails for an exclusive, maybe pinned page: copy it (a page
    # cache page is shared whatever its pins).
    if ctx.page.anon and ctx.page.anon_exclusive and page_needs_cow_for_dma(ctx.mm, ctx.page):
        return "copy"
    return Decision("share", _CLEAR_EXCLUSIVE)


@hookimpl
def policykit_wp_fault(ctx):
    if ctx.page.anon_exclusive:
        return "reuse"
    if wp_can_reuse_anon_folio(ctx.page):
        return Decision("reuse", _SET_EXCLUSIVE)
    return "copy"


@hookimpl
def policykit_unshare_fault(ctx):
    return policykit_wp_fault(ctx)


@hookimpl
def policykit_gup(ctx):
    foll, pte, page = ctx.foll, ctx.pte, ctx.page
    if foll.write and not pte.writable:
        # can_follow_write_pte() (6.0): FOLL_FORCE may write through a R/O PTE of a
        # private VMA without VM_WRITE only into an exclusive anonymous page.
        if foll.force and not ctx.vma.write and ctx.vma.is_cow_mapping \
                and page.anon and not page.zero and page.anon_exclusive:
            return "grab"
        return "write_fault"
    # gup_must_unshare(): only R/O pins; anon pages that are not exclusive, and (6.2)
    # anything else in a COW mapping when the pin is long-term.
    if foll.pin and not foll.write and not pte.writable:
        if page.anon and not page.zero:
            if not page.anon_exclusive:
                return "unshare_fault"
        elif foll.longterm and ctx.vma.is_cow_mapping:
            return "unshare_fault"
    return "grab"


@hookimpl
def policykit_mprotect_pte(ctx):
    # can_change_pte_writable(): exclusive anon pages, unless soft-dirty tracking wants faults.
    if ctx.page.anon_exclusive and ctx.vma.softdirty:
        return "make_writable"
    return "keep"


@hookimpl
def policykit_clear_refs_pte(ctx):
    if page_needs_cow_for_dma(ctx.mm, ctx.page):
        return "skip"
    return "wrprotect"
