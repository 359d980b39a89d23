"""``Session.run_many`` takes the steps scenarios begin with once and gives each scenario
the result ``Session.run`` gives it alone: verdicts, violations with their lines,
metrics, warnings, rules, budgets and step records.  ``run_group`` does it for several
policies at once, the others riding along the first's runs while they decide alike."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import session, variant

from policykit.batch import ride_groups, run_group, trie
from policykit.corpus import scenario_files
from policykit.run import Runner
from policykit.testing import session as builtin_session

FORKED = "spawn -> p\nmmap p 2 private -> b\nwrite p b\nfork p -> c\n"


def same(a, b) -> None:
    """``a`` and ``b`` are the same result, to every record."""
    assert (a.scenario.name, a.policy) == (b.scenario.name, b.policy)
    assert a.violations == b.violations
    assert (a.metrics, a.warnings, a.budget_failures, a.rules) == (b.metrics, b.warnings, b.budget_failures, b.rules)
    assert [(r.index, r.step, r.status, r.message) for r in a.steps] == \
        [(r.index, r.step, r.status, r.message) for r in b.steps]
    assert all(r.step is a.scenario.steps[r.index] for r in a.steps)


def parse(s, *texts):
    return [s.parse(text, f"s{n}.scn") for n, text in enumerate(texts)]


@pytest.mark.parametrize("policy", ["linux-5.9", "linux-6.x", "never-copy", "ideal"])
def test_the_built_in_corpus_gives_what_each_run_alone_gives(policy):
    s = builtin_session(policy)
    scenarios = [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))]
    batch = s.run_many(scenarios)
    for scn, r in zip(scenarios, batch, strict=True):
        same(r, s.run(scn))
    assert len(trie(scenarios).scenarios()) == len(scenarios) > 250


def test_common_first_steps_are_taken_once(monkeypatch):
    s = session("copy_on_wp")
    taken = []
    real = Runner.step
    monkeypatch.setattr(Runner, "step", lambda self, i, st: taken.append(st.text) or real(self, i, st))
    scenarios = parse(s, FORKED + "write p b\n", FORKED + "write c b\n", FORKED + "write p b\nread c b\n")
    results = s.run_many(scenarios)
    assert taken == ["spawn -> p", "mmap p 2 private -> b", "write p b", "fork p -> c",
                     "write p b", "read c b", "write c b"]
    for scn, r in zip(scenarios, results):
        same(r, s.run(scn))


def test_a_scenario_ending_where_another_goes_on_sees_none_of_its_steps():
    s = session("never_copy")
    short, long = parse(s, FORKED, FORKED + "write p b\nread c b\n")
    a, b = s.run_many([long, short])
    assert (a.verdict, b.verdict) == ("leak", "ok")
    same(b, s.run(short))
    same(a, s.run(long))


def test_steps_alike_on_other_lines_are_not_shared():
    s = session("never_copy")
    scenarios = parse(s, FORKED + "write p b\nread c b\n", "\n" + FORKED + "write p b\nread c b\n")
    assert len(trie(scenarios).children) == 2
    for scn, r in zip(scenarios, s.run_many(scenarios)):
        same(r, s.run(scn))                     # the violation names its own line
    assert {r.violations[0].line for r in s.run_many(scenarios)} == {6, 7}


def test_an_error_on_the_shared_way_ends_every_scenario_there():
    s = session("copy_on_wp")
    scenarios = parse(s, "spawn -> p\nmmap p 64 private -> b\nwrite p b\nread p b\n",
                      "spawn -> p\nmmap p 64 private -> b\nwrite p b\nfork p -> c\n")
    batch = s.run_many(scenarios, max_pages=10)
    for scn, r in zip(scenarios, batch):
        same(r, s.run(scn, max_pages=10))
        assert r.verdict == "error" and len(r.steps) == 3


def test_a_run_out_of_time_is_run_alone_and_says_so():
    def wp_fault(ctx):
        while True:
            pass
    s = variant("copy_on_wp", "hangs", policykit_wp_fault=wp_fault)
    quiet, hangs = parse(s, FORKED + "read p b\n", FORKED + "write p b\n")
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    a, b = s.run_many([quiet, hangs], timeout=0.3)
    assert time.monotonic() - started < 5
    assert a.verdict == "ok"
    assert [v.detail for v in b.violations] == ["the run took more than 0.3 s (at line 5: 'write p b')"]
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_results_are_told_as_they_come_and_returned_in_order():
    s = session("copy_on_wp")
    scenarios = parse(s, FORKED + "write p b\n", "spawn -> q\n", FORKED + "write c b\n")
    told = []
    results = s.run_many(scenarios, on_result=lambda i, r: told.append((i, r)))
    assert sorted(i for i, _ in told) == [0, 1, 2]
    assert [r.scenario for r in results] == scenarios
    assert all(results[i] is r for i, r in told)


# -- several policies at once ---------------------------------------------------------

def corpus(s):
    return [scn for p in scenario_files([], s.pm) for scn in s.load_all(str(p))]


@pytest.mark.parametrize("names", [["linux-6.x", "ideal", "linux-5.19", "linux-6.2"],
                                   ["linux-5.9", "linux-5.8", "jason-2020-refcount", "never-copy"]])
def test_policies_riding_along_get_what_each_run_alone_gives(names):
    sessions = [builtin_session(n) for n in names]
    assert ride_groups(sessions) == [[0, 1, 2, 3]]
    scenarios = corpus(sessions[0])
    for s, runs in zip(sessions, run_group(sessions, scenarios, False, None, None), strict=True):
        for scn, r in zip(scenarios, runs, strict=True):
            same(r, s.run(scn))


def test_only_policies_with_the_same_flags_and_no_hooks_but_decisions_ride_together():
    a, b, c = (builtin_session(n) for n in ("linux-5.9", "linux-6.x", "ideal"))
    assert ride_groups([a, b, c]) == [[0], [1, 2]]     # plugins read anon_exclusive
    watcher = variant("copy_on_wp", "watcher", policykit_page_added=lambda engine, page, mm, vpn: None)
    twin = variant("copy_on_wp", "twin")
    assert ride_groups([session("copy_on_wp"), watcher, twin]) == [[0, 2], [1]]


def taking(monkeypatch):
    taken = []
    real = Runner.step
    monkeypatch.setattr(Runner, "step", lambda self, i, st: taken.append(st.text) or real(self, i, st))
    return taken


def test_a_rider_deciding_alike_takes_no_step_of_its_own(monkeypatch):
    s, twin = session("copy_on_wp"), variant("copy_on_wp", "twin")
    scn = parse(s, FORKED + "write p b\nread c b\n")
    taken = taking(monkeypatch)
    a, b = run_group([s, twin], scn, False, None, None)
    assert len(taken) == 6
    same(b[0], twin.run(scn[0]))
    assert (a[0].policy, b[0].policy) == ("py-copy-on-wp", "twin")


@pytest.mark.parametrize("wp_fault", [lambda ctx: "reuse", lambda ctx: 1 / 0, lambda ctx: "nonsense"])
def test_a_rider_that_answers_otherwise_falls_off_and_is_run_alone(monkeypatch, wp_fault):
    s, other = session("copy_on_wp"), variant("copy_on_wp", "other", policykit_wp_fault=wp_fault)
    scenarios = parse(s, FORKED + "write p b\nread c b\n", FORKED + "read c b\n")
    taken = taking(monkeypatch)
    mine, theirs = run_group([s, other], scenarios, False, None, None)
    assert len(taken) == 7 + len(theirs[0].steps)   # the one where it fell off, taken again alone
    for scn, r in zip(scenarios, theirs):
        same(r, other.run(scn))
    assert theirs[0].verdict in ("leak", "error") and theirs[1].verdict == "ok"


def test_a_rider_keeps_its_own_rules_and_warnings(tmp_path):
    pol = tmp_path / "warned.pol"
    pol.write_text("policy warned\nextends linux-6.x\n\n"
                   "on wp_fault {\n"
                   "    page.anon_exclusive -> reuse\n"
                   "    otherwise           -> copy [warn \"copied a shared page\"]\n"
                   "}\n")
    base, warned = builtin_session("linux-6.x"), builtin_session(str(pol))
    scn = parse(base, FORKED + "write p b\n")
    (a,), (b,) = run_group([base, warned], scn, False, None, None)
    same(b, warned.run(scn[0]))
    assert b.warnings == ["line 5: wp_fault: copied a shared page"] * 2 and not a.warnings
    assert b.metrics["warnings"] == 2 and a.metrics["warnings"] == 0
    assert b.rules == {"linux-5.19.pol:19": 2, "warned.pol:6": 2}     # fork_pte, then its own
    assert a.rules == {"linux-5.19.pol:19": 2, "linux-5.19.pol:27": 2}


LIMIT = 3                   # what the hooks below read, each from globals of its own


def test_only_hooks_alike_in_code_and_in_what_they_read_are_not_asked_again():
    import types

    from policykit.engine.riders import same_code

    def template(ctx):
        return "copy" if ctx > LIMIT else "share"

    def counting(state):
        def hook(ctx):
            state["n"] = state.get("n", 0) + 1
            return "share"
        return hook

    pure = [types.FunctionType(template.__code__, {"LIMIT": 3}) for _ in range(2)]
    assert same_code(*pure) and pure[0] is not pure[1]
    # a rule two policies inherit compiles at other lines of each
    moved = template.__code__.replace(co_firstlineno=template.__code__.co_firstlineno + 40)
    assert moved != template.__code__ and same_code(pure[0], types.FunctionType(moved, {"LIMIT": 3}))
    assert not same_code(pure[0], types.FunctionType(template.__code__, {"LIMIT": 4}))
    assert not same_code(counting({}), counting({}))   # each keeps a dict of its own


def test_a_rider_that_hangs_costs_the_others_nothing_but_time(monkeypatch):
    def wp_fault(ctx):
        while True:
            pass
    s, hangs = session("copy_on_wp"), variant("copy_on_wp", "hangs", policykit_wp_fault=wp_fault)
    for x in (s, hangs):
        monkeypatch.setattr(x, "timeout", 0.3)
    scenarios = parse(s, FORKED + "write p b\n", FORKED + "read c b\n")
    mine, theirs = run_group([s, hangs], scenarios, False, 0.3, None)
    assert [r.verdict for r in mine] == ["ok", "ok"]
    same(mine[0], s.run(scenarios[0]))
    assert [v.detail for v in theirs[0].violations] == ["the run took more than 0.3 s (at line 5: 'write p b')"]
    assert theirs[1].verdict == "ok"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_traced_hook_calls_keep_every_policy_running_alone(monkeypatch):
    from policykit._manager import TRACE_HOOKS_ENV
    from policykit.run import Session

    monkeypatch.setenv(TRACE_HOOKS_ENV, "1")
    a, b = (Session(session(n).policy, autoload=False) for n in ("copy_on_wp", "never_copy"))
    assert ride_groups([a, b]) == [[0], [1]]
    monkeypatch.delenv(TRACE_HOOKS_ENV)
    a, b = (Session(session(n).policy, autoload=False) for n in ("copy_on_wp", "never_copy"))
    assert ride_groups([a, b]) == [[0, 1]]
