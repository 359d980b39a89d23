"""policykit-lru: the per-CPU LRU add batch (pagevec, later folio_batch).

Mechanism (mm/swap.c): a fresh page is not put on the LRU at once; it waits in the
batch of the CPU that faulted it, which holds a reference, until the batch is full
(15 pages) or drained.  Meanwhile ``PageLRU`` is false and the refcount is one higher:
to a refcount-based reuse test (5.9..5.17) the page looks shared.

* ``run_on P CPU`` places a process on a CPU.  Only processes placed so batch their
  pages; the others' pages go to the LRU at once (as if drained), which keeps scenarios
  that are not about batching free of its noise.
* ``lru_drain CPU`` drains one CPU's batch (``lru_add_drain()`` there);
  ``lru_drain_all`` drains every CPU's (``lru_add_drain_all()``).
* Before a write fault decides, the decision point ``lru_drain`` (``drain_local`` |
  ``skip``) says whether to drain the faulting CPU's batch first (5.18,
  d4c470970d45): pages in other CPUs' batches stay there.

Page attribute: ``lru`` (PageLRU).  Metric: ``lru_drains``.
"""

from __future__ import annotations

from typing import Any

from policykit import AttributeSpec, DecisionPointSpec, MetricSpec, OperationSpec, Outcome, Param, hookimpl, hookspec

#: PAGEVEC_SIZE / folio_batch size
BATCH = 15


class Hooks:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_lru_drain(ctx):
        """Decide whether a write fault drains the local CPU's LRU add batch first.

        :param ctx: read-only context: ``page``, ``pte``, ``vma``, ``mm``.
        :returns: ``drain_local`` or ``skip``.

        Called before ``wp_fault`` / ``unshare_fault`` for a page in an LRU add batch
        (``page.lru`` false).  Stops at first non-None result.
        """


@hookimpl
def policykit_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(Hooks)


@hookimpl
def policykit_add_decision_points() -> list[DecisionPointSpec]:
    return [DecisionPointSpec("lru_drain", ("drain_local", "skip"), ("page", "pte", "vma", "mm"),
                              "a write fault meets a page in an LRU add batch", default="skip")]


@hookimpl
def policykit_add_attributes() -> list[AttributeSpec]:
    return [AttributeSpec("page", "lru", bool, True, "PageLRU(): false while the page waits in an LRU add batch")]


@hookimpl
def policykit_add_metrics() -> list[MetricSpec]:
    return [MetricSpec("lru_drains", "LRU add batches drained", "count")]


# machine.attrs["lru.cpu"]: pid -> CPU; machine.attrs["lru.batch"]: CPU -> [pfn, ...]

def _cpu_of(engine: Any, mm: Any) -> int | None:
    """The CPU the process owning ``mm`` runs on (an mm's id is its process's pid; at
    fork, the child's to be)."""
    cpus = engine.machine.attrs.get("lru.cpu")
    return cpus.get(mm.mm_id) if cpus else None


def drain(engine: Any, cpu: int) -> None:
    """``lru_add_drain()`` on one CPU: its pages go to the LRU, the batch's references go."""
    batch = engine.machine.attrs.get("lru.batch", {}).pop(cpu, [])
    for pfn in batch:
        page = engine.machine.pages[pfn]
        page.attrs.pop("lru", None)
        engine.put_page(page)
    if batch:
        engine.count("lru_drains")


@hookimpl
def policykit_page_added(engine: Any, page: Any, mm: Any, vpn: int) -> None:
    cpu = _cpu_of(engine, mm)
    if cpu is None:
        return
    batch = engine.machine.attrs.setdefault("lru.batch", {}).setdefault(cpu, [])
    batch.append(page.pfn)                        # folio_batch_add(): a reference
    page.attrs["lru"] = False
    page.refcount += 1
    if len(batch) >= BATCH:
        drain(engine, cpu)


@hookimpl
def policykit_wp_prepare(engine: Any, proc: Any, vma: Any, vpn: int, pte: Any, page: Any, unshare: bool) -> None:
    if page.attrs.get("lru") is False:
        if engine.decide("lru_drain", page, pte, vma, proc.mm, pid=proc.pid, vpn=vpn).action == "drain_local":
            cpu = engine.machine.attrs.get("lru.cpu", {}).get(proc.pid)
            if cpu is not None:
                drain(engine, cpu)


@hookimpl
def policykit_page_refs(machine: Any, page: Any) -> int:
    return sum(b.count(page.pfn) for b in machine.attrs.get("lru.batch", {}).values())


def run_on(engine: Any, args: dict[str, Any]) -> Outcome:
    engine.machine.attrs.setdefault("lru.cpu", {})[args["process"]] = args["cpu"]
    return Outcome()


def lru_drain(engine: Any, args: dict[str, Any]) -> Outcome:
    drain(engine, args["cpu"])
    return Outcome()


def lru_drain_all(engine: Any, args: dict[str, Any]) -> Outcome:
    for cpu in sorted(engine.machine.attrs.get("lru.batch", {})):
        drain(engine, cpu)
    return Outcome()


@hookimpl
def policykit_add_operations() -> list[OperationSpec]:
    cpu = Param("cpu", "int", doc="a CPU number")
    return [
        OperationSpec("run_on", (Param("process", "process"), cpu), run_on,
                      "the process runs on CPU from now on, and batches its new pages there"),
        OperationSpec("lru_drain", (cpu,), lru_drain, "lru_add_drain() on one CPU"),
        OperationSpec("lru_drain_all", (), lru_drain_all, "lru_add_drain_all()"),
    ]


@hookimpl
def policykit_add_scenario_dirs() -> list[str]:
    from pathlib import Path
    return [str(Path(__file__).parent / "scenarios")]
