"""explore and diverge: the search rediscovers the history's bugs as shrunk scenarios,
tells policies apart, and its witnesses replay exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policykit import load_policy
from policykit.cli import main
from policykit.explore import Bounds, Space, diverge, explore, replay, starts
from policykit.explore.canonical import canonical
from policykit.explore.shrink import shrink
from policykit.explore.space import Steps
from policykit.explore.visited import FingerprintSet
from policykit.run import Session

_sessions: dict[str, Session] = {}


def session(name: str) -> Session:
    if name not in _sessions:
        _sessions[name] = Session(load_policy(name))
    return _sessions[name]


def run_explore(policy: str, depth: int, ops: tuple[str, ...] = (), jobs: int = 1,
                domains: tuple[str, ...] = (), **kw):
    s = session(policy)
    bounds = Bounds(depth=depth)
    space = Space.build(s.registry, bounds, ops, domains)
    return explore(s, space, starts([s], bounds), jobs=jobs, **kw)


def after_start(finding) -> list[str]:
    return [ln.split(" ->")[0] for ln in finding.lines[finding.start_lines:]]


def find(res, cls: str, point: str | None = None):
    hits = [f for f in res.findings if f.cls == cls and (point is None or f.point == point)]
    assert hits, f"no {cls} finding in {[(f.cls, f.point) for f in res.findings]}"
    return hits[0]


# -- the history, rediscovered -----------------------------------------------------------

def test_never_copy_leaks_after_write_fork_write():
    f = find(run_explore("never-copy", 3), "leak", "wp_fault")
    assert f.steps == 3
    assert after_start(f) == ["write p buf", "fork p", "write p buf"]


def test_linux_5_9_rc4_loses_the_rdma_pin_after_fork_and_a_parent_write():
    res = run_explore("linux-5.9-rc4", 4, ("write", "fork", "gup", "dma_write", "dma_read"))
    f = find(res, "pin-incoherent", "dma_write")
    assert f.steps == 4
    assert after_start(f) == ["gup p buf pin write", "fork p", "write p buf", "dma_write r1"]


def test_linux_5_7_vmsplice_child_snoop():
    res = run_explore("linux-5.7", 6, ("write", "fork", "vmsplice", "munmap", "dma_read"))
    f = find(res, "leak")
    assert f.steps == 6
    steps = after_start(f)
    # one process puts the shared page in a pipe; COW then breaks the wrong way and the
    # other one's later write lands in the page the pipe still reads
    assert steps[:2] == ["write p buf", "fork p"]
    assert steps[2].startswith("vmsplice ") and steps[-1] == "dma_read r1"
    verdicts = replay([session("linux-5.7"), session("linux-5.8")], f.lines)
    assert verdicts[-1][0].classes == {"leak"} and not verdicts[-1][1].classes


def test_linux_5_9_io_uring_fixed_buffer_after_mprotect():
    # cow.c's "R/O-mapping a page registered as io_uring fixed buffer"; without fork in
    # the operations (a shorter clear_refs witness exists: the corpus's clear-refs-pinned),
    # and with the prototype's GUP calls (no FOLL_FORCE)
    ops = ("write", "gup", "mprotect", "dma_write")
    res = run_explore("linux-5.9", 5, ops, domains=("gup.flags=-,write,longterm,write+longterm",))
    f = find(res, "pin-incoherent", "wp_fault")
    assert f.steps == 5
    assert after_start(f) == ["gup p buf pin write", "mprotect p buf ro", "mprotect p buf rw",
                              "write p buf", "dma_write r1"]
    # a FOLL_FORCE write GUP takes the same write fault on the read-only PTE, a step sooner
    f = find(run_explore("linux-5.9", 4, ops), "pin-incoherent", "wp_fault")
    assert after_start(f) == ["gup p buf pin write", "mprotect p buf ro", "gup p buf get write force",
                              "dma_write r1"]


def test_linux_5_9_read_only_pin_of_a_page_shared_with_a_child():
    res = run_explore("linux-5.9", 5, ("write", "fork", "gup", "dma_write", "dma_read"))
    f = find(res, "pin-incoherent", "wp_fault")
    assert f.steps == 5
    assert after_start(f) == ["write p buf", "fork p", "gup p buf pin", "write p buf", "dma_read r1"]


def test_linux_4_8_dirty_cow_with_the_file_plugins_operations():
    res = run_explore("linux-4.8", 4, ("gup", "dma_write", "file"))
    f = find(res, "corrupt-file")
    assert f.steps == 4
    assert after_start(f) == ["create_file f 1", "mmap_file p f 1 ro", "gup p m1 get write force zap_race",
                              "dma_write r1"]
    fixed = run_explore("linux-5.7", 4, ("gup", "dma_write", "file"))
    assert not [x for x in fixed.findings if x.cls == "corrupt-file"]


def test_cve_2022_2590_with_userfaultfd_minor_faults():
    """4.9's FOLL_COW took any dirty read-only PTE for its own COWed page: one that
    UFFDIO_CONTINUE maps is the page cache page (5.19 -> corrupt-file; fixed in 6.0)."""
    ops = ("gup", "dma_write", "file", "uffd")
    assert not [x for x in run_explore("linux-5.19", 4, ops).findings if x.cls == "corrupt-file"]
    f = find(run_explore("linux-5.19", 5, ops), "corrupt-file")
    assert f.steps == 5
    assert after_start(f) == ["create_file f 1", "mmap_file p f 1 ro", "uffd_register p m1 minor",
                              "gup p m1 get write force zap_race", "dma_write r1"]
    assert not [x for x in run_explore("linux-6.x", 5, ops).findings if x.cls == "corrupt-file"]


# -- what the search reports ---------------------------------------------------------------

def test_the_search_goes_on_after_a_violation_and_reports_each_distinct_one():
    res = run_explore("never-copy", 3)
    keys = [(f.cls, f.point) for f in res.findings]
    assert len(keys) == len(set(keys)) >= 3
    assert res.stats.exhaustive and res.stats.depth == 3


def test_a_finding_is_put_down_to_the_last_decision_about_its_pages():
    # the short-term R/O pin of an untouched page pins the zero page; decisions about
    # the process's other pages in between (clear_refs) led to nothing the device reads
    lines = ["spawn -> p", "mmap p 2 private -> buf", "gup p buf[0] pin -> r1", "write p buf[0]",
             "write p buf[1]", "clear_refs p", "dma_read r1"]
    verdicts = replay([session("linux-6.x")], lines)
    assert [v[0].point for v in verdicts if v[0].classes] == ["gup"]
    assert verdicts[-1][0].classes == {"pin-incoherent"}
    # and a step that asks a decision of its own is put down to it
    lines = ["spawn -> p", "mmap p 1 private -> buf", "gup p buf get write -> r1", "fork p -> c1", "dma_write r1"]
    assert replay([session("linux-6.x")], lines)[-1][0].point == "dma_write"


def test_the_same_wrong_value_seen_again_is_no_new_finding():
    # O_DIRECT after fork: the device's write leaks into the child, once; the child's
    # exit (which audits what it takes away) and a device reading the same page through
    # the child's own reference see that same value again
    start = ["spawn -> p", "mmap p 1 private -> buf", "gup p buf get write -> r1", "fork p -> c1", "dma_write r1"]
    for more in (["exit c1"], ["gup c1 buf get -> r2", "dma_read r2"]):
        verdicts = replay([session("linux-6.x")], start + more)
        assert [sorted(v[0].classes) for v in verdicts[len(start) - 1:]] == [["leak"]] + [[]] * len(more)


def test_ignore_known_hides_what_every_kernel_does():
    res = run_explore("linux-6.x", 4, ("write", "fork", "gup", "dma_write", "dma_read"), ignore=["known"])
    assert res.findings == []
    assert res.hidden["ignore"] >= 2


def test_ignore_by_class_and_the_baseline_count_what_they_hide():
    res = run_explore("never-copy", 3, ignore=["pin-incoherent"])
    assert all(f.cls != "pin-incoherent" for f in res.findings)
    s, base = session("never-copy"), session("linux-6.x")
    bounds = Bounds(depth=3)
    space = Space.build(s.registry, bounds)
    alone = explore(s, space, starts([s], bounds))
    res = explore(s, space, starts([s, base], bounds), baseline=base)
    # the leak through a FOLL_GET reference after fork is linux-6.x's too (O_DIRECT):
    # with the baseline, the leak reported after a device write is the pinned one
    assert find(alone, "leak", "dma_write").lines[2] == "gup p buf get write -> r1"
    assert find(res, "leak", "dma_write").lines[2] == "gup p buf pin write -> r1"
    assert ("leak", "wp_fault") in [(f.cls, f.point) for f in res.findings]


def test_bounds_that_stop_the_search_are_said_plainly():
    s = session("linux-5.9")
    bounds = Bounds(depth=5, max_states=500)
    res = explore(s, Space.build(s.registry, bounds), starts([s], bounds))
    assert not res.stats.exhaustive
    assert "not exhaustive: --max-states 500 reached" in res.stats.describe_stop()
    assert res.stats.left > 0


@pytest.mark.parametrize("jobs, keep", [(2, 200_000), (1, 50), (2, 50)])
def test_the_same_witnesses_whatever_the_workers_and_the_states_kept_in_memory(jobs, keep):
    ops = ()
    one = run_explore("linux-5.9", 4, ops)
    other = run_explore("linux-5.9", 4, ops, jobs=jobs, keep=keep)
    assert [(f.cls, f.point, f.lines) for f in one.findings] == [(f.cls, f.point, f.lines) for f in other.findings]
    assert (one.stats.distinct, one.stats.generated) == (other.stats.distinct, other.stats.generated)


# -- diverge -------------------------------------------------------------------------------

def run_diverge(names, depth=4, ops=(), cost=False, domains=(), jobs=1):
    sessions = [session(n) if not isinstance(n, Session) else n for n in names]
    bounds = Bounds(depth=depth)
    space = Space.build(sessions[0].registry, bounds, ops, domains)
    return diverge(sessions, space, starts(sessions, bounds), cost, jobs)


def test_diverge_finds_the_2020_rdma_case():
    res = run_diverge(["linux-5.9-rc4", "linux-5.9"], 3)
    assert res.what == "verdict"
    assert [ln.split(" ->")[0] for ln in res.lines[res.start_lines:]] == [
        "gup p buf pin write", "fork p", "dma_write r1"]


@pytest.mark.parametrize("names, depth, cost, jobs", [
    (["linux-5.9-rc4", "linux-5.9"], 3, False, 1),                 # a verdict apart at depth 3
    (["linux-6.2", "linux-6.15", "ideal"], 3, True, 1),            # costs, three policies
    (["linux-6.x", "linux-6.x"], 3, False, 1),                     # nothing: exhaustive
    (["linux-6.2", "linux-6.15"], 4, False, 2),                    # levels shared by workers
])
def test_policies_riding_along_one_run_diverge_as_if_each_ran_apart(monkeypatch, names, depth, cost, jobs):
    from policykit.engine import riders

    ridden = run_diverge(names, depth, cost=cost, jobs=jobs)
    monkeypatch.setattr(riders, "why_not", lambda *args: "told not to")
    apart = run_diverge(names, depth, cost=cost, jobs=jobs)
    assert (ridden.lines, ridden.what) == (apart.lines, apart.what)
    assert (ridden.stats.distinct, ridden.stats.generated) == (apart.stats.distinct, apart.stats.generated)


def test_a_baseline_riding_along_hides_what_it_hid_apart(monkeypatch):
    from policykit.engine import riders

    s, base = session("linux-6.2"), session("linux-6.x")
    bounds = Bounds(depth=3)
    space = Space.build(s.registry, bounds)

    def found():
        res = explore(s, space, starts([s, base], bounds), baseline=base)
        return [(f.cls, f.point, f.lines) for f in res.findings], res.hidden, res.stats.distinct

    ridden = found()
    monkeypatch.setattr(riders, "why_not", lambda *args: "told not to")
    assert ridden == found() and ridden[1]


def test_a_rider_that_answers_otherwise_takes_the_step_again_alone():
    from policykit.explore.search import ride, take

    sessions = [session("linux-5.9-rc4"), session("linux-5.9")]
    node = ride(sessions, starts(sessions, Bounds(depth=3))[0].node)
    assert node[1] is None and node[0].engine.riders
    lines = ["gup p buf pin write -> r1", "fork p -> c1", "dma_write r1"]
    scn = sessions[0].parse("spawn -> p\nmmap p 1 private -> buf\n" + "\n".join(lines) + "\n", "w.scn")
    for i, step in enumerate(scn.steps[2:], 2):
        node, verdicts = take(node, step, i)
        if step.op == "gup":
            assert node[1] is None                  # both grab the page and pin it
    assert node[1] is not None and node[1].session is sessions[1] and node[0].engine.riders is None
    assert node[1].engine.pm is sessions[1].pm
    assert verdicts[0].classes != verdicts[1].classes      # 5.9 copied at fork, rc4 did not
    assert [v.classes for v in verdicts] == [v.classes for v in replay(sessions, scn_lines(scn))[-1]]


def scn_lines(scn):
    return [st.text for st in scn.steps]


def test_diverge_linux_5_9_and_5_19():
    res = run_diverge(["linux-5.9", "linux-5.19"], 4, jobs=2)
    assert res.lines is not None and res.what == "verdict"
    verdicts = replay([session("linux-5.9"), session("linux-5.19")], res.lines)
    assert verdicts[-1][0].classes != verdicts[-1][1].classes


def test_diverge_cost_finds_the_many_references_false_positive_once_the_domain_reaches_the_bias():
    names = ["jason-2020-refcount", "linus-2020-mapcount"]
    narrow = run_diverge(names, 3, ("write", "fork", "fork_children"), cost=True)
    assert narrow.lines is None
    wide = run_diverge(names, 3, ("write", "fork", "fork_children"), cost=True,
                       domains=["fork_children.count=1024"])
    assert wide.what == "copies"
    assert any(ln.startswith("fork_children p 1024") for ln in wide.lines)


def test_diverge_of_a_policy_and_itself_or_its_formatted_text_finds_nothing(tmp_path):
    from policykit import dsl
    from policykit.dsl.fmt import format_policy

    assert run_diverge(["linux-5.9", "linux-5.9"], 3).lines is None
    text, filename = dsl.read_policy("linux-5.19")
    path = tmp_path / "linux-5.19.pol"
    path.write_text(format_policy(text, filename))
    formatted = Session(load_policy(str(path)))
    assert run_diverge([session("linux-5.19"), formatted], 3).lines is None


# -- pieces ----------------------------------------------------------------------------------

def test_shrinking_a_padded_witness_gives_the_minimal_one():
    s = session("never-copy")
    minimal = ["spawn -> p", "mmap p 1 private -> buf", "write p buf", "fork p -> c1", "write p buf"]
    padded = ["spawn -> p", "mmap p 2 private -> buf", "spawn -> q", "mmap q 1 private -> other",
              "write q other", "read p buf[1]", "fork q -> c9", "write p buf[1]", "clear_refs q",
              "gup q other pin longterm fast -> r7", "write p buf", "read p buf", "fork p -> c5",
              "madvise q other dontfork", "dma_read r7", "write p buf[1]", "unpin r7", "exit c9",
              "write p buf[0]", "read c5 buf"]
    assert len(padded) == 20

    def holds(lines):
        verdicts = replay([s], lines)
        return verdicts is not None and any("leak" in v[0].classes and v[0].point == "wp_fault" for v in verdicts)

    assert holds(padded)
    assert shrink(padded, holds) == [ln.replace("c1", "c1") for ln in minimal]
    assert shrink(minimal, holds) == minimal


def test_canonical_form_renames_values_pids_and_folds_what_cannot_be_seen_again():
    def state(lines, policy="linux-6.x"):
        s = session(policy)
        r = s.start()
        from policykit.explore import parse_lines
        for i, step in enumerate(parse_lines(s, lines).steps):
            r.step(i, step)
        return canonical([r])

    base = ["spawn -> p", "mmap p 1 private -> buf"]
    # a value overwritten is gone: one write or two leave the same state
    assert state(base + ["write p buf"]) == state(base + ["write p buf", "write p buf"])
    # an exited process leaves nothing behind
    assert state(base + ["fork p -> c", "exit c"]) == state(base)
    # but one that shared a page left it write-protected, not exclusive
    assert state(base + ["write p buf", "fork p -> c", "exit c"]) != state(base + ["write p buf"])
    # interchangeable processes fold: who copied and who kept the page does not matter
    shared = base + ["write p buf", "fork p -> c"]
    assert state(shared + ["write c buf"]) == state(shared + ["write p buf"])
    assert state(shared + ["write c buf"]) != state(shared)
    # FOLL_LONGTERM, recorded by a reference, tells apart only a short-term R/O pin of the
    # zero page (explore's known ones): no decision reads a reference's flags
    written = base + ["write p buf"]
    assert state(written + ["gup p buf pin write longterm -> r"]) == state(written + ["gup p buf pin write -> r"])
    assert state(written + ["gup p buf pin longterm -> r"]) == state(written + ["gup p buf pin -> r"])
    assert state(written + ["gup p buf get longterm -> r"]) == state(written + ["gup p buf get -> r"])
    zero_pin = base + ["gup p buf pin -> r"]       # before 5.19 a R/O pin holds the zero page
    assert state(zero_pin, "linux-5.9") != state(base + ["gup p buf pin longterm -> r"], "linux-5.9")
    assert state(zero_pin, "linux-5.9") == state(base + ["gup p buf pin -> r", "read p buf"], "linux-5.9")


def test_fingerprint_set():
    fs = FingerprintSet(4)
    values = [i * 0x9E3779B97F4A7C15 & (2**64 - 1) for i in range(1, 10_000)] + [0]
    assert all(fs.add(v) for v in values)
    assert not any(fs.add(v) for v in values)
    assert len(fs) == len(values) and all(v in fs for v in values)
    assert fs.nbytes <= 32 * len(values)


# -- the command line ---------------------------------------------------------------------------

def test_a_witness_written_by_explore_replays_with_policykit_run(tmp_path, capsys):
    out = tmp_path / "found"
    code = main(["explore", "linux-5.9-rc4", "--depth", "4", "--ops", "write,fork,gup,dma_write",
                 "--out", str(out), "--format", "json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "policykit.explore/1" and report["stats"]["exhaustive"]
    assert report["findings"]
    for f in report["findings"]:
        text = Path(f["file"]).read_text()
        assert "tags found-by-explore" in text and "policykit explore linux-5.9-rc4" in text
        assert main(["run", "linux-5.9-rc4", f["file"], "--format", "json"]) == 0
        run = json.loads(capsys.readouterr().out)["results"][0]
        assert " ".join(run["verdict"]) == f["verdict"]
        # every built-in policy's verdict is stated, and met
        assert main(["score", "linux-6.x", "--corpus", f["file"]]) == 0
        capsys.readouterr()


def test_explore_text_output_names_the_steps_rules_and_counts(capsys):
    assert main(["explore", "never-copy", "--depth", "3", "--ops", "write,fork"]) == 1
    out = capsys.readouterr().out
    assert "[1] leak after wp_fault: 3 steps from the start" in out
    assert "wp_fault@1: reuse [never-copy.pol:" in out
    assert "1:2/2" in out                          # pfn:refcount/mapcount
    assert "c1:buf[0] (audit) saw data written outside its memory" in out
    assert "exhaustive to depth 3" in out


def test_nothing_found_exits_0(capsys):
    assert main(["explore", "linux-6.x", "--depth", "3", "--ops", "write,fork,read"]) == 0
    assert "0 distinct violations found" in capsys.readouterr().out


def test_diverge_prints_the_traces_side_by_side(tmp_path, capsys):
    code = main(["diverge", "linux-5.9-rc4", "linux-5.9", "--depth", "3", "--out", str(tmp_path)])
    assert code == 1
    out = capsys.readouterr().out
    assert "fork_pte: share" in out and "fork_pte: copy" in out
    scn = next(tmp_path.glob("*.scn")).read_text()
    assert "expect linux-5.9-rc4: leak" in scn and "expect linux-5.9: ok" in scn


@pytest.mark.parametrize("argv, message", [
    (["explore", "linux-5.9", "--ops", "wirte"], "unknown operation 'wirte'"),
    (["explore", "linux-5.9", "--variants", "swaped"], "unknown variant 'swaped'"),
    (["explore", "linux-5.9", "--domain", "fork_children.cuont=3"], "has no parameter 'cuont'"),
    (["explore", "linux-5.9", "--domain", "gup.flags=write+lognterm"], "unknown flag 'lognterm'"),
    (["explore", "linux-5.9", "--ignore", "leek"], "not a violation class nor a step pattern"),
    (["diverge", "linux-5.9"], "two policies or more"),
])
def test_bad_input_is_a_usage_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_operation_suggests_the_right_one(capsys):
    assert main(["explore", "linux-5.9", "--ops", "+vmsplcie"]) == 2
    assert "vmsplice" in capsys.readouterr().err


def test_ignore_patterns_match_steps_in_order_with_guards():
    from policykit.explore.known import Ignore

    rules = Ignore(["gup * get write*; fork *; dma_write *", "!write *; gup * pin; dma_read *"],
                   ["leak", "pin-incoherent"])
    start = ["spawn -> p", "mmap p 1 private -> buf"]
    assert rules.matches(start + ["gup p buf get write -> r1", "write p buf", "fork p -> c1", "dma_write r1"], 2)
    assert not rules.matches(start + ["fork p -> c1", "gup p buf get write -> r1", "dma_write r1"], 2)
    assert rules.matches(start + ["gup p buf pin -> r1", "write p buf", "dma_read r1"], 2)
    # the guard: a write before the pin means the pin did not take the zero page
    assert not rules.matches(start + ["write p buf", "gup p buf pin -> r1", "write p buf", "dma_read r1"], 2)
    # '-> NAME' is not part of what is matched; 'pin longterm' is not 'pin'
    assert not rules.matches(start + ["gup p buf pin longterm -> r1", "write p buf", "dma_read r1"], 2)


def test_start_from_a_variant_or_a_scenario(tmp_path):
    s = session("linux-5.9")
    bounds = Bounds(depth=3)
    swapped = starts([s], bounds, ["swapped"])
    assert [st.variant for st in swapped] == ["swapped"]
    assert swapped[0].lines[-1] == "pageout p buf"
    scn = tmp_path / "start.scn"
    scn.write_text("scenario start\nspawn -> parent\nmmap parent 1 private -> mem\nwrite parent mem\n"
                   "fork parent -> child\n")
    [start] = starts([s], bounds, from_path=str(scn))
    res = explore(s, Space.build(s.registry, bounds, ("write", "gup", "dma_read")), [start])
    # from a page shared with a child, a read-only pin and a parent write break coherence
    f = find(res, "pin-incoherent", "wp_fault")
    assert f.lines[:4] == start.lines and f.start_lines == 4
    assert after_start(f) == ["gup parent mem pin", "write parent mem", "dma_read r1"]


def test_first_stops_at_a_shortest_violation_with_the_default_bounds(capsys):
    assert main(["explore", "never-copy", "--first", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    [f] = report["findings"]
    assert f["steps"] == 3 and report["stats"]["depth"] == 3
    assert report["stats"]["stopped"] == "stopped at the first finding"


def test_the_steps_cached_by_shape_are_those_of_each_state():
    s = session("linux-5.9")
    bounds = Bounds(depth=3, pages=2)
    space = Space.build(s.registry, bounds)
    level = [starts([s], bounds)[0].node]
    checked = 0
    for depth in range(1, 4):
        nxt = []
        for node in level[:300]:
            cached = space.steps(node[0], depth)
            fresh = Steps(space.uncached_steps(node[0], depth))
            assert [st.text for st in cached] == [st.text for st in fresh]
            assert (cached.twin, cached.differ, cached.probed) == (fresh.twin, fresh.differ, fresh.probed)
            checked += 1
            from policykit.explore.search import take
            nxt.extend(take(node, step, depth)[0] for step in space.steps(node[0], depth))
        level = nxt
    assert checked > 300


def _page_steps(tried, step):
    """The steps among ``tried`` that do what ``step`` does to one page of its region."""
    name, lo, hi = step.params["region"]
    rest = {k: v for k, v in step.params.items() if k != "region"}
    return [t for t in tried if t.op == step.op and t.params["region"][0] == name
            and lo <= t.params["region"][1] and t.params["region"][1] + 1 == t.params["region"][2] <= hi
            and {k: v for k, v in t.params.items() if k != "region"} == rest]


@pytest.mark.parametrize("policy", ["linux-6.x", "linux-5.9"])
def test_a_region_step_not_tried_reaches_a_state_the_search_reaches_anyway(policy):
    """A read, mprotect or madvise the search leaves out (it changes nothing, or does to a
    single page what that page's own step does) reaches its parent's state or that step's,
    and tells nothing: taken anyway from every state of the first three levels on two
    pages, each one left out does."""
    from policykit.explore.canonical import fingerprint
    from policykit.explore.search import take
    from policykit.explore.space import _regions, _step

    s = session(policy)
    bounds = Bounds(depth=3, pages=2)
    space = Space.build(s.registry, bounds)
    ops = s.registry.operations
    tries = [("read", {})] + [("mprotect", {"prot": p}) for p in ("ro", "rw")] + \
        [("madvise", {"advice": a}) for a in ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed")]
    level = [starts([s], bounds)[0].node]
    seen = {fingerprint(level[0])}
    left_out = {"nothing": 0, "a page's": 0}
    for depth in range(1, 4):
        nxt = []
        for node in level:
            runner = node[0]
            tried = space.steps(runner, depth)
            texts = {st.text for st in tried}
            here = fingerprint(node)
            for name, pid in runner.pids.items():
                if name in runner.gone or not runner.engine.machine.processes[pid].alive:
                    continue
                for region in _regions(runner, name):
                    for op, extra in tries:
                        step = _step(ops[op], {"process": name, "region": region, **extra}, None, depth,
                                     runner.sizes)
                        if step.text in texts:
                            continue
                        child, (verdict,) = take(node, step, depth)
                        assert not verdict.classes, f"{step.text} left out, but it tells {verdict.classes}"
                        fp = fingerprint(child)
                        if fp == here:
                            left_out["nothing"] += 1
                            continue
                        assert fp in {fingerprint(take(node, t, depth)[0]) for t in _page_steps(tried, step)}, \
                            f"{step.text} left out, but reaches a state of its own"
                        left_out["a page's"] += 1
            for step in tried:
                child = take(node, step, depth)[0]
                if (fp := fingerprint(child)) not in seen:
                    seen.add(fp)
                    nxt.append(child)
        level = nxt
    assert min(left_out.values()) > 50, left_out


def test_a_device_read_is_judged_on_the_state_itself_as_on_a_copy():
    """A dma_read changes nothing, so the search judges it on the state itself: the same
    verdict as on a copy (a stale read's pin-incoherent included), and the state, its
    violations, counters and place as they were."""
    from policykit.explore.canonical import fingerprint
    from policykit.explore.search import _judge_in_place, take

    s = session("linux-6.x")
    bounds = Bounds(depth=3)
    space = Space.build(s.registry, bounds, ("write", "fork", "gup", "dma_write", "dma_read"))
    level = [starts([s], bounds)[0].node]
    told = judged = 0
    for depth in range(1, 4):
        nxt = []
        for node in level:
            r = node[0]
            for step in space.steps(r, depth):
                if step.op == "dma_read":
                    o = r.oracle
                    before = (fingerprint(node), list(o.violations), o._step, o._line, o.audited,
                              dict(r.engine.metrics))
                    verdict = _judge_in_place(r, step, depth, ())
                    assert verdict == take(node, step, depth)[1][0]
                    assert before == (fingerprint(node), o.violations, o._step, o._line, o.audited, r.engine.metrics)
                    judged += 1
                    told += bool(verdict.classes)
                else:
                    nxt.append(take(node, step, depth)[0])
        level = nxt
    assert judged > 500 and told > 0, (judged, told)


def _one_at_a_time(monkeypatch):
    """Each step's copy made just before it, each child's fingerprint just after it."""
    from policykit.explore import search as search_mod
    monkeypatch.setattr(search_mod, "BATCH_PAGES", 0)
    monkeypatch.setattr(search_mod._Ahead, "pop", lambda self, i: None)


@pytest.mark.parametrize("policies, variants, batch", [
    (("linux-5.9",), (), 4096), (("linux-5.9",), (), 20), (("linux-5.9",), ("thp",), 600),
    (("linux-5.9-rc4", "linux-5.9"), (), 4096),      # diverge's: 5.9 rides along, then goes alone
    (("linux-5.9", "linux-5.19"), (), 4096),         # diverge's: two runs
])
def test_steps_taken_a_batch_at_a_time_reach_and_judge_what_one_at_a_time_does(monkeypatch, policies, variants,
                                                                                batch):
    """The search copies a state for several of its steps before taking them and takes
    the children's fingerprints after them: each step still reaches, from its state as it
    was, what it reaches alone, with the same verdicts, in the same order; and no more
    than a batch's pages of copies wait (a THP's state: one at a time)."""
    from policykit.explore import search as search_mod
    from policykit.explore.search import _Ahead, fingerprinted, ride, transitions, weight

    sessions = [session(name) for name in policies]
    s = sessions[0]
    bounds = Bounds(depth=3)
    space = Space.build(s.registry, bounds, ("write", "fork", "gup", "dma_write", "dma_read", "mprotect", "munmap"))

    def level(depth, nodes, record):
        nxt = []
        for node in nodes:
            steps = space.steps(node[0], depth)
            for i, step, child, verdicts, twin, fp in fingerprinted(transitions(node, steps, depth)):
                record.append((i, step.text, twin, fp, [(v.classes, v.point) for v in verdicts]))
                if child is not None:
                    nxt.append(child)
        return nxt

    waiting = []
    pop = _Ahead.pop

    def counting(self, i):
        copy = pop(self, i)
        waiting.append(len(self.made) + (copy is not None))
        return copy
    monkeypatch.setattr(search_mod, "BATCH_PAGES", batch)
    monkeypatch.setattr(_Ahead, "pop", counting)
    start = ride(sessions, starts(sessions, bounds, variants)[0].node)
    batched: list = []
    nodes = [start]
    depths = (1, 2) if variants else (1, 2, 3)        # (a THP's states are heavy)
    for depth in depths:
        nodes = level(depth, nodes, batched)
    assert max(waiting) > 1 if not variants else max(waiting) == 1
    assert max(waiting) <= max(1, batch // weight(start))
    with monkeypatch.context() as m:
        _one_at_a_time(m)
        alone: list = []
        nodes = [start]
        for depth in depths:
            nodes = level(depth, nodes, alone)
    assert len(batched) > (50 if variants else 200) and batched == alone
    assert variants or any(classes for *_, verdicts in batched for classes, _ in verdicts)  # violations too


def test_a_flag_no_policy_mentions_is_not_tried(tmp_path):
    from policykit import Policy, load_policy

    s = session("linux-6.x")
    gup = s.registry.operations["gup"]
    flags = next(p for p in gup.params if p.name == "flags")
    plain = Space.build(s.registry, Bounds())
    pruned = Space.build(s.registry, Bounds(), policies=[s.policy])
    assert "fast" not in s.policy.mentions
    assert any("fast" in f for f in plain.domain(gup, flags))
    assert not any("fast" in f for f in pruned.domain(gup, flags))
    assert set(pruned.domain(gup, flags)) == {f - {"fast"} for f in plain.domain(gup, flags)}
    # a policy that mentions it, or a Python policy (anything), keeps it
    reads_fast = tmp_path / "reads-fast.pol"
    reads_fast.write_text("policy reads-fast\nextends linux-6.x\non gup {\n    foll.fast and foll.pin -> grab\n"
                          "    otherwise -> grab\n}\n")
    fast_policy = load_policy(str(reads_fast))
    assert {"fast", "pin", "refcount"} <= fast_policy.mentions, "names read in its own file and its parents'"
    assert any("fast" in f for f in Space.build(s.registry, Bounds(), policies=[fast_policy]).domain(gup, flags))
    python = Policy("py", object(), "x.py")
    assert any("fast" in f for f in Space.build(s.registry, Bounds(), policies=[s.policy, python])
               .domain(gup, flags))
    # and the search finds the same on the default operations
    bounds = Bounds(depth=3)
    a = explore(s, Space.build(s.registry, bounds), starts([s], bounds))
    b = explore(s, Space.build(s.registry, bounds, policies=[s.policy]), starts([s], bounds))
    assert [(f.cls, f.point, f.lines) for f in a.findings] == [(f.cls, f.point, f.lines) for f in b.findings]
    assert b.stats.generated < a.stats.generated


def test_a_region_partly_unmapped_is_not_named_whole_from_the_cache():
    """A 1-page mapping and a 2-page one with its second page unmapped look alike but for
    the region's size: the cached steps must still name the page, not the region."""
    from policykit.scenario import scenario_from_text
    s = session("linux-6.x")
    space = Space.build(s.registry, Bounds(pages=2), ops=["+pin"])

    def state(text):
        r = s.start()
        for i, st in enumerate(scenario_from_text(text, "x.scn", s.registry).steps):
            r.step(i, st)
        return r

    one = state("spawn -> p\nmmap p 1 -> buf\n")
    two = state("spawn -> p\nmmap p 2 -> buf\nmunmap p buf[1]\n")
    assert "pin p buf -> r1" in [st.text for st in space.steps(one, 4)]
    texts = [st.text for st in space.steps(two, 4)]
    assert "pin p buf[0] -> r1" in texts and "pin p buf -> r1" not in texts


def test_a_gup_s_nearest_twin_comes_first():
    """A gup with the zap race and FOLL_FORCE is first the twin of the same call with
    FOLL_FORCE alone (on a read-only VMA the only one there is), then of the plain one."""
    s = session("linux-6.x")
    bounds = Bounds(depth=1)
    space = Space.build(s.registry, bounds, ("gup",))
    steps = space.steps(starts([s], bounds)[0].node[0], 1)
    texts = [st.text for st in steps]
    i = texts.index("gup p buf get write force zap_race -> r1")
    assert [texts[j] for j in steps.twin[i]] == ["gup p buf get write force -> r1", "gup p buf get write -> r1"]
    assert steps.differ[i] == (frozenset({"zap_race"}), frozenset({"force", "zap_race"}))


def _no_twins(monkeypatch):
    """Every step taken: as before twins were known."""
    from policykit.explore import space as space_mod
    init = space_mod.Steps.__init__

    def plain(self, steps, keys=None, twins=None):
        init(self, steps, keys, twins)
        self.twin = [None] * len(self)
        self.probed = set()
    monkeypatch.setattr(space_mod.Steps, "__init__", plain)


@pytest.mark.parametrize("policy, jobs, ops", [("linux-6.x", 1, ()), ("linux-6.x", 2, ()), ("linux-5.9", 1, ()),
                                              ("linux-4.8", 1, ("gup", "dma_write", "file")),
                                              ("linux-4.8", 1, ("gup", "mprotect", "dma_read", "read"))])
def test_a_gup_with_flags_it_never_consults_is_its_twins_step(monkeypatch, policy, jobs, ops):
    """A gup with FOLL_LONGTERM, FOLL_FORCE or the zap race repeats the one without them
    exactly when its run consulted none of them (read the flag; for the race, took a
    fault that it would not just repeat) and, for FOLL_LONGTERM, made no R/O pin of the
    zero page (5.9 makes them): the search does not take it again, and finds and counts
    the same.  (linux-4.8's Dirty COW needs both FOLL_FORCE and the race: its search must
    still find it; on anonymous memory, the race after the FOLL_FORCE fault maps the
    zero page.)"""
    from policykit.explore import search as search_mod
    taken = []
    real = search_mod.take

    def counting(node, step, *a, **kw):
        taken.append(step.text)
        return real(node, step, *a, **kw)
    monkeypatch.setattr(search_mod, "take", counting)
    twins = run_explore(policy, 4, ops, jobs=jobs)
    with_twins = list(taken)
    del taken[:]
    with monkeypatch.context() as m:
        _no_twins(m)
        every = run_explore(policy, 4, ops, jobs=jobs)
    assert [(f.cls, f.point, f.lines) for f in twins.findings] == [(f.cls, f.point, f.lines) for f in every.findings]
    assert (twins.stats.distinct, twins.stats.generated) == (every.stats.distinct, every.stats.generated)
    if jobs == 1:       # the workers' steps are taken in other processes
        assert len(with_twins) < len(taken)
        for flags in ("get write force ", "get write force zap_race "):
            assert sum(flags in t for t in with_twins) < sum(flags in t for t in taken)
        if "file" in ops:
            assert any(f.cls == "corrupt-file" for f in twins.findings)
        elif not ops:
            assert any("get longterm" in t for t in taken)
            assert not any("get longterm" in t for t in with_twins)
        if policy == "linux-5.9":       # its R/O pins of the zero page keep their twins
            assert any(t.endswith("pin longterm -> r1") for t in with_twins)


def test_a_policy_that_reads_longterm_for_foll_get_has_each_step_taken(tmp_path):
    """A decision that reads FOLL_LONGTERM on a FOLL_GET makes the twin a step of its own."""
    pol = tmp_path / "no-longterm-get.pol"
    pol.write_text("policy no-longterm-get\nextends linux-6.x\non gup {\n"
                   "    foll.get and foll.longterm -> fail\n    otherwise -> grab\n}\n")
    s = Session(load_policy(str(pol)))
    bounds = Bounds(depth=2)
    res = explore(s, Space.build(s.registry, bounds), starts([s], bounds))
    f = find(res, "gup-failed")
    assert "longterm" in after_start(f)[-1] and " get" in after_start(f)[-1]


def test_reading_foll_longterm_or_force_shows_on_the_probe_of_a_call_and_its_copies():
    from policykit.engine.context import FollFlags
    flags = FollFlags(pin=False, longterm=True, force=True)
    assert flags.longterm and flags.force and flags.probe is None
    flags.probe = set()
    other = flags.copy()
    assert not flags.probe and repr(other) == "FOLL_GET|FOLL_LONGTERM|FOLL_FORCE", "copying reads nothing"
    assert other.write is False and other.pin is False
    assert other.longterm is True and flags.probe == {"longterm"}, "a copy's read is the call's"
    assert other.force is True and flags.probe == {"longterm", "force"}


def test_a_gup_on_a_writable_mapping_consults_neither_force_nor_the_race_unless_it_faults():
    """What the probe of a GUP call records: FOLL_FORCE only where it changes what a
    rule decides (a write to a VMA without VM_WRITE), the race where GUP takes a fault --
    as one that would change
    nothing but a page's number where the fault mapped a fresh zero-filled page (the
    next fault maps another), as one that tells where it copied a written page."""
    from policykit.explore.search import transitions
    s = session("linux-6.x")
    bounds = Bounds(depth=3)
    space = Space.build(s.registry, bounds, ("gup", "mprotect", "write"))
    runner = starts([s], bounds)[0].node[0]

    def consulted(runner, text):
        probe = set()
        r = runner.copy()
        r.engine.foll_probe = probe
        r.step(1, next(st for st in space.steps(runner, 1) if st.text == text))
        return probe
    assert consulted(runner, "gup p buf get write force -> r1") == {"zap_race_same"}    # faults it in
    written = runner.copy()
    written.step(1, next(st for st in space.steps(written, 1) if st.text == "write p buf"))
    assert consulted(written, "gup p buf get write force -> r1") == set()
    shared = written.copy()
    shared.step(2, next(st for st in Space.build(s.registry, bounds, ("fork",)).steps(shared, 2)
                        if st.text == "fork p -> c1"))
    # the COW fault copies the written page; linux-6.2's can_follow_write_pte() reads
    # FOLL_FORCE before VM_WRITE, but on this writable VMA the rule answers the same
    # without it: FOLL_FORCE is not counted consulted
    assert consulted(shared, "gup p buf get write -> r1") == {"zap_race"}
    written.step(2, next(st for st in space.steps(written, 2) if st.text == "mprotect p buf ro"))
    assert "force" in consulted(written, "gup p buf get write force -> r1")
    # and the search takes the FOLL_FORCE twin only where it counts
    steps = space.steps(written, 3)
    texts = [t for i, st, child, _, twin in transitions((written,), steps, 3) for t in [st.text] if child is not None]
    assert "gup p buf get write force -> r1" in texts


def test_workers_given_each_others_states_find_and_count_the_same(monkeypatch):
    """Sharing a level out evenly moves states between workers (taken again from a start
    state): the witnesses and counts stay those of one process."""
    from policykit.explore import parallel
    moves = []
    real = parallel.Workers._balance

    def balance(self, keep, loads):
        out = real(self, keep, loads)
        moves.append(sum(len(m) for m in out))
        return out
    monkeypatch.setattr(parallel, "_BALANCE_FROM", 1)
    monkeypatch.setattr(parallel.Workers, "_balance", balance)
    one = run_explore("linux-5.9", 4)
    two = run_explore("linux-5.9", 4, jobs=2, keep=50)
    assert sum(moves) > 0, "some states changed workers"
    assert [(f.cls, f.point, f.lines) for f in one.findings] == [(f.cls, f.point, f.lines) for f in two.findings]
    assert (one.stats.distinct, one.stats.generated) == (two.stats.distinct, two.stats.generated)
