"""A plugin fault never passes as success and never ends a corpus run: whatever a hook
raises or however long it takes, that run gets an ``error`` verdict naming the plugin and
hook (or the step), and the next run goes on.  Only the user's Ctrl-C stops."""

from __future__ import annotations

import signal
import time
import types

import pytest
from conftest import PY_POLICIES, session, variant

from policykit import AttributeSpec, PluginError, Session, hookimpl, load_policy
from policykit import guard
from policykit.cli import main

WRITE_AFTER_FORK = "spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork p -> c\nwrite p b\n"
QUIET = "spawn -> p\nmmap p 1 private -> b\nread p b\n"


def with_plugin(**hooks) -> Session:
    plugin = types.ModuleType("faulty")
    for name, fn in hooks.items():
        setattr(plugin, name, hookimpl(fn))
    return Session(load_policy(str(PY_POLICIES / "copy_on_wp.py")), plugins=[plugin], autoload=False)


def error_of(result) -> str:
    errors = [v.detail for v in result.violations if v.cls == "error"]
    assert result.verdict == "error" and errors, result.verdict
    return errors[0]


@pytest.mark.parametrize("exc", [SystemExit(0), SystemExit(3), GeneratorExit(), RuntimeError("boom"),
                                 RecursionError(), MemoryError()])
def test_anything_a_decision_hook_raises_is_that_runs_error(exc):
    def wp_fault(ctx):
        raise exc
    s = variant("copy_on_wp", "raises", policykit_wp_fault=wp_fault)
    detail = error_of(s.run(s.parse(WRITE_AFTER_FORK)))
    assert "policykit_wp_fault" in detail and type(exc).__name__ in detail
    assert s.run(s.parse(QUIET)).verdict == "ok", "the next run goes on"


def test_a_keyboard_interrupt_from_a_plugin_is_its_fault_but_the_users_stops():
    def wp_fault(ctx):
        raise KeyboardInterrupt
    s = variant("copy_on_wp", "interrupts", policykit_wp_fault=wp_fault)
    with pytest.raises(KeyboardInterrupt):           # a library caller's: it stops
        s.run(s.parse(WRITE_AFTER_FORK))
    previous = signal.getsignal(signal.SIGINT)
    with guard.watch_interrupts():                   # as the CLI does
        assert "KeyboardInterrupt" in error_of(s.run(s.parse(WRITE_AFTER_FORK)))
        with pytest.raises(KeyboardInterrupt):       # the user's Ctrl-C still stops
            signal.raise_signal(signal.SIGINT)
            time.sleep(1)
        assert guard.stops_the_run(KeyboardInterrupt())
    assert signal.getsignal(signal.SIGINT) is previous


def test_faults_in_run_finish_engine_event_and_page_refs_are_error_verdicts():
    def run_finish(result):
        raise RuntimeError("finish broke")

    def engine_event(engine, event):
        if event.kind == "decision":
            raise SystemExit(0)

    def page_refs(machine, page):
        return "lots"

    for hooks, words in (({"policykit_run_finish": run_finish}, "finish broke"),
                         ({"policykit_engine_event": engine_event}, "SystemExit"),
                         ({"policykit_page_refs": page_refs}, "policykit_page_refs")):
        s = with_plugin(**hooks)
        r = s.run(s.parse(WRITE_AFTER_FORK), invariants=True)
        assert words in error_of(r), hooks


def test_an_invariant_break_is_an_error_verdict_not_an_abort():
    def engine_event(engine, event):
        if event.kind == "decision":
            for page in engine.machine.pages.values():
                if not page.zero:
                    page.mapcount += 5
    s = with_plugin(policykit_engine_event=engine_event)
    detail = error_of(s.run(s.parse(WRITE_AFTER_FORK), invariants=True))
    assert detail.startswith("engine invariant broken: ") and "mapcount" in detail
    assert s.run(s.parse(QUIET), invariants=True).verdict == "ok"


def test_a_slow_decision_is_an_error(monkeypatch):
    import policykit.engine.mm as mm
    monkeypatch.setattr(mm, "DECISION_BUDGET", 0.02)

    def wp_fault(ctx):
        time.sleep(0.05)
        return "copy"
    s = variant("copy_on_wp", "slow", policykit_wp_fault=wp_fault)
    assert "a decision may take 0.02 s" in error_of(s.run(s.parse(WRITE_AFTER_FORK)))


def test_a_compiled_policy_is_not_timed_a_plugin_beside_it_is(monkeypatch):
    """A checked policy's cost is bounded: its decisions skip the clock.  A plugin's
    implementation of the same point is still held to the budget."""
    import policykit.engine.mm as mm
    monkeypatch.setattr(mm, "DECISION_BUDGET", -1.0)
    s = Session(load_policy("linux-6.x"))
    assert s.run(s.parse(WRITE_AFTER_FORK)).verdict == "ok"

    plugin = types.ModuleType("beside")
    plugin.policykit_wp_fault = hookimpl(lambda ctx: None)
    s = Session(load_policy("linux-6.x"), plugins=[plugin])
    assert "a decision may take -1 s" in error_of(s.run(s.parse(WRITE_AFTER_FORK)))


def test_a_run_past_its_time_is_an_error_naming_the_step_and_the_next_goes_on():
    def wp_fault(ctx):
        while True:
            pass
    s = variant("copy_on_wp", "hangs", policykit_wp_fault=wp_fault)
    started = time.monotonic()
    r = s.run(s.parse(WRITE_AFTER_FORK), timeout=0.3)
    assert time.monotonic() - started < 5
    assert error_of(r) == "the run took more than 0.3 s (at line 5: 'write p b')"
    assert r.steps[-1].status == "error"
    assert s.run(s.parse(QUIET), timeout=0.3).verdict == "ok"


def test_the_deadline_leaves_no_alarm_behind():
    before = signal.getsignal(signal.SIGALRM)
    with guard.deadline(5):
        pass
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_max_pages_bounds_a_run():
    s = session("copy_on_wp")
    r = s.run(s.parse("spawn -> p\nmmap p 64 private -> b\nwrite p b\n"), max_pages=10)
    assert "more than --max-pages 10" in error_of(r)


def test_a_plugin_that_exits_makes_the_cli_exit_3_not_0(tmp_path, capsys):
    pol = tmp_path / "exits.py"
    source = (PY_POLICIES / "copy_on_wp.py").read_text()
    pol.write_text(source.replace('def policykit_wp_fault(ctx):\n    return "copy"',
                                  "def policykit_wp_fault(ctx):\n    raise SystemExit(0)"))
    scn = tmp_path / "w.scn"
    scn.write_text(WRITE_AFTER_FORK)
    quiet = tmp_path / "q.scn"
    quiet.write_text(QUIET)
    assert main(["run", str(pol), str(scn), str(quiet)]) == 3
    out = capsys.readouterr().out
    assert "SystemExit" in out and "policykit_wp_fault" in out and "1 passed, 1 failed" in out


@pytest.mark.parametrize("name,problem", [("count", "the engine uses 'count'"), ("pfn", "the engine uses"),
                                          ("if", "Python keyword"), ("f_x", "how compiled policies"),
                                          ("_x", "a letter then")])
def test_a_plugin_attribute_cannot_shadow_engine_names(name, problem):
    plugin = types.ModuleType("shadowing")
    plugin.policykit_add_attributes = hookimpl(lambda: [AttributeSpec("page", name, int, 0)])
    with pytest.raises(PluginError, match=problem):
        Session(load_policy(str(PY_POLICIES / "copy_on_wp.py")), plugins=[plugin], autoload=False)


def test_copy_at_fork_no_longer_loops_in_gup():
    """The valid scenario the fuzzing found: a R/O longterm pin of a shared page that a
    child mapped read-only.  There is nothing to unshare in a shared mapping."""
    from policykit.fuzz import _session
    s = _session("copy-at-fork")
    r = s.run(s.parse("spawn -> p1\nmmap p1 1 shared -> r2\nfork p1 -> c3\nmprotect c3 r2 ro\n"
                      "pin c3 r2 longterm -> g5\n"), invariants=True)
    assert r.verdict == "ok"


def test_a_policy_asking_gup_for_faults_for_ever_makes_gup_fail_with_the_reason():
    """The engine never loops on a policy's answer: a bounded retry, then GUP fails and
    the oracle says why (a policy's mistake is a verdict, not an error)."""
    def gup(ctx):
        return "unshare_fault"
    s = variant("copy_on_wp", "loops", policykit_gup=gup)
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\npin p b -> r\n"))
    [v] = r.violations
    assert v.cls == "gup-failed" and "livelock" in v.detail
    assert "asked for 4 faults at page" in v.detail and "loop for ever" in v.detail


def test_a_python_policy_exiting_on_import_exits_3(tmp_path, capsys):
    pol = tmp_path / "exits_on_import.py"
    pol.write_text("raise SystemExit(0)\n")
    assert main(["run", str(pol), str(PY_POLICIES.parent.parent / "policykit/corpus/cow-basic.scn")]) == 3
    assert "a plugin raised SystemExit(0)" in capsys.readouterr().err
