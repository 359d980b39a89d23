"""Plugins extend the engine only through hooks: attributes, operations, decision points,
metrics, violation classes, oracle checks and event observers."""

from __future__ import annotations

import inspect
import types

import pytest
from conftest import session, variant

import policykit
from policykit import (
    AttributeSpec,
    DecisionPointSpec,
    MetricSpec,
    OperationSpec,
    Outcome,
    Param,
    PluginError,
    Session,
    ViolationClassSpec,
    Violation,
    hookimpl,
    hookspec,
    load_policy,
)
from policykit import hookspecs as specs_module


class _ScanSpecs:
    @staticmethod
    @hookspec(firstresult=True)
    def policykit_ksm_scan(ctx):
        """Decide whether the toy scanner merges a page."""


def _make_plugin():
    """A toy "scanner" plugin: an operation that asks a new decision point per page and
    marks merged pages with a new page attribute; a metric; an oracle check; an observer."""
    plugin = types.ModuleType("toy_scanner")
    events: list[str] = []

    @hookimpl
    def policykit_addhooks(pluginmanager):
        pluginmanager.add_hookspecs(_ScanSpecs)

    @hookimpl
    def policykit_add_attributes():
        return [AttributeSpec("page", "scanned", bool, False, "the toy scanner marked this page")]

    @hookimpl
    def policykit_add_decision_points():
        return [DecisionPointSpec("ksm_scan", ("mark", "skip"), ("page", "pte", "vma", "mm"),
                                  "the toy scanner meets a page")]

    @hookimpl
    def policykit_add_metrics():
        return [MetricSpec("scanned_pages", "pages the toy scanner marked", "pages")]

    @hookimpl
    def policykit_add_violation_classes():
        return [ViolationClassSpec("over-scanned", "a page was marked twice")]

    def scan(engine, args):
        mm = engine.process(args["process"]).mm
        for vpn in args["region"]:
            pte = mm.ptes.get(vpn)
            if pte is None:
                continue
            page = engine.machine.pages[pte.pfn]
            d = engine.decide("ksm_scan", page, pte, mm.find_vma(vpn), mm)
            if d.action == "mark":
                page.attrs["scanned"] = page.attrs.get("scanned", 0) + 1
                engine.count("scanned_pages")
        return Outcome()

    @hookimpl
    def policykit_add_operations():
        return [OperationSpec("scan", (Param("process", "process"), Param("region", "region")), scan,
                              "run the toy scanner over a region")]

    @hookimpl
    def policykit_oracle_step(oracle, step, outcome, args):
        if step.op != "scan":
            return None
        twice = [p for p in oracle.engine.machine.pages.values() if p.attrs.get("scanned", 0) > 1]
        return [Violation("over-scanned", oracle._step, step.line, f"pfn {p.pfn}") for p in twice]

    @hookimpl
    def policykit_engine_event(engine, event):
        events.append(event.kind)

    for name, fn in list(locals().items()):
        if name.startswith("policykit_"):
            setattr(plugin, name, fn)
    plugin.events = events
    return plugin


def _session(plugin, ksm_scan):
    base = session("anon_exclusive").policy.plugin
    mod = types.ModuleType("scan_policy")
    for attr in dir(base):
        if attr.startswith("policykit_"):
            setattr(mod, attr, getattr(base, attr))
    mod.policykit_ksm_scan = ksm_scan
    from policykit._manager import _policy_from_module
    return Session(_policy_from_module(mod, "scan-policy", "<test>"), plugins=[plugin], autoload=False)


def test_plugin_operation_decision_point_metric_and_oracle_check():
    plugin = _make_plugin()
    s = _session(plugin, lambda ctx: "skip" if ctx.page.scanned else "mark")
    assert s.registry.decision_points["ksm_scan"].provider == "toy_scanner"
    scn = s.parse("spawn -> p\nmmap p 2 private -> buf\nwrite p buf\nscan p buf\nscan p buf\n"
                  "expect scan-policy: ok\nbudget scan-policy: scanned_pages == 2\n")
    r = s.run(scn, invariants=True)
    assert r.passed and r.metrics["scanned_pages"] == 2
    assert "decision" in plugin.events and "fault" in plugin.events


def test_plugin_violation_class_is_reported_and_expectable():
    s = _session(_make_plugin(), lambda ctx: "mark")
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> buf\nwrite p buf\nscan p buf\nscan p buf\n"
                      "expect scan-policy: over-scanned\n"))
    assert r.verdict == "over-scanned" and r.passed


def test_plugin_operation_is_checked_like_a_builtin():
    s = _session(_make_plugin(), lambda ctx: "mark")
    with pytest.raises(policykit.ScenarioError) as info:
        s.parse("spawn -> p\nscan q buf\n")
    assert "unknown process 'q'" in info.value.message


def test_policy_without_the_plugin_decision_point_is_refused():
    plugin = _make_plugin()
    with pytest.raises(policykit.PolicyLoadError, match="decides nothing at: ksm_scan"):
        Session(session("anon_exclusive").policy, plugins=[plugin], autoload=False)


def test_unknown_attribute_is_an_error_with_a_suggestion():
    s = variant("anon_exclusive", "typo", policykit_wp_fault=lambda ctx: "reuse" if ctx.page.mapcont == 1 else "copy")
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"))
    assert r.verdict == "error"
    assert "did you mean 'mapcount'" in r.violations[0].detail


def test_exception_in_a_policy_is_an_error_verdict_naming_it():
    def boom(ctx):
        raise ZeroDivisionError("oops")

    s = variant("anon_exclusive", "boom", policykit_wp_fault=boom)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\nread p b\n"))
    assert r.verdict == "error"
    detail = r.violations[0].detail
    assert "ZeroDivisionError: oops" in detail and r.violations[0].line == 5
    assert "plugin 'policy:boom'" in detail and "hook policykit_wp_fault" in detail
    assert r.steps[-1].status == "error"
    # the next scenario runs normally
    assert s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\n")).verdict == "ok"


@pytest.mark.parametrize("answer,message", [
    ("steal", "answered 'steal'; legal actions: reuse, copy"),
    (None, "no policy answered decision point 'wp_fault'"),
    (policykit.Decision("reuse", (policykit.Effect("page", "undeclared", True),)),
     "sets page.undeclared, which is not a declared page flag"),
    (policykit.Decision("reuse", (policykit.Effect("page", "anon_exclusive", 2),)),
     "sets page.anon_exclusive to 2, not a bool"),
])
def test_bad_decisions_are_errors(answer, message):
    s = variant("anon_exclusive", "bad", policykit_wp_fault=lambda ctx: answer)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"))
    assert r.verdict == "error" and message in r.violations[0].detail
    if answer is not None:
        assert "plugin 'policy:bad'" in r.violations[0].detail


def test_context_is_read_only():
    def scribble(ctx):
        ctx.page.refcount = 1
        return "reuse"

    s = variant("anon_exclusive", "scribble", policykit_wp_fault=scribble)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"))
    assert r.verdict == "error" and "read-only" in r.violations[0].detail


def test_a_decision_reads_attributes_and_flags_as_they_are_or_their_defaults():
    """What a hook reads of ``ctx``: a policy flag by its bare name and compiled policies'
    ``f_`` name, a plugin attribute the page holds, the declared default of one it does
    not, and for an undeclared name an AttributeError that names the likely one."""
    tagger = types.ModuleType("tagger")
    tagger.policykit_add_attributes = hookimpl(lambda: [AttributeSpec("page", "tag", int, 7)])
    seen = []

    def wp_fault(ctx):
        page = ctx.page
        seen.append((page.anon_exclusive, page.f_anon_exclusive, page.tag))
        try:
            page.anon_exclusiv
        except AttributeError as exc:
            seen.append(str(exc))
        return "copy"

    s = variant("anon_exclusive", "reader", policykit_wp_fault=wp_fault)
    s = Session(s.policy, plugins=[tagger], autoload=False)
    steps = s.parse("spawn -> p\nmmap p 2 private -> b\nwrite p b\nfork p -> c\n"
                    "write p b[0]\nwrite p b[1]\n").steps
    run = s.start()
    for i, step in enumerate(steps[:4]):
        run.step(i, step)
    machine = run.engine.machine
    first = machine.pages[machine.processes[run.pids["p"]].mm.ptes[run.bases["b"]].pfn]
    first.flags["anon_exclusive"], first.attrs["tag"] = True, 3
    run.step(4, steps[4])
    run.step(5, steps[5])
    assert seen[0] == (True, True, 3) and seen[2] == (False, False, 7)
    assert "page has no attribute 'anon_exclusiv'; did you mean 'anon_exclusive'" in seen[1], seen[1]


def test_two_plugins_declaring_the_same_attribute_conflict():
    other = types.ModuleType("other")
    other.policykit_add_attributes = hookimpl(
        lambda: [AttributeSpec("page", "anon_exclusive", bool, False)])
    with pytest.raises(PluginError, match="declared by both"):
        Session(session("anon_exclusive").policy, plugins=[other], autoload=False)


def test_every_hookspec_is_documented():
    for name, fn in inspect.getmembers(specs_module, inspect.isfunction):
        if not name.startswith("policykit_"):
            continue
        doc = " ".join((inspect.getdoc(fn) or "").split())
        assert doc, f"{name} has no docstring"
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"
        opts = getattr(fn, "policykit_spec")
        if opts.get("firstresult"):
            assert "Stops at first non-None result" in doc, name
        assert "Called" in doc, f"{name} does not say when it is called"


def test_wrappers_and_tryfirst_impls_take_part_in_decisions():
    seen = []
    overrider = types.ModuleType("overrider")

    @hookimpl(wrapper=True)
    def policykit_wp_fault(ctx):
        result = yield
        seen.append((ctx.point, result))
        return result

    @hookimpl(tryfirst=True)
    def policykit_fork_pte():          # an impl may take fewer arguments than the spec
        return "copy"

    wrapper = types.ModuleType("wrapper")
    wrapper.policykit_wp_fault = policykit_wp_fault
    overrider.policykit_fork_pte = policykit_fork_pte
    s = Session(session("copy_on_wp").policy, plugins=[wrapper, overrider], autoload=False)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite c b\n"
                      "mprotect c b ro\nmprotect c b rw\n"))
    assert r.metrics["fork_copies"] == 1, "the tryfirst impl answered before the policy"
    assert r.metrics["wp_copies"] == 0
    s = Session(session("copy_on_wp").policy, plugins=[wrapper], autoload=False)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite c b\n"))
    assert seen == [("wp_fault", "copy")] and r.metrics["wp_copies"] == 1


def test_a_plugin_operation_that_raises_is_an_error_for_that_scenario_only(tmp_path):
    """Of two scenarios, the one whose step raises gets an `error` verdict that names the
    plugin and stops there; the next one runs normally."""
    import sys

    mod = tmp_path / "flaky_plugin.py"
    mod.write_text(
        "from policykit import OperationSpec, Param, hookimpl\n"
        "def boom(engine, args):\n"
        "    raise RuntimeError('the device fell off the bus')\n"
        "@hookimpl\n"
        "def policykit_add_operations():\n"
        "    return [OperationSpec('flaky', (Param('process', 'process'),), boom, 'always fails')]\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import flaky_plugin

        session_ = Session(session("copy_on_wp").policy, plugins=[flaky_plugin], autoload=False)
        bad = session_.parse("spawn -> p\nflaky p\nmmap p 1 private -> b\n", "bad.scn")
        good = session_.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\n", "good.scn")
        results = [session_.run(bad), session_.run(good)]
    finally:
        sys.path.remove(str(tmp_path))
    assert results[0].verdict == "error"
    detail = results[0].violations[0].detail
    assert "RuntimeError in operation 'flaky' of flaky_plugin" in detail and "fell off the bus" in detail
    assert [r.status for r in results[0].steps] == ["ok", "error"], "the scenario stops at the error"
    assert results[1].verdict == "ok"


def test_an_oracle_check_that_raises_is_an_error_naming_the_plugin():
    checker = types.ModuleType("broken_checker")

    @hookimpl
    def policykit_oracle_step(oracle, step, outcome, args):
        if step.op == "write":
            raise KeyError("no such cell")

    checker.policykit_oracle_step = policykit_oracle_step
    checker.__file__ = __file__
    s = Session(session("anon_exclusive").policy, plugins=[checker], autoload=False)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nread p b\n"))
    assert r.verdict == "error"
    assert "KeyError in an oracle check of broken_checker" in r.violations[0].detail
    assert [rec.status for rec in r.steps] == ["ok", "ok", "error"]


class _Watcher:
    """Declares the VMA attribute ``watched`` and records which PTEs fork and faults ask
    it about."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    @hookimpl
    def policykit_add_attributes(self):
        from policykit import AttributeSpec
        return [AttributeSpec("vma", "watched", bool, False, "a VMA of the watcher's")]

    @hookimpl
    def policykit_copy_pte(self, engine, src_mm, dst_mm, src_vma, dst_vma, vpn, pte):
        self.asked.append(("fork", vpn))

    @hookimpl
    def policykit_handle_fault(self, engine, proc, vma, vpn, pte, write, unshare):
        self.asked.append(("fault", vpn))


def test_a_plugin_is_asked_about_ptes_of_vmas_it_owns_and_of_vmas_nobody_declared():
    from policykit import Engine, Session, load_policy
    watcher = _Watcher()
    s = Session(load_policy("linux-6.x"), plugins=[watcher])
    e = Engine(s.pm, s.registry)
    p = e.spawn("p")
    mine = e.mmap(p, 1, attrs={"watched": True})
    thp = e.registry.operations["mmap_thp"].apply(e, {"process": p, "pages": 512, "folio": 4}).result
    stray = e.mmap(p, 1, attrs={"undeclared": True})
    e.write(p, [mine, thp, stray])
    e.fork(p, "c")
    # the THP plugin owns 'thp': its PTEs reach the THP plugin only; a VMA attribute no
    # plugin declared reaches every plugin
    assert watcher.asked == [("fault", mine), ("fault", stray), ("fork", mine), ("fork", stray)]


def test_a_plugin_asks_whether_the_policy_declares_a_flag():
    """``engine.declares_flag()``: true for a flag the policy declares (5.19's
    ``anon_exclusive``), false under a policy without it, for a plugin's attribute of
    the same owner, and for another owner's name."""
    tagger = types.ModuleType("tagger")
    tagger.policykit_add_attributes = hookimpl(lambda: [AttributeSpec("page", "tag", int, 7)])
    with_flag = Session(load_policy("linux-5.19"), plugins=[tagger]).start().engine
    without = Session(load_policy("linux-5.9"), plugins=[tagger]).start().engine
    assert with_flag.declares_flag("page", "anon_exclusive")
    assert not without.declares_flag("page", "anon_exclusive")
    assert not with_flag.declares_flag("page", "tag")
    assert not with_flag.declares_flag("mm", "anon_exclusive")
