"""What plugins declare to the engine: attributes, decision points, operations, metrics,
violation classes; and the :class:`Decision` a decision hook returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from .mm import Engine, Outcome

#: the objects a context attribute can live on
OWNERS = ("page", "pte", "vma", "mm", "foll")


@final
@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """An attribute readable by policies as ``<owner>.<name>``.

    ``flag=True`` marks policy-owned state that decisions may set or clear (e.g.
    ``page.anon_exclusive``); ``oracle_only=True`` marks engine-private truth that only
    policies declaring themselves unrealizable may read.
    """

    owner: str
    name: str
    type: type
    default: Any = None
    doc: str = ""
    flag: bool = False
    oracle_only: bool = False
    provider: str = "policykit"


@final
@dataclass(frozen=True, slots=True)
class DecisionPointSpec:
    """A place where the engine asks the policy.  The hook is ``policykit_<name>``.

    :param actions: legal return actions, in the order documentation lists them.
    :param context: owner names available in the context (``page``, ``pte``, ...).
    :param default: the action when no policy answers (None: not answering is an error).
    """

    name: str
    actions: tuple[str, ...]
    context: tuple[str, ...]
    doc: str = ""
    provider: str = "policykit"
    #: the action taken when no policy answers: what the kernel did before anyone had a
    #: choice there.  Plugins adding a point give one, so that policies written before
    #: the plugin keep working; of the engine's own points only ``gup_cow_retry`` has one.
    default: str | None = None
    #: actions no kernel could take (they need knowledge or a mechanism it lacks): only
    #: a policy that declares itself ``unrealizable`` may answer with them
    unrealizable_actions: tuple[str, ...] = ()

    @property
    def hook_name(self) -> str:
        return f"policykit_{self.name}"


@final
@dataclass(frozen=True, slots=True)
class Param:
    """One positional parameter of a scenario operation.

    ``kind`` is one of ``process``, ``region`` (a region of the preceding process, with an
    optional ``[i]`` or ``[i:j]`` slice), ``ref`` (with an optional slice), ``int``,
    ``int`` (``default`` when absent, if it has one), ``word`` (one of ``choices``, or
    ``default`` when absent), ``flags`` (any subset of
    ``choices``) or ``name`` (any name, e.g. a file's).  An operation whose ``result`` is a
    region takes an ``int`` parameter ``pages`` (and may take ``sharing`` and ``prot``
    words as ``mmap`` does), so scenarios are checked as for ``mmap``.
    """

    name: str
    kind: str
    choices: tuple[str, ...] = ()
    default: Any = None
    doc: str = ""
    #: the values ``policykit explore`` tries (for ``flags``: a tuple of flag tuples);
    #: empty: every choice of a word, every subset of flags, the default (or 1) of an
    #: int, ``f`` for a name.  Processes, regions and references come from the state.
    explore: tuple[Any, ...] = ()
    #: flags that only reach the policy (as ``foll.NAME``), no mechanism: explore does
    #: not try them for policies that never mention them
    informs: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class OperationSpec:
    """A scenario operation ``name ARG... [-> RESULT]``.

    ``apply(engine, args)`` carries it out on resolved arguments (pids, vpn lists, reference
    ids) and returns an :class:`~policykit.engine.mm.Outcome`.  ``result`` says what the
    ``-> NAME`` after the arguments binds: ``process``, ``ref``, or None for no result.
    ``makes="file"``: each step makes a file of ``pages`` pages, counted against the
    scenario limits (:mod:`policykit.limits`) before anything runs.
    """

    name: str
    params: tuple[Param, ...]
    apply: Callable[[Engine, dict[str, Any]], Outcome]
    doc: str = ""
    result: str | None = None
    provider: str = "policykit"
    makes: str | None = None


def size_pages(label: str) -> int:
    """Pages of 4 KiB in a size label (``16k``, ``2m``, ``1g``); ValueError if it is none."""
    unit = {"k": 1, "m": 1024, "g": 1024 * 1024}.get(label[-1:].lower())
    if unit is None or not label[:-1].isdigit() or int(label[:-1]) * unit % 4:
        raise ValueError(f"{label!r} is not a size in KiB, MiB or GiB (16k, 2m, 1g) of whole pages")
    return int(label[:-1]) * unit // 4


@final
@dataclass(frozen=True, slots=True)
class VariantSpec:
    """A kind of memory a scenario can be run on, as cow.c runs each test on a base page,
    a swapped-out page, a THP...

    A scenario that lists ``variants`` and maps its memory with ``mmap_variant P -> R``
    is run once per variant, ``mmap_variant`` replaced by ``steps``: scenario lines in
    which ``{process}`` and ``{region}`` stand for ``P`` and ``R``.  They must leave
    ``{region}`` naming the memory under test (a region, or an ``alias`` of part of one),
    filled with data.  ``tags`` join the scenario's tags.

    A variant with ``sizes`` (labels such as ``16k``, ``2m``: a folio size) runs at the
    size a scenario names (``variants pte-mapped-thp:64k``), at each (``:*``), or at
    ``sizes[-1]`` when it names none; its steps may use ``{nr}`` (pages of the size),
    ``{half}`` (half of them) and ``{size}`` (the label).
    """

    name: str
    title: str
    steps: str
    tags: frozenset[str] = frozenset()
    provider: str = "policykit"
    sizes: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A per-run counter.  ``unit`` is ``pages``, ``bytes``, ``faults`` or ``count``."""

    name: str
    doc: str = ""
    unit: str = "count"
    provider: str = "policykit"


@final
@dataclass(frozen=True, slots=True)
class ViolationClassSpec:
    """A class of violation the oracle (or an oracle plugin) can report."""

    name: str
    doc: str = ""
    provider: str = "policykit"


@final
@dataclass(frozen=True, slots=True)
class Effect:
    """Set policy flag ``name`` on ``target`` (``page`` or ``mm``) to ``value``."""

    target: str
    name: str
    value: Any


@final
@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision hook returns: an action, the effects on policy flags, an optional
    warning (counted in reports) and the rule that fired (``file:line``), for explanations.

    A hook may also return a bare action string.
    """

    action: str
    effects: tuple[Effect, ...] = ()
    warn: str | None = None
    rule: str | None = None


@dataclass
class Registry:
    """Everything the installed plugins declared, indexed by name."""

    attributes: dict[tuple[str, str], AttributeSpec] = field(default_factory=dict)
    decision_points: dict[str, DecisionPointSpec] = field(default_factory=dict)
    operations: dict[str, OperationSpec] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    violation_classes: dict[str, ViolationClassSpec] = field(default_factory=dict)
    variants: dict[str, VariantSpec] = field(default_factory=dict)

    def attributes_of(self, owner: str) -> dict[str, AttributeSpec]:
        return {n: a for (o, n), a in self.attributes.items() if o == owner}

    def scenario_stamp(self) -> str:
        """What checking a scenario reads of the registry -- operations and their
        parameters, variants, metrics, violation classes -- as text: equal stamps check
        a scenario alike (the key of :mod:`policykit.scenario.cache`)."""
        ops = sorted((o.name, o.params, o.result, o.makes) for o in self.operations.values())
        return repr((ops, sorted(self.variants.items()), sorted(self.metrics), sorted(self.violation_classes)))

    def policy_stamp(self) -> str:
        """What checking and compiling a policy read of the registry -- attributes and
        decision points -- as text (the key of :mod:`policykit.dsl.cache`)."""
        return repr((sorted(map(repr, self.attributes.values())), sorted(map(repr, self.decision_points.values()))))
