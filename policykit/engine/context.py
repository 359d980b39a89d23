"""Read-only views of engine state handed to decision hooks.

A view exposes the model fields a kernel function would read, plus declared
attributes (policy flags, plugin attributes) with their defaults.  Views refuse
assignment: a policy changes state only through the effects of its decision.
"""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from .model import Mm, Page, Pte, Vma


class _View:
    __slots__ = ("_obj", "_defaults")
    _fields: frozenset[str] = frozenset()
    _kind = ""

    def __init__(self, obj: Any, defaults: dict[str, Any]) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_defaults", defaults)

    def __getattr__(self, name: str) -> Any:
        if name in self._fields:
            return getattr(self._obj, name)
        attrs = self._obj.attrs
        if attrs and name in attrs:
            return attrs[name]
        try:
            return self._defaults[name]
        except KeyError:
            known = sorted(self._fields | set(self._defaults))
            hint = did_you_mean(name, known)
            raise AttributeError(
                f"{self._kind} has no attribute {name!r}" + (f"; {hint}" if hint else "")
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._kind} is read-only in a decision context")

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self._obj, f)!r}" for f in sorted(self._fields))
        return f"<{self._kind} {fields}>"


class PageView(_View):
    __slots__ = ()
    _kind = "page"
    _fields = frozenset({"pfn", "refcount", "mapcount", "anon", "zero", "pins", "gets"})

    # The hot attributes are properties: one function call, no dict lookup.
    @property
    def refcount(self) -> int:
        return self._obj.refcount

    @property
    def mapcount(self) -> int:
        return self._obj.mapcount

    @property
    def anon(self) -> bool:
        return self._obj.anon

    @property
    def zero(self) -> bool:
        return self._obj.zero


class PteView(_View):
    __slots__ = ()
    _kind = "pte"
    _fields = frozenset({"present", "writable", "dirty"})

    @property
    def writable(self) -> bool:
        return self._obj.writable


class VmaView(_View):
    __slots__ = ()
    _kind = "vma"
    _fields = frozenset({"shared", "write", "may_write", "dontcopy", "wipeonfork",
                         "softdirty", "is_cow_mapping"})

    @property
    def is_cow_mapping(self) -> bool:
        return self._obj.is_cow_mapping


class MmView(_View):
    __slots__ = ()
    _kind = "mm"
    _fields = frozenset({"has_pinned"})

    @property
    def has_pinned(self) -> bool:
        return self._obj.has_pinned


class FollFlags:
    """The GUP flags of one call: ``FOLL_GET`` or ``FOLL_PIN``, ``FOLL_WRITE``, ...."""

    __slots__ = ("pin", "get", "write", "longterm", "force", "fast")

    def __init__(self, pin: bool, write: bool = False, longterm: bool = False,
                 force: bool = False, fast: bool = False) -> None:
        self.pin = pin
        self.get = not pin
        self.write = write
        self.longterm = longterm
        self.force = force
        self.fast = fast

    def __repr__(self) -> str:
        names = [n for n in ("pin", "get", "write", "longterm", "force", "fast") if getattr(self, n)]
        return "FOLL_" + "|FOLL_".join(n.upper() for n in names)


class Context:
    """What a decision hook receives: the decision point's name and views of the state.

    Attributes are ``point`` and, where the point provides them, ``page``, ``pte``,
    ``vma``, ``mm`` and ``foll``; absent ones are None.
    """

    __slots__ = ("point", "page", "pte", "vma", "mm", "foll")

    def __init__(self, point: str, page: PageView | None, pte: PteView | None,
                 vma: VmaView | None, mm: MmView | None, foll: FollFlags | None = None) -> None:
        self.point = point
        self.page = page
        self.pte = pte
        self.vma = vma
        self.mm = mm
        self.foll = foll

    def __repr__(self) -> str:
        return f"<Context {self.point} page={self.page!r} pte={self.pte!r}>"


def make_context(point: str, defaults: dict[str, dict[str, Any]], page: Page | None,
                 pte: Pte | None, vma: Vma | None, mm: Mm | None,
                 foll: FollFlags | None = None) -> Context:
    return Context(
        point,
        PageView(page, defaults["page"]) if page is not None else None,
        PteView(pte, defaults["pte"]) if pte is not None else None,
        VmaView(vma, defaults["vma"]) if vma is not None else None,
        MmView(mm, defaults["mm"]) if mm is not None else None,
        foll,
    )
