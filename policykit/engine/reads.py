"""What a decision reads of the engine's objects, field by field.

The views of :mod:`.context` read a page's ``refcount``, a PTE's ``softdirty``... with
the functions here, and a compiled policy's rules read them the same way straight from
the engine's objects, without a view (:data:`RAW_READS`; see
:mod:`policykit.dsl.compile`): one definition of each field for both.  ``machine``,
``mm`` and ``vpn`` are those of the decision (the deciding process's mm, the page
number it decides about), as a view holds them.
"""

from __future__ import annotations

from typing import Any

from .folio import folio_pincount, folio_ref_count
from .model import Machine, Mm, Page


def a_refcount(page: Page, machine: Machine) -> int:
    """``page_count()``: the folio's reference count for a page of a large folio."""
    return page.refcount if "folio" not in page.attrs else folio_ref_count(machine, page)


def a_compound(page: Page) -> bool:
    """The page belongs to a large folio (a THP)."""
    return "folio" in page.attrs


def a_write_refs(page: Page, machine: Machine) -> int:
    """GUP references taken with FOLL_WRITE that hold the page (engine-private)."""
    refs = machine.refs
    if not refs:                            # the common case, asked page after page
        return 0
    pfn = page.pfn
    return sum(1 for r in refs.values() if r.write and pfn in r.pfns)


def a_foreign_refs(page: Page, machine: Machine, mm: Mm | None) -> int:
    """GUP references held by processes other than ``mm``'s (engine-private)."""
    if not machine.refs:
        return 0
    pfn, procs = page.pfn, machine.processes
    return sum(r.count for r in machine.refs.values() if pfn in r.pfns and procs[r.owner].mm is not mm)


def a_folio_mapcount(page: Page) -> int:
    """``folio_large_mapcount()``: the mappings of every page of the page's large folio
    (the page's own for a small page)."""
    return page.mapcount if page.folio is None else page.folio.maps


def a_folio_mapped_shared(page: Page) -> bool:
    """``folio_maybe_mapped_shared()``: the page's large folio may be mapped by more than
    one mm -- as 6.15's two mm slots see it, so still true after a third mm that mapped
    it went (for a small page: more than one mapping)."""
    folio = page.folio
    return page.mapcount > 1 if folio is None else folio.shared


def a_pincount(page: Page, machine: Machine) -> int:
    """Exact pins of the page's large folio (``folio_maybe_dma_pinned``'s exact branch)."""
    return folio_pincount(machine, page)


def a_softdirty(mm: Mm | None, vpn: int | None) -> bool:
    """``pte_soft_dirty()`` of the PTE at ``vpn``: not since clear_refs cleared it without
    a write fault marking it again (see ``Mm.clean``); always true without soft-dirty
    tracking."""
    return mm is None or vpn is None or vpn not in mm.clean


def a_attr(obj: Any, name: str, defaults: dict[str, Any]) -> Any:
    """A plugin attribute of a PTE or a VMA: its value, else its declared default."""
    attrs = obj.attrs
    return attrs[name] if attrs and name in attrs else defaults[name]


def a_attr_or_flag(obj: Any, name: str, defaults: dict[str, Any]) -> Any:
    """A plugin attribute of a page or an mm, else a flag of that name (a Python policy
    reads its flags so), else the declared default."""
    attrs = obj.attrs
    if attrs and name in attrs:
        return attrs[name]
    flags = obj.flags
    return flags[name] if flags and name in flags else defaults[name]


#: the functions compiled rules may call to read a field (by these names)
HELPERS = {f.__name__: f for f in (a_refcount, a_compound, a_write_refs, a_foreign_refs, a_folio_mapcount,
                                   a_folio_mapped_shared, a_pincount, a_softdirty, a_attr, a_attr_or_flag)}

#: owner -> each engine field a view shows -> how compiled rules read it from the
#: object ``{o}`` itself (and the decision's ``machine``, ``mm``, ``vpn``).  Plain
#: attribute reads are of the model's own public fields; a test holds this table to the
#: views' properties, field for field.
RAW_READS: dict[str, dict[str, str]] = {
    "page": {
        "pfn": "{o}.pfn", "mapcount": "{o}.mapcount", "anon": "{o}.anon", "zero": "{o}.zero",
        "pins": "{o}.pins", "gets": "{o}.gets",
        "refcount": "a_refcount({o}, machine)", "compound": "a_compound({o})",
        "write_refs": "a_write_refs({o}, machine)", "foreign_refs": "a_foreign_refs({o}, machine, mm)",
        "folio_mapcount": "a_folio_mapcount({o})", "folio_mapped_shared": "a_folio_mapped_shared({o})",
        "pincount": "a_pincount({o}, machine)",
    },
    "pte": {"present": "{o}.present", "writable": "{o}.writable", "dirty": "{o}.dirty",
            "softdirty": "a_softdirty(mm, vpn)"},
    "vma": {name: "{o}." + name for name in ("shared", "write", "may_write", "dontcopy", "wipeonfork",
                                              "softdirty", "is_cow_mapping")},
    "mm": {"has_pinned": "{o}.has_pinned"},
    "foll": {name: "{o}." + name for name in ("pin", "get", "write", "longterm", "force", "fast", "cow")},
}

#: owner -> the fields compiled rules read as plain attributes of the object
PLAIN_FIELDS: dict[str, frozenset[str]] = {
    owner: frozenset(name for name, how in reads.items() if how == "{o}." + name) for owner, reads in RAW_READS.items()}
