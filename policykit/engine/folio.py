"""Large folios: a head page and its tail pages, as ``page_folio()`` sees them.

A large folio is ``nr`` pages with consecutive pfns (made by :meth:`Engine.alloc_folio`);
each page carries ``attrs["folio"] = head pfn`` and ``attrs["folio_nr"] = nr``, and a
shared :class:`~policykit.engine.model.Folio` that sums their reference counts.  Each page
keeps its own content and its own PTE mappings.  A PMD mapping of the folio is stored as
``nr`` PTEs (each flagged ``pmd``), one per page, and counted on the head as
``attrs["entire_mapcount"]``: so a page's ``mapcount`` is what ``page_mapcount()`` says
(its PTE mappings plus the PMD mappings), and :func:`folio_ref_count` what
``page_count()`` says for any page of the folio: one reference per PTE mapping of any
page, one per PMD mapping, one per pin (large folios count pins exactly, in
``pincount``), one per FOLL_GET, and the rest.
"""

from __future__ import annotations

from .model import GUP_PIN_COUNTING_BIAS, Machine, Page


def note_pins(page: Page, delta: int) -> None:
    """Keep the folio's pin count (``Folio.pins``) as GUP pins or unpins one of its pages,
    so that ``pincount`` is cheap."""
    if page.folio is not None:
        page.folio.pins += delta


def folio_ref_count(machine: Machine, page: Page) -> int:
    """``folio_ref_count(page_folio(page))``.

    The pages' own counts hold one reference per PTE of a PMD mapping and
    GUP_PIN_COUNTING_BIAS per pin; a folio counts one per PMD mapping and one per pin.
    While a PMD maps the folio, every page of it is alive.
    """
    folio = page.folio
    if folio is None:
        return page.refcount
    head = machine.pages.get(folio.head)
    pmd = head.attrs.get("entire_mapcount", 0) if head is not None else 0   # a PMD maps the head
    pins = folio_pincount(machine, page)
    return folio.refs - (folio.nr - 1) * pmd - (GUP_PIN_COUNTING_BIAS - 1) * pins


def folio_pincount(machine: Machine, page: Page) -> int:
    """``folio->_pincount``: exact pins of a large folio; 0 for a small page."""
    folio = page.folio
    return 0 if folio is None else folio.pins
