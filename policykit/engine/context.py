"""Read-only views of engine state handed to decision hooks.

A view exposes the model fields a kernel function would read, plus declared
attributes (policy flags, plugin attributes) with their defaults.  Views are tuples
underneath, so they are cheap to make and cannot be assigned to: a policy changes
state only through the effects of its decision.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Iterable
from operator import attrgetter, itemgetter
from typing import Any

from ..errors import did_you_mean
from .model import Machine, Mm, Page, Pte, Vma
from .reads import (a_compound, a_foreign_refs, a_folio_mapcount, a_folio_mapped_shared, a_pincount, a_refcount,
                    a_softdirty, a_write_refs)
from .specs import OWNERS, Registry


def _field(name: str) -> property:
    get = attrgetter(name)
    return property(lambda self: get(self[0]), doc=f"the model's ``{name}``")


#: how compiled policies name their flag X (``f_X``): no view member, engine field or
#: plugin attribute starts so (the registry refuses such attribute names), and a flag
#: named like a Python keyword stays a valid attribute name
FLAG_PREFIX = "f_"


class _View(tuple):
    """``(object, defaults, machine)``: model fields as properties, declared attributes
    through ``__getattr__``."""

    __slots__ = ()
    _kind = ""

    def __getattr__(self, name: str) -> Any:
        attrs = self[0].attrs
        if attrs and name in attrs:
            return attrs[name]
        return self._default(name)

    def _default(self, name: str) -> Any:
        defaults = self[1]
        try:
            return defaults[name]
        except KeyError:
            known = sorted({n for n in dir(type(self)) if isinstance(getattr(type(self), n), property)}
                           | {n for n in defaults if not n.startswith(FLAG_PREFIX)})
            hint = did_you_mean(name, known)
            raise AttributeError(
                f"{self._kind} has no attribute {name!r}" + (f"; {hint}" if hint else "")
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._kind} is read-only in a decision context")

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in sorted(dir(type(self)))
                           if isinstance(getattr(type(self), n, None), property))
        return f"<{self._kind} {fields}>"


class _FlaggedView(_View):
    """A view of an object that also holds policy flags (a page, an mm): ``f_X`` reads
    flag X only (compiled policies); a bare name reads a plugin attribute, else a flag
    (Python policies, whose flags never share a name with an attribute)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        obj = self[0]
        if name[:2] == FLAG_PREFIX:
            flags = obj.flags
            key = name[2:]
            if flags and key in flags:
                return flags[key]
        else:
            attrs = obj.attrs
            if attrs and name in attrs:
                return attrs[name]
            flags = obj.flags
            if flags and name in flags:
                return flags[name]
        return self._default(name)


class PageView(_FlaggedView):
    __slots__ = ()
    _kind = "page"
    pfn = _field("pfn")
    mapcount = _field("mapcount")

    @property
    def refcount(self) -> int:
        """``page_count()``: the folio's reference count for a page of a large folio."""
        return a_refcount(self[0], self[2])

    @property
    def compound(self) -> bool:
        """The page belongs to a large folio (a THP)."""
        return a_compound(self[0])

    @property
    def write_refs(self) -> int:
        """GUP references taken with FOLL_WRITE that hold this page (engine-private)."""
        return a_write_refs(self[0], self[2])

    @property
    def foreign_refs(self) -> int:
        """GUP references held by processes other than the deciding mm's (engine-private)."""
        return a_foreign_refs(self[0], self[2], self[3] if len(self) > 3 else None)

    @property
    def folio_mapcount(self) -> int:
        """``folio_large_mapcount()``: the mappings of every page of the page's large
        folio (the page's own for a small page)."""
        return a_folio_mapcount(self[0])

    @property
    def folio_mapped_shared(self) -> bool:
        """``folio_maybe_mapped_shared()``: the page's large folio may be mapped by more
        than one mm -- as 6.15's two mm slots see it, so still true after a third mm
        that mapped it went (for a small page: more than one mapping)."""
        return a_folio_mapped_shared(self[0])

    @property
    def pincount(self) -> int:
        """Exact pins of the page's large folio (``folio_maybe_dma_pinned``'s exact branch)."""
        return a_pincount(self[0], self[2])
    anon = _field("anon")
    zero = _field("zero")
    pins = _field("pins")
    gets = _field("gets")


class PteView(_View):
    __slots__ = ()
    _kind = "pte"
    present = _field("present")
    writable = _field("writable")
    dirty = _field("dirty")

    @property
    def softdirty(self) -> bool:
        """``pte_soft_dirty()``: not since clear_refs cleared it without a write fault
        marking it again (see ``Mm.clean``); always true without soft-dirty tracking."""
        return a_softdirty(self[3], self[4])


class VmaView(_View):
    __slots__ = ()
    _kind = "vma"
    shared = _field("shared")
    write = _field("write")
    may_write = _field("may_write")
    dontcopy = _field("dontcopy")
    wipeonfork = _field("wipeonfork")
    softdirty = _field("softdirty")
    is_cow_mapping = _field("is_cow_mapping")


class MmView(_FlaggedView):
    __slots__ = ()
    _kind = "mm"
    has_pinned = _field("has_pinned")


class FollFlags:
    """The GUP flags of one call: ``FOLL_GET`` or ``FOLL_PIN``, ``FOLL_WRITE``, ....
    ``cow`` is FOLL_COW: this GUP already took a write fault on a VMA without VM_WRITE.

    ``probe``: None, or a set (shared by the call's copies) that collects the names of
    the flags explore asks about when they are consulted: ``longterm`` and ``force``
    when read, ``zap_race`` when GUP takes a fault (where that race would open), or
    ``zap_race_same`` for a fault after which the race would change nothing but a page's
    number (:meth:`.mm.Engine._refault_same`).  A call that consulted none of them would
    have gone the same way with them set (see
    :func:`policykit.explore.search.transitions`)."""

    __slots__ = ("pin", "get", "write", "_longterm", "_force", "fast", "cow", "probe")

    def __init__(self, pin: bool, write: bool = False, longterm: bool = False,
                 force: bool = False, fast: bool = False) -> None:
        self.pin = pin
        self.get = not pin
        self.write = write
        self._longterm = longterm
        self._force = force
        self.fast = fast
        self.cow = False
        self.probe: set[str] | None = None

    @property
    def longterm(self) -> bool:
        """FOLL_LONGTERM."""
        if self.probe is not None:
            self.probe.add("longterm")
        return self._longterm

    @property
    def force(self) -> bool:
        """FOLL_FORCE."""
        if self.probe is not None:
            self.probe.add("force")
        return self._force

    def copy(self) -> FollFlags:
        new = FollFlags(self.pin, self.write, self._longterm, self._force, self.fast)
        new.cow = self.cow
        new.probe = self.probe
        return new

    def flipped(self, names: Iterable[str]) -> FollFlags:
        """A copy, unprobed, with the probed flags ``names`` (``longterm``, ``force``)
        the other way."""
        new = self.copy()
        new.probe = None
        for name in names:
            slot = "_" + name
            setattr(new, slot, not getattr(new, slot))
        return new

    def __repr__(self) -> str:
        names = [n for n in ("pin", "get", "write", "_longterm", "_force", "fast", "cow") if getattr(self, n)]
        return "FOLL_" + "|FOLL_".join(n.strip("_").upper() for n in names)


def _view(at: int, owner: str, *more: int) -> property:
    """The property of :class:`Context` that makes ``owner``'s view of the object at
    ``at`` when read (None when the point gives none): (object, the owner's defaults,
    the machine) and the context's items at ``more``."""
    if more == (4,):
        def get(self: Context) -> Any:
            obj = self[at]
            if obj is None:
                return None
            views = self[6]
            return _new(getattr(views, owner), (obj, views.defaults[owner], self[7], self[4]))
    elif more == (4, 8):
        def get(self: Context) -> Any:
            obj = self[at]
            if obj is None:
                return None
            views = self[6]
            return _new(getattr(views, owner), (obj, views.defaults[owner], self[7], self[4], self[8]))
    else:
        def get(self: Context) -> Any:
            obj = self[at]
            if obj is None:
                return None
            views = self[6]
            return _new(getattr(views, owner), (obj, views.defaults[owner], self[7]))
    return property(get, doc=f"the view of the {owner} (None when the point gives none)")


class Context(tuple):
    """What a decision hook receives: ``point`` (the decision point's name) and, where
    the point provides them, views ``page``, ``pte``, ``vma``, ``mm`` and the GUP flags
    ``foll``; absent ones are None.  A view is made when it is read (a rule reads one or
    two of them), so read it once into a local where it is read often."""

    __slots__ = ()
    # (point, page, pte, vma, mm, foll, views, machine, vpn): the engine's objects
    point = property(itemgetter(0))
    foll = property(itemgetter(5))

    page = _view(1, "page", 4)          # a page's view knows the deciding mm (foreign_refs)
    pte = _view(2, "pte", 4, 8)         # a PTE's, the mm and the page number (softdirty)
    vma = _view(3, "vma")
    mm = _view(4, "mm")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a decision context is read-only")

    def __repr__(self) -> str:
        return f"<Context {self.point} page={self.page!r} pte={self.pte!r}>"


#: each owner's view class (``foll`` is the :class:`FollFlags` itself)
VIEWS: dict[str, type] = {"page": PageView, "pte": PteView, "vma": VmaView, "mm": MmView, "foll": FollFlags}
_MODELS: dict[str, type] = {"page": Page, "pte": Pte, "vma": Vma, "mm": Mm}


def name_problem(owner: str, name: str, flag: bool) -> str | None:
    """Why ``name`` cannot be an attribute (or, ``flag``, a policy flag) of ``owner``,
    or None.  A plugin attribute is read by name in compiled code, so it is no Python
    keyword; a flag is read as ``f_NAME``, so it may be one.  Neither starts with '_' or
    'f_', nor shadows what the engine itself names (:func:`engine_fields`)."""
    if not name.isidentifier() or name.startswith("_"):
        return "a name is a letter then letters, digits and '_'"
    if name.startswith(FLAG_PREFIX):
        return f"names starting with {FLAG_PREFIX!r} are how compiled policies read their flags"
    if not flag and keyword.iskeyword(name):
        return "a Python keyword cannot be read as an attribute"
    if name in engine_fields(owner):
        return f"the engine uses {name!r} for its own state"
    return None


@functools.cache
def engine_fields(owner: str) -> frozenset[str]:
    """Names the engine itself gives an owner's objects and views (``pfn``, ``folio``,
    ``count``...): no plugin attribute or policy flag may take one."""
    names = set(dir(VIEWS[owner])) | set(dir(_MODELS.get(owner, object)))
    return frozenset(n for n in names if not n.startswith("_"))


def attribute_defaults(registry: Registry) -> dict[str, dict[str, Any]]:
    """Owner -> each declared attribute's default, as views look them up (a flag X is
    also there as ``f_X``, compiled policies' name for it)."""
    return {owner: {name: a.default for a in registry.attributes_of(owner).values()
                    for name in ((a.name, FLAG_PREFIX + a.name) if a.flag else (a.name,))}
            for owner in OWNERS}


_new = tuple.__new__


def _flag(name: str, default: Any) -> property:
    def get(self: _View) -> Any:
        flags = self[0].flags
        return flags.get(name, default) if flags else default
    return property(get, doc=f"the policy flag ``{name}``")


def _attr(name: str, default: Any) -> property:
    def get(self: _View) -> Any:
        attrs = self[0].attrs
        return attrs.get(name, default) if attrs else default
    return property(get, doc=f"the attribute ``{name}``")


def _attr_or_flag(name: str, default: Any) -> property:
    def get(self: _View) -> Any:
        obj = self[0]
        attrs = obj.attrs
        if attrs and name in attrs:
            return attrs[name]
        flags = obj.flags
        return flags.get(name, default) if flags else default
    return property(get, doc=f"the attribute or policy flag ``{name}``")


class Views:
    """The view classes of one registry's contexts: each owner's view with a property
    for every declared attribute and flag, read as cheaply as an engine field (rules read
    them at every decision; the base views find them through ``__getattr__``, after a
    failed lookup).  Undeclared names still reach ``__getattr__`` and its hint."""

    __slots__ = ("defaults", "page", "pte", "vma", "mm", "_raw")

    def __init__(self, defaults: dict[str, dict[str, Any]], properties: bool = True) -> None:
        self.defaults = defaults
        self._raw: dict[Callable[..., Any], tuple[Callable[..., Any], ...]] = {}
        for owner in ("page", "pte", "vma", "mm"):
            base = VIEWS[owner]
            if not properties:                  # the base views, for a context made once
                setattr(self, owner, base)
                continue
            flagged = issubclass(base, _FlaggedView)
            members: dict[str, Any] = {"__slots__": ()}
            for name, default in defaults[owner].items():
                if hasattr(base, name) or not name.isidentifier():
                    continue
                if flagged and name.startswith(FLAG_PREFIX):
                    members[name] = _flag(name[len(FLAG_PREFIX):], default)
                else:
                    members[name] = (_attr_or_flag if flagged else _attr)(name, default)
            setattr(self, owner, type(base.__name__, (base,), members))

    def direct(self, rules: Callable[..., Any], takes: tuple[str, ...]) -> Callable[..., Any]:
        """A caller of a compiled policy's ``rules`` (see :func:`policykit.dsl.compile.
        compile_policy`) that makes the views it takes straight from the engine's objects,
        as a :class:`Context` would when read: ``call(page, pte, vma, mm, foll, machine,
        vpn)``.  No context, no property lookup: a decision costs a third less."""
        if any(t not in _MAKE for t in takes) or len(set(takes)) != len(takes):
            raise ValueError(f"a compiled policy's rules take context objects, not {takes!r}")
        args = ", ".join(_MAKE[t] for t in takes)
        scope = {"rules": rules, "new": _new, "VP": self.page, "VT": self.pte, "VV": self.vma, "VM": self.mm,
                 "DP": self.defaults["page"], "DT": self.defaults["pte"], "DV": self.defaults["vma"],
                 "DM": self.defaults["mm"]}
        # from the fixed texts of _MAKE only: nothing a policy wrote
        exec(f"def call(page, pte, vma, mm, foll, machine, vpn):\n    return rules({args})", scope)  # noqa: S102
        return scope["call"]  # type: ignore[no-any-return]

    def raw(self, rules: Callable[..., tuple[Callable[..., Any], ...]], index: int) -> Callable[..., Any]:
        """A compiled policy's rules at one point that read the engine's objects
        themselves, no view made (see :mod:`.reads`): ``rules(DP, DT, DV, DM)`` makes
        them all, each owner's attribute defaults at hand, and ``index`` picks one.
        Called as :meth:`direct`'s caller is, without a view made or a property read."""
        made = self._raw.get(rules)
        if made is None:
            d = self.defaults
            made = self._raw[rules] = rules(d["page"], d["pte"], d["vma"], d["mm"])
        return made[index]

    def context(self, point: str, page: Page | None, pte: Pte | None, vma: Vma | None, mm: Mm | None,
                foll: FollFlags | None = None, machine: Machine | None = None,
                vpn: int | None = None) -> Context:
        """:func:`make_context` with these views."""
        return _new(Context, (point, page, pte, vma, mm, foll, self, machine, vpn))


#: how :meth:`Views.direct` makes each context object's view (as the properties of
#: :class:`Context` do)
_MAKE = {
    "page": "None if page is None else new(VP, (page, DP, machine, mm))",
    "pte": "None if pte is None else new(VT, (pte, DT, machine, mm, vpn))",
    "vma": "None if vma is None else new(VV, (vma, DV, machine))",
    "mm": "None if mm is None else new(VM, (mm, DM, machine))",
    "foll": "foll",
}


def make_context(point: str, defaults: dict[str, dict[str, Any]], page: Page | None,
                 pte: Pte | None, vma: Vma | None, mm: Mm | None,
                 foll: FollFlags | None = None, machine: Machine | None = None,
                 vpn: int | None = None) -> Context:
    """A decision context on the base views (an engine makes its own with :class:`Views`)."""
    return Views(defaults, properties=False).context(point, page, pte, vma, mm, foll, machine, vpn)
