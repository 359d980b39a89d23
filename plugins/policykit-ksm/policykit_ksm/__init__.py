"""policykit-ksm: Kernel Samepage Merging.

Mechanism (mm/ksm.c):

* ``ksm_enable P REGION`` is MADV_MERGEABLE; ``fill P REGION TAG`` writes the same content
  for the same TAG, in any process (a fresh value per TAG), so that pages can be merged.
* ``ksm_merge`` is one pass of ksmd: pages of mergeable VMAs with equal content merge into
  one write-protected KSM page.  ``write_protect_page()`` refuses a page with references
  other than its mappings (and the swapcache): "no O_DIRECT or similar I/O in progress".
  Then the decision point ``ksm_merge_page`` (``merge`` | ``skip``) is asked: 5.19's
  ``page_try_share_anon_rmap()`` refuses an exclusive page that may be pinned, and
  clears the exclusive flag of the others (KSM pages are never exclusive).
* A write fault on a KSM page is the policy's ``wp_fault`` with ``page.ksm``; a reused
  KSM page stops being one (``page_move_anon_rmap()``).

Page attribute: ``ksm``.  VMA attribute: ``mergeable``.  Metric: ``ksm_merged``.
"""

from __future__ import annotations

from typing import Any

from policykit import (
    AttributeSpec,
    DecisionPointSpec,
    MetricSpec,
    OperationSpec,
    Outcome,
    Param,
    hookimpl,
    hookspec,
)


class Hooks:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_ksm_merge_page(ctx):
        """Decide whether ksmd merges a page (``page_try_share_anon_rmap``).

        :param ctx: read-only context: ``page`` (a candidate with no extra references),
            ``pte``, ``vma``, ``mm`` of one of its mappings.
        :returns: ``merge`` (share it read-only as or into the KSM page) or ``skip``.

        Called by ``ksm_merge`` for each page it is about to merge.  Stops at first
        non-None result.
        """


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(Hooks)


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    return [DecisionPointSpec("ksm_merge_page", ("merge", "skip"), ("page", "pte", "vma", "mm"),
                              "ksmd is about to merge a page", default="merge")]


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("page", "ksm", bool, False, "PageKsm(): a merged, write-protected KSM page"),
            AttributeSpec("vma", "mergeable", bool, False, "VM_MERGEABLE (MADV_MERGEABLE)")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("ksm_merged", "pages merged into KSM pages (and freed)", "pages")]


def ksm_enable(engine: Any, args: dict[str, Any]) -> Outcome:
    vpns = args["region"]
    mm = engine.process(args["process"]).mm
    for vma in engine.split_vmas(mm, vpns[0], vpns[-1] + 1):
        vma.attrs["mergeable"] = True
    return Outcome()


def fill(engine: Any, args: dict[str, Any]) -> Outcome:
    """Write the content named TAG into every page (one token per TAG)."""
    tags = engine.machine.attrs.setdefault("ksm.tags", {})
    if args["tag"] not in tags:
        tags[args["tag"]] = engine.next_token()
    token = tags[args["tag"]]
    proc = engine.process(args["process"])
    out = []
    for vpn in args["region"]:
        pte = proc.mm.ptes.get(vpn)
        if pte is None or not pte.writable:
            pte = engine.handle_mm_fault(proc, vpn, write=True)
        engine.machine.pages[pte.pfn].content = token
        out.append(token)
    return Outcome(tokens=out)


def _candidates(engine: Any) -> list[tuple[Any, Any, int, Any]]:
    """(process, vma, vpn, pte) of present private anonymous pages in mergeable VMAs."""
    pages = engine.machine.pages
    out = []
    for proc in engine.machine.processes.values():
        for vma in proc.mm.vmas:
            if not vma.attrs.get("mergeable") or vma.shared:
                continue
            for vpn in range(vma.start, vma.end):
                pte = proc.mm.ptes.get(vpn)
                if pte is not None and pte.present and not pages[pte.pfn].zero and pages[pte.pfn].anon:
                    out.append((proc, vma, vpn, pte))
    return out


def _no_extra_refs(page: Any) -> bool:
    # write_protect_page(): page_mapcount + 1 + swapped == page_count (our scan holds none)
    return page.refcount == page.mapcount + (1 if page.attrs.get("swapcache") else 0)


def ksm_merge(engine: Any, args: dict[str, Any]) -> Outcome:
    pages = engine.machine.pages
    by_content: dict[int, list[tuple[Any, Any, int, Any]]] = {}
    for cand in _candidates(engine):
        by_content.setdefault(pages[cand[3].pfn].content, []).append(cand)
    for content, cands in by_content.items():
        pfns = list(dict.fromkeys(c[3].pfn for c in cands))
        stable = next((pfn for pfn in pfns if pages[pfn].attrs.get("ksm")), None)
        if len(pfns) < 2:
            continue
        for proc, vma, vpn, pte in cands:
            if pte.pfn == stable:
                continue
            page = pages[pte.pfn]
            if page.folio is not None and not engine.split_folio(page):
                continue                                      # KSM merges small pages only
            if not _no_extra_refs(page):
                continue
            if engine.decide("ksm_merge_page", page, pte, vma, proc.mm, pid=proc.pid, vpn=vpn).action != "merge":
                continue
            if stable is None:                                # the first page becomes the KSM page
                stable = page.pfn
                page.attrs["ksm"] = True
                for other in engine.machine.processes.values():
                    for e in other.mm.ptes.values():
                        if e.present and e.pfn == stable:
                            e.writable = False
                continue
            ksm_page = pages[stable]
            for other in engine.machine.processes.values():  # replace_page(), every mapping
                for e in other.mm.ptes.values():
                    if e.present and e.pfn == page.pfn:
                        e.pfn, e.writable = stable, False
                        ksm_page.mapcount += 1
                        ksm_page.refcount += 1
                        page.mapcount -= 1
                        engine.put_page(page)
            engine.count("ksm_merged")
    return Outcome()


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    p, r = Param("process", "process"), Param("region", "region")
    return [
        OperationSpec("ksm_enable", (p, r), ksm_enable, "madvise(MADV_MERGEABLE)"),
        OperationSpec("fill", (p, r, Param("tag", "word", ("a", "b", "c", "d"))), fill,
                      "write the content named TAG (a, b, c or d) into every page"),
        OperationSpec("ksm_merge", (), ksm_merge, "one full scan of ksmd"),
    ]


@hookimpl
def policykit_oracle_step(oracle: Any, step: Any, outcome: Any, args: dict[str, Any]) -> None:
    if step.op == "fill" and outcome.ok:
        for vpn, token in zip(args["region"], outcome.tokens):
            oracle.record_write(args["process"], vpn, token, f"content {args['tag']!r} filled")


@hookimpl
def policykit_page_reused(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, page: Any, unshare: bool) -> None:
    # a reused KSM page (reuse_ksm_page(), 5.1..5.8): page_move_anon_rmap() makes it anon
    if not unshare:
        page.attrs.pop("ksm", None)


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]
