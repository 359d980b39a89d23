"""The built-in policies: they check cleanly, are formatted, and decide as their era did.

Each case below is a small scenario and the verdict (and copies) each policy gives, with
the rule that makes it so.
"""

from __future__ import annotations

import functools

import pytest

from policykit import Session, dsl, load_policy
from policykit._manager import build_registry, get_plugin_manager
from policykit.dsl.fmt import format_policy
from policykit.dsl.parse import parse_policy

NAMES = dsl.builtin_names()


@functools.cache
def registry():
    return build_registry(get_plugin_manager())


@functools.cache
def session(name: str) -> Session:
    return Session(load_policy(name))


def run(policy: str, text: str):
    s = session(policy)
    return s.run(s.parse(text, f"{policy}.scn"), invariants=True)


def test_the_history_is_all_there():
    for name in ("linux-5.7", "linux-5.8", "linux-5.9-rc4", "linux-5.9", "linux-5.18", "linux-5.19",
                 "linux-6.x", "jason-2020-refcount", "linus-2020-mapcount", "gfp-atomic-fork",
                 "never-copy", "copy-at-fork", "ideal"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_checks_without_warnings(name):
    checked, diagnostics = dsl.check_file(name, registry())
    assert [d.render() for d in diagnostics] == []
    assert checked.summary and checked.era and checked.sources


@pytest.mark.parametrize("name", NAMES)
def test_is_formatted_and_round_trips(name):
    path = dsl.builtin_path(name)
    text = path.read_text()
    formatted = format_policy(text, str(path))
    assert formatted == text, "policykit fmt would change it"
    assert parse_policy(formatted).items == parse_policy(text).items


def test_only_the_yardstick_is_unrealizable():
    flags = {n: dsl.check_file(n, registry())[0].unrealizable for n in NAMES}
    assert [n for n, u in flags.items() if u] == ["ideal"]


BASIC_COW = """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
fork parent -> child
write parent buf
read child buf
"""

VMSPLICE_CHILD = """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
fork parent -> child
vmsplice child buf -> pipe
munmap child buf
write parent buf
dma_read pipe
"""

RDMA_CHILD_EXITS = """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
pin parent buf write longterm -> mr
fork parent -> child
exit child
write parent buf
dma_write mr
read parent buf
"""

RO_PIN_PREVIOUSLY_SHARED = """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
fork parent -> child
exit child
pin parent buf longterm -> ro
write parent buf
dma_read ro
"""

ZERO_PAGE_RO_PIN = """
spawn -> p
mmap p 1 private -> buf
read p buf
pin p buf longterm -> ro
write p buf
dma_read ro
"""

# 1024 plain references look like a pin: 5.9 copies at fork once the mm ever pinned.
MANY_REFS_AFTER_A_PIN = "spawn -> p\nmmap p 2 private -> buf\nwrite p buf\npin p buf[1] -> once\nunpin once\n" + \
    "".join(f"vmsplice p buf[0] -> r{i}\n" for i in range(1024)) + "fork p -> c\n"

PRESSURE_FORK = """
spawn -> p
mmap p 1 private -> buf
write p buf
pin p buf write -> mr
memory_pressure on
fork p -> c
"""


@pytest.mark.parametrize("policy,verdict", [
    ("never-copy", "leak"),             # reuse on every fault
    ("linux-5.7", "ok"),                # mapcount 2 => copy
    ("linux-6.x", "ok"),
    ("copy-at-fork", "ok"),
])
def test_basic_cow(policy, verdict):
    assert run(policy, BASIC_COW).verdict == verdict


@pytest.mark.parametrize("policy,verdict", [
    ("linux-5.7", "leak"),              # reuse_swap_page(): mapcount 1, the pipe's ref ignored (CVE-2020-29374)
    ("linux-5.8", "ok"),                # the R/O GUP broke COW in the child first
    ("linux-5.9-rc4", "ok"),            # refcount 2 => copy
    ("linux-6.x", "ok"),
])
def test_vmsplice_child_snoop(policy, verdict):
    assert run(policy, VMSPLICE_CHILD).verdict == verdict


@pytest.mark.parametrize("policy,verdict,fork_copies", [
    ("linux-5.7", "ok", 0),             # mapcount 1 after the child exits => reuse
    ("linux-5.8", "ok", 0),
    ("linux-5.9-rc4", "pin-incoherent", 0),   # refcount 1025 => copy: the RDMA regression
    ("linux-5.9", "ok", 1),             # has_pinned && maybe pinned => copy at fork
    ("jason-2020-refcount", "ok", 1),
    ("linus-2020-mapcount", "ok", 1),   # mapcount is 1 at fork
    ("linux-5.19", "ok", 1),            # exclusive && maybe pinned => copy
    ("ideal", "ok", 0),                 # shares; once the child is gone the parent reuses
])
def test_rdma_fork_child_exits(policy, verdict, fork_copies):
    r = run(policy, RDMA_CHILD_EXITS)
    assert (r.verdict, r.metrics["fork_copies"]) == (verdict, fork_copies)


@pytest.mark.parametrize("policy,verdict", [
    ("linux-5.7", "ok"),                # mapcount 1 => reuse keeps the pinned page
    ("linux-5.9", "pin-incoherent"),    # refcount 1025 => copy (Peter Xu's R/O pin case)
    ("linux-5.18", "pin-incoherent"),
    ("linux-5.19", "ok"),               # R/O pin of a non-exclusive page unshares first
])
def test_ro_pin_previously_shared(policy, verdict):
    assert run(policy, RO_PIN_PREVIOUSLY_SHARED).verdict == verdict


@pytest.mark.parametrize("policy,verdict", [
    ("linux-5.8", "ok"),                # forced COW breaks the zero page before pinning
    ("linux-5.19", "pin-incoherent"),   # gup_must_unshare() only looks at anon pages
    ("linux-6.x", "ok"),                # 6.2: R/O longterm pins unshare anything in a COW mapping
])
def test_ro_longterm_pin_on_the_zero_page(policy, verdict):
    assert run(policy, ZERO_PAGE_RO_PIN).verdict == verdict


@pytest.mark.parametrize("policy,fork_copies", [
    ("linux-5.9", 1),                   # refcount >= 1024 and has_pinned: a false positive, copied
    ("linus-2020-mapcount", 1),         # mapcount is still 1
    ("linux-5.19", 1),                  # the page is still exclusive
    ("linux-5.7", 0),                   # no fork-time copy at all
])
def test_false_positive_maybe_pinned(policy, fork_copies):
    r = run(policy, MANY_REFS_AFTER_A_PIN)
    assert r.metrics["fork_copies"] == fork_copies
    assert r.verdict == "ok"


def test_linus_variant_warns_on_pin_then_fork():
    r = run("linus-2020-mapcount", RDMA_CHILD_EXITS)
    assert r.warnings == ["line 6: fork_pte: pinned page copied at fork"]
    assert run("linux-5.9", RDMA_CHILD_EXITS).warnings == []


@pytest.mark.parametrize("policy,verdict", [
    ("gfp-atomic-fork", "fork-failed"),   # GFP_ATOMIC fails under pressure
    ("linux-5.9", "ok"),                  # page_copy_prealloc() reclaims and succeeds
])
def test_atomic_fork_copy_under_pressure(policy, verdict):
    assert run(policy, PRESSURE_FORK).verdict == verdict


def test_has_pinned_filter_spares_fork_happy_processes():
    # a never-pinning process whose page has >= 1024 references (many vmsplice refs)
    text = "spawn -> p\nmmap p 1 private -> buf\nwrite p buf\n" + \
        "".join(f"vmsplice p buf -> r{i}\n" for i in range(1024)) + "fork p -> c\n"
    assert run("linux-5.9", text).metrics["fork_copies"] == 0            # !has_pinned
    assert run("jason-2020-refcount", text).metrics["fork_copies"] == 1  # no such filter


def test_decisions_record_the_rule_that_fired():
    s = session("linux-5.19")
    r = s.run(s.parse(RDMA_CHILD_EXITS), trace=True)
    fork = next(rec for rec in r.steps if rec.step.op == "fork")
    [d] = [e.decision for e in fork.events if e.decision]
    path = dsl.builtin_path("linux-5.19")
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "-> copy" in ln and "anon_exclusive" in ln)
    assert (d.action, d.rule) == ("copy", f"linux-5.19.pol:{line}")
