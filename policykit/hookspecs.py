"""The hook contract between the mm engine, policies and plugins.

Every hook is named ``policykit_*``.  Four families:

* **registration** hooks, called once when a run is set up, through which plugins add
  attributes, decision points, operations, metrics and violation classes;
* **decision** hooks (``firstresult``), one per decision point, answered by the policy;
* **mechanism** hooks, through which plugins handle state the core does not know:
  non-present PTEs, VMAs of their own, references they hold;
* **observer** hooks, where every implementation is called: engine events, oracle checks,
  the end of a run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .engine.context import Context
    from .engine.mm import Engine, Event, Outcome
    from .engine.model import Machine, Mm, Page, Process, Pte, Vma
    from .engine.specs import (
        AttributeSpec,
        Decision,
        DecisionPointSpec,
        MetricSpec,
        OperationSpec,
        VariantSpec,
        ViolationClassSpec,
    )
    from .oracle import Oracle, Violation
    from .run import RunResult
    from .scenario.model import Step

hookspec = pluggy.HookspecMarker("policykit")
hookimpl = pluggy.HookimplMarker("policykit")


# -------------------------------------------------------------------------------------
# Registration hooks: called once per run set-up, every implementation is called.
# -------------------------------------------------------------------------------------


@hookspec(historic=True)
def policykit_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hookspecs of a plugin's own, e.g. the hook of a new decision point.

    :param pluginmanager: the policykit plugin manager; call ``add_hookspecs`` on it.

    Called when the plugin is registered (historic: plugins registered later still get
    the call).  A plugin adding a decision point ``foo`` must add a firstresult hookspec
    ``policykit_foo(ctx)`` here and declare the point in
    :func:`policykit_add_decision_points`.
    """


@hookspec
def policykit_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to the commands that run scenarios.

    :param parser: the :class:`argparse.ArgumentParser` of ``run``, ``compare`` or
        ``score``; add options with long names prefixed by the plugin's name
        (``--trace-json DIR``).

    Called by the command line once for each of those commands, before it parses
    arguments.
    """


@hookspec(historic=True)
def policykit_configure(config: argparse.Namespace) -> None:
    """Read the parsed command line.

    :param config: the parsed options of the command being run.

    Called once by the command line after parsing, before any scenario runs (historic).
    """


@hookspec
def policykit_add_attributes() -> list[AttributeSpec]:
    """Declare attributes of pages, PTEs, VMAs and mms that policies may read.

    :returns: a list of :class:`~policykit.engine.specs.AttributeSpec`.

    Called once per run set-up; the lists of all plugins are merged (a name declared
    twice for the same owner is an error naming both providers).  Attributes with
    ``flag=True`` are policy-owned state that decisions set and clear; their ``default``
    is the value every new page (or mm) starts with.
    """


@hookspec
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    """Declare decision points: where the engine asks the policy, and the legal actions.

    :returns: a list of :class:`~policykit.engine.specs.DecisionPointSpec`.

    Called once per run set-up.  The engine's own points (``fork_pte``, ``wp_fault``,
    ``unshare_fault``, ``gup``, ``mprotect_pte``, ``clear_refs_pte``) are declared through
    this hook by the engine itself.
    """


@hookspec
def policykit_add_operations() -> list[OperationSpec]:
    """Declare scenario operations (``mmap``, ``fork``, ``gup``, ...).

    :returns: a list of :class:`~policykit.engine.specs.OperationSpec`.

    Called once per run set-up; scenario files are checked against the merged set, so a
    plugin's operation is usable in a scenario without touching the scenario grammar.
    """


@hookspec
def policykit_add_metrics() -> list[MetricSpec]:
    """Declare per-run counters (copies, bytes copied, faults, ...).

    :returns: a list of :class:`~policykit.engine.specs.MetricSpec`.

    Called once per run set-up.  Increment them with ``engine.count(name, n)``.
    """


@hookspec
def policykit_add_violation_classes() -> list[ViolationClassSpec]:
    """Declare violation classes an oracle check may report (``leak``, ``lost-write``...).

    :returns: a list of :class:`~policykit.engine.specs.ViolationClassSpec`.

    Called once per run set-up.  Scenario expectations may only name declared classes.
    """


@hookspec
def policykit_add_variants() -> list[VariantSpec]:
    """Declare memory variants scenarios can run on (``base``, ``swapped``, ``thp``...).

    :returns: a list of :class:`~policykit.engine.specs.VariantSpec`.

    Called once per run set-up.  A scenario with a ``variants`` line is expanded into one
    scenario per variant it names (``NAME/VARIANT``); a variant no installed plugin
    declares is skipped, and the corpus listing says so.
    """


@hookspec
def policykit_add_scenario_dirs() -> list[str]:
    """Declare directories of ``*.scn`` files that join the built-in corpus.

    :returns: directory paths (typically inside the plugin's package).

    Called when the built-in corpus is gathered (``policykit compare`` or ``run`` with no
    scenarios): a plugin's scenarios need its operations, so they ship with it.
    """


# -------------------------------------------------------------------------------------
# Decision hooks: firstresult, answered by the policy.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def policykit_fork_pte(ctx: Context) -> Decision | str | None:
    """Decide what fork() does with one present page of a COW mapping: an anonymous
    page, or a page cache page that a private file mapping maps (policykit-file;
    ``page.anon`` is false, and a copy is an anonymous page for the child).

    :param ctx: read-only context: ``page``, ``pte``, ``vma`` and ``mm`` of the *parent*
        (``copy_present_pte()`` in ``mm/memory.c``).
    :returns: ``share`` (write-protect both PTEs and share the page), ``copy`` (give the
        child its own copy now; the parent PTE is left as it was; needs an allocation,
        which may fail and then fails the fork), ``copy_atomic`` (the same with a
        GFP_ATOMIC allocation, which also fails under memory pressure) or ``fail`` (fork
        fails with -ENOMEM).

    Called for every present, non-zero-page PTE of a private VMA without VM_DONTCOPY or
    VM_WIPEONFORK, in address order.  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_wp_fault(ctx: Context) -> Decision | str | None:
    """Decide a write fault on a write-protected PTE of an anonymous page (``do_wp_page``).

    :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm`` of the faulting process.
    :returns: ``reuse`` (make the PTE writable, keep the page), ``copy`` (map a fresh
        copy writable; ``wp_page_copy``), or ``directed_copy`` (keep the page, and remap
        every other process that maps it to a copy of its own: Linus' "directed" COW of
        2009, which the kernel never had; only an ``unrealizable`` policy may answer it).

    Called for private VMAs only, and not for the shared zero page (which is always
    replaced by a fresh page).  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_unshare_fault(ctx: Context) -> Decision | str | None:
    """Decide a GUP-triggered unshare fault (``FAULT_FLAG_UNSHARE``, 5.19+).

    :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
    :returns: ``reuse`` (keep the page, PTE stays read-only) or ``copy`` (map a fresh copy,
        read-only).

    Called when a ``gup`` decision answered ``unshare_fault``.  Stops at first non-None
    result.
    """


@hookspec(firstresult=True)
def policykit_gup(ctx: Context) -> Decision | str | None:
    """Decide whether get_user_pages/pin_user_pages may take the page mapped at an address.

    :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm`` and ``foll`` (the GUP
        flags: ``foll.pin``, ``foll.get``, ``foll.write``, ``foll.longterm``, ``foll.force``).
    :returns: ``grab`` (take the reference), ``write_fault`` (take a write fault, then ask
        again), ``unshare_fault`` (take an unshare fault, then ask again) or ``fail`` (GUP
        fails with -EFAULT).

    Called once per page with a present PTE, after the engine faulted in a missing one.
    The engine gives up with an ``error`` after three faults on the same page.  Stops at
    first non-None result.
    """


@hookspec(firstresult=True)
def policykit_gup_cow_retry(ctx: Context) -> Decision | str | None:
    """Decide how GUP goes on after FOLL_FORCE broke COW on a VMA without VM_WRITE.

    :param ctx: read-only context: ``page`` (the fresh copy), ``pte`` (read-only, dirty),
        ``vma``, ``mm``, ``foll``.
    :returns: ``keep_write`` (4.9+: keep FOLL_WRITE and mark the GUP with FOLL_COW, which
        ``foll.cow`` shows to the ``gup`` decision) or ``drop_write`` (before 4.9: go on
        without FOLL_WRITE, so a PTE zapped meanwhile is faulted back in for *reading*:
        Dirty COW).  Default ``keep_write``.

    Called in ``faultin_page`` right after the write fault.  Stops at first non-None
    result.
    """


@hookspec(firstresult=True)
def policykit_mprotect_pte(ctx: Context) -> Decision | str | None:
    """Decide whether mprotect(PROT_WRITE) maps a read-only anonymous PTE writable at once.

    :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
    :returns: ``make_writable`` (``can_change_pte_writable()`` said yes) or ``keep``
        (leave it read-only; the next write faults).

    Called for each present, read-only PTE of an anonymous page when a private VMA gains
    VM_WRITE.  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_clear_refs_pte(ctx: Context) -> Decision | str | None:
    """Decide whether ``echo 4 > /proc/pid/clear_refs`` write-protects one anonymous PTE.

    :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
    :returns: ``wrprotect`` (clear soft-dirty and write-protect) or ``skip`` (5.11+ skips
        maybe-pinned pages).

    Called for each present writable PTE of an anonymous page in private VMAs.  Stops at
    first non-None result.
    """


@hookspec(firstresult=True)
def policykit_dma_write(ctx: Context) -> Decision | str | None:
    """Decide what happens before a device writes through a GUP reference into a page that
    processes other than the reference's owner map too.

    :param ctx: read-only context: ``page``; ``pte``, ``vma``, ``mm`` of the owner (``pte``
        and ``vma`` are None when the owner no longer maps the page).
    :returns: ``write`` (the device writes the page: everyone mapping it sees the write)
        or ``directed_copy`` (first give every other process a copy of its own: no kernel
        can, since none sees a DMA coming; only an ``unrealizable`` policy may answer it).

    Called by the ``dma_write`` operation.  Default ``write``.  Stops at first non-None
    result.
    """


# -------------------------------------------------------------------------------------
# Mechanism hooks: how plugins add page state the core does not know (swap entries,
# hugetlb and file VMAs, extra references).  firstresult ones return None for "not mine".
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def policykit_copy_page(engine: Engine, page: Page, metric: str) -> Page | None:
    """Copy a page the plugin owns (a huge page from the pool) for the engine: allocate
    its like, copy the content, count ``metric``, the bytes and any metric of the plugin's.

    :param engine: the engine.
    :param page: the page to copy.
    :param metric: the copy metric to count (``wp_copies``, ...).
    :returns: the new page, holding one reference for the caller; None when the page is
        not this plugin's (the core copies it).  Raise ``OperationFailed`` when there is
        no page to copy into.

    Called by the engine's directed COW (``directed_copy``) for every page it hands to
    another process.  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_handle_fault(engine: Engine, proc: Process, vma: Vma, vpn: int, pte: Pte | None,
                           write: bool, unshare: bool) -> Pte | None:
    """Handle a fault the core cannot: on a non-present PTE (a swap entry), or any fault in
    a VMA the plugin owns (hugetlb, file).

    :param engine: the engine.
    :param proc: the faulting process.
    :param vma: the VMA of the address.
    :param vpn: the page number.
    :param pte: the PTE there, or None when empty.
    :param write: a write fault (FAULT_FLAG_WRITE).
    :param unshare: an unshare fault (FAULT_FLAG_UNSHARE).
    :returns: the PTE after the fault, installed in ``proc.mm.ptes``; None: not this
        plugin's fault.

    Called before the core's own fault handling: on a non-present PTE, and for any
    fault in a VMA carrying an attribute this plugin declared (a VMA attribute nobody
    declared reaches every plugin).  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_copy_pte(engine: Engine, src_mm: Mm, dst_mm: Mm, src_vma: Vma, dst_vma: Vma,
                       vpn: int, pte: Pte) -> Pte | bool | None:
    """Copy at fork a PTE the core cannot: non-present, or in a VMA the plugin owns.

    :param engine: the engine.
    :param src_mm: the parent's mm.
    :param dst_mm: the child's mm.
    :param src_vma: the parent's VMA.
    :param dst_vma: the child's VMA.
    :param vpn: the page number.
    :param pte: the parent's PTE.
    :returns: the child's PTE; False: the child gets none; None: not this plugin's.  To
        fail the fork, raise :class:`~policykit.OperationFailed`.

    Called by fork for every PTE that is not present, and for every PTE of a VMA
    carrying an attribute this plugin declared (a VMA attribute nobody declared reaches
    every plugin).  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_zap_pte(engine: Engine, mm: Mm, vma: Vma | None, vpn: int, pte: Pte) -> bool | None:
    """Tear down a PTE the core cannot (munmap, exit, MADV_DONTNEED): a swap entry, a page
    of a plugin VMA.

    :param engine: the engine.
    :param mm: the mm losing the PTE (already removed from ``mm.ptes``).
    :param vma: its VMA, or None when the VMA is already gone.
    :param vpn: the page number.
    :param pte: the PTE.
    :returns: True when handled; None: not this plugin's.

    Called for non-present PTEs, for present ones the plugin gave attributes (a THP's
    ``pmd``), and for present ones of pages the plugin marked with ``page.attrs["owner"] =
    <plugin name>``.  Stops at first non-None result.
    """


@hookspec(firstresult=True)
def policykit_peek_pte(engine: Engine, mm: Mm, vma: Vma, vpn: int, pte: Pte | None) -> int | None:
    """What a read would see at a non-present PTE, or in a plugin VMA with no PTE, without
    faulting anything in (the oracle's view).

    :param engine: the engine.
    :param mm: the mm.
    :param vma: the VMA.
    :param vpn: the page number.
    :param pte: the PTE, or None.
    :returns: the content token; None: not this plugin's.

    Called by :meth:`~policykit.Engine.peek`.  Stops at first non-None result.
    """


@hookspec
def policykit_page_refs(machine: Machine, page: Page) -> int:
    """References to a page that a plugin's state holds (swapcache, LRU batch...).

    :param machine: the machine.
    :param page: the page.
    :returns: the number of references this plugin holds on it.

    Called by the invariant check (``--invariants``): a page's refcount must equal its
    mappings, GUP references and the sum of these.
    """


@hookspec
def policykit_page_added(engine: Engine, page: Page, mm: Mm, vpn: int) -> None:
    """A fresh page was just mapped (``lru_cache_add``): by a fault, a COW copy or fork.

    :param engine: the engine.
    :param page: the new page.
    :param mm: the mm it is mapped in (at fork: the child's, not yet a process).
    :param vpn: where.

    Called by the engine after installing the PTE, only when some plugin implements it.
    """


@hookspec
def policykit_wp_prepare(engine: Engine, proc: Process, vma: Vma, vpn: int, pte: Pte, page: Page,
                         unshare: bool) -> None:
    """About to decide a write or unshare fault on an anonymous page: a plugin may act
    first (drain the LRU batch, free the swapcache), asking decision points of its own.

    :param engine: the engine.
    :param proc: the faulting process.
    :param vma: its VMA.
    :param vpn: the page number.
    :param pte: the write-protected PTE.
    :param page: the page.
    :param unshare: an unshare fault.

    Called before ``wp_fault`` / ``unshare_fault`` is asked, only when some plugin
    implements it.
    """


@hookspec
def policykit_range_prepare(engine: Engine, mm: Mm, start: int, end: int) -> None:
    """munmap, mprotect or madvise is about to change pages ``[start, end)`` of ``mm``:
    split what straddles the range's edges.

    :param engine: the engine.
    :param mm: the mm.
    :param start: the first page number.
    :param end: the page number past the last.

    Called before the VMAs are split, only when some plugin implements it.
    """


@hookspec
def policykit_split_folio(engine: Engine, head: Page) -> None:
    """A large folio is about to become small pages (``split_folio()``: reclaim of a THP
    the swap device cannot take whole): undo what maps it as a whole (a PMD).

    :param engine: the engine.
    :param head: the folio's first page (``head.folio`` says how many pages it has).

    Called by :meth:`~policykit.engine.mm.Engine.split_folio` before the core detaches
    the pages, only when some plugin implements it.
    """


@hookspec
def policykit_page_freed(engine: Engine, page: Page) -> None:
    """The last reference to a page went: it is no longer in ``engine.machine.pages``.

    :param engine: the engine.
    :param page: the freed page.

    Called by ``put_page``, only when some plugin implements it (a pool of huge pages
    takes its page back).
    """


@hookspec
def policykit_page_reused(engine: Engine, proc: Process, vma: Vma, vpn: int, pte: Pte, page: Page,
                          unshare: bool) -> None:
    """A write or unshare fault kept the page (``wp_page_reuse``).

    :param engine: the engine.
    :param proc: the faulting process.
    :param vma: its VMA.
    :param vpn: the page number.
    :param pte: the PTE, already made writable (unless ``unshare``).
    :param page: the reused page.
    :param unshare: an unshare fault.

    Called after the engine carried out a ``reuse`` decision, only when some plugin
    implements it.  A KSM page reused stops being one, for instance.
    """


# -------------------------------------------------------------------------------------
# Observer hooks: every implementation is called; return values are ignored unless said.
# -------------------------------------------------------------------------------------


@hookspec
def policykit_engine_event(engine: Engine, event: Event) -> None:
    """Observe one engine event (fault, decision, copy, alloc, free, GUP, ...).

    :param engine: the engine (read its ``machine``; do not change it).
    :param event: the :class:`~policykit.engine.mm.Event`.

    Called synchronously as the event happens.  Only called when at least one plugin
    implements it, so an unused hook costs nothing.
    """


@hookspec
def policykit_oracle_step(oracle: Oracle, step: Step, outcome: Outcome,
                          args: dict[str, Any]) -> list[Violation] | None:
    """Judge one scenario step with checks of a plugin's own.

    :param oracle: the running oracle (its logical model and the engine, read-only).
    :param step: the scenario step just carried out.
    :param outcome: what the engine reported for it.
    :param args: the step's resolved arguments (pids, vpns, reference ids).
    :returns: violations found, or None.

    Called after the built-in oracle has judged the step, for every step that ran.  A
    plugin whose operations change memory tells the logical model with the oracle's
    helpers: ``new_cell``, ``map_cell``, ``map_fresh``, ``forget``, ``record_write``, ``name_region``,
    and ``follow`` (a private view of a file page that shows the file until copied).
    """


@hookspec
def policykit_run_finish(result: RunResult) -> None:
    """Observe a finished run of one scenario under one policy.

    :param result: the :class:`~policykit.run.RunResult` with verdict, violations, metrics
        and (when tracing) the trace.

    Called once per (policy, scenario) run, after expectations were checked.  Exporters
    write their files here.
    """


#: The families of hooks, in the order the reference lists them: (family, what holds for
#: its hooks, the hooks).  ``policykit hooks`` and docs/hooks.md are made from this table
#: and the specs' own signatures and docstrings.
FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Registration hooks",
     "called once per run set-up; every implementation is called",
     ("policykit_addhooks", "policykit_addoption", "policykit_configure",
      "policykit_add_attributes", "policykit_add_decision_points",
      "policykit_add_operations", "policykit_add_metrics",
      "policykit_add_violation_classes", "policykit_add_variants",
      "policykit_add_scenario_dirs")),
    ("Decision hooks",
     "firstresult, answered by the policy",
     ("policykit_fork_pte", "policykit_wp_fault", "policykit_unshare_fault",
      "policykit_gup", "policykit_gup_cow_retry", "policykit_mprotect_pte",
      "policykit_clear_refs_pte", "policykit_dma_write")),
    ("Mechanism hooks",
     ("how plugins add page state the core does not know (swap entries, hugetlb and "
      "file VMAs, extra references); firstresult ones return None for 'not mine'"),
     ("policykit_copy_page", "policykit_handle_fault", "policykit_copy_pte",
      "policykit_zap_pte", "policykit_peek_pte", "policykit_page_refs",
      "policykit_page_added", "policykit_wp_prepare", "policykit_range_prepare",
      "policykit_split_folio", "policykit_page_freed", "policykit_page_reused")),
    ("Observer hooks",
     "every implementation is called; return values are ignored unless said",
     ("policykit_engine_event", "policykit_oracle_step", "policykit_run_finish")),
)
