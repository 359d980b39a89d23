"""The oracle judges runs from fork and pin semantics, whatever the policy did."""

from __future__ import annotations

import pytest
from conftest import run, variant

BASIC_COW = """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
fork parent -> child
write parent buf
read child buf
"""

PINNED_WRITE_AFTER_FORK = """
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


def test_never_copy_leaks_on_basic_cow():
    r = run("never_copy", BASIC_COW)
    assert r.verdict == "leak"
    [v] = r.violations
    assert v.line == 7 and "child:buf[0] read" in v.detail
    assert "written by parent at line 6" in v.seen
    assert "written by parent at line 4" in v.expected


def test_copy_on_every_write_fault_is_pin_incoherent():
    r = run("copy_on_wp", PINNED_WRITE_AFTER_FORK)
    assert r.verdict == "pin-incoherent"
    assert r.violations[0].line == 9, "reported at the device write the process cannot see"


@pytest.mark.parametrize("text", [BASIC_COW, PINNED_WRITE_AFTER_FORK])
def test_a_correct_policy_passes_both(text):
    r = run("anon_exclusive", text)
    assert r.violations == []
    assert r.passed


def test_the_same_policy_is_fine_without_pins():
    assert run("copy_on_wp", BASIC_COW).verdict == "ok"


def test_never_copy_is_fine_without_fork():
    r = run("never_copy", PINNED_WRITE_AFTER_FORK.replace("fork parent -> child\nexit child\n", ""))
    assert r.verdict == "ok"


def test_leak_through_a_reference_after_the_owner_unmapped():
    r = run("never_copy", """
spawn -> parent
mmap parent 1 private -> buf
write parent buf
fork parent -> child
vmsplice child buf -> pipe
munmap child buf
write parent buf
dma_read pipe
""")
    assert r.verdict == "leak"
    assert r.violations[0].line == 9
    assert "'pipe'" in r.violations[0].detail


def test_unobserved_leak_is_found_by_the_final_audit():
    r = run("never_copy", BASIC_COW.replace("read child buf\n", ""))
    assert r.verdict == "leak"
    assert r.violations[0].line is None and "(audit)" in r.violations[0].detail


def test_audit_before_exit_sees_what_the_process_would_have_read():
    r = run("never_copy", BASIC_COW.replace("read child buf\n", "exit child\n"))
    assert r.verdict == "leak" and r.violations[0].line == 7


def test_lost_write_through_a_foll_get_reference():
    r = run("anon_exclusive", """
spawn -> p
mmap p 1 private -> buf
write p buf
gup p buf get write -> dio
fork p -> c
exit c
write p buf
dma_write dio
""")
    # the FOLL_GET reference does not make the page "maybe pinned": the parent's write
    # fault copies (refcount 2), and the DMA lands in the old page
    assert r.verdict == "lost-write"


def test_munmap_of_own_pinned_range_is_not_a_violation():
    r = run("copy_on_wp", """
spawn -> p
mmap p 1 private -> buf
write p buf
pin p buf write -> mr
munmap p buf
dma_write mr
dma_read mr
""")
    assert r.verdict == "ok"


def test_dontneed_on_own_pinned_page_is_not_a_violation():
    r = run("anon_exclusive", """
spawn -> p
mmap p 1 private -> buf
write p buf
pin p buf write -> mr
madvise p buf dontneed
dma_write mr
read p buf
""")
    assert r.verdict == "ok"


def test_ro_pin_must_see_the_latest_write():
    text = """
spawn -> p
mmap p 1 private -> buf
write p buf
fork p -> c
pin p buf -> ro
write p buf
dma_read ro
"""
    assert run("copy_on_wp", text).verdict == "pin-incoherent"
    assert run("anon_exclusive", text).verdict == "ok"


def test_foll_get_reader_may_see_an_old_value_of_its_own_memory():
    # vmsplice semantics: the pipe may show the data of vmsplice time; not a violation
    r = run("anon_exclusive", """
spawn -> p
mmap p 1 private -> buf
write p buf
fork p -> c
vmsplice c buf -> pipe
write c buf
dma_read pipe
""")
    assert r.verdict == "ok"


def test_fork_failure_is_an_availability_violation():
    r = run("anon_exclusive", """
spawn -> p
mmap p 1 private -> buf
write p buf
pin p buf -> mr
fail_alloc 1
fork p -> c
write c buf
""")
    assert r.verdict == "fork-failed"
    assert r.steps[-1].status == "skipped", "steps of a child that never existed are skipped"


def test_gup_refused_is_gup_failed():
    s = variant("anon_exclusive", "refuse-gup", policykit_gup=lambda ctx: "fail")
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\npin p b -> r\ndma_read r\n"), invariants=True)
    assert r.verdict == "gup-failed"
    assert [st.status for st in r.steps] == ["ok", "ok", "failed", "skipped"]


def test_wipeonfork_child_must_see_zeroes():
    r = run("never_copy", """
spawn -> p
mmap p 1 private -> keys
write p keys
madvise p keys wipeonfork
fork p -> c
read c keys
""")
    assert r.verdict == "ok"


def test_foll_force_write_lands_in_a_private_copy():
    # a write through /proc/self/mem into a read-only private mapping after fork
    r = run("anon_exclusive", """
spawn -> p
mmap p 1 private ro -> text
read p text
fork p -> c
gup p text get write force -> mem
dma_write mem
read p text
read c text
""")
    assert r.verdict == "ok"
    assert r.metrics["wp_copies"] == 0, "the zero page is replaced, not copied"


def test_warnings_are_counted_and_listed():
    from policykit import Decision

    s = variant("anon_exclusive", "warner",
                policykit_fork_pte=lambda ctx: Decision("share", warn="pinned page shared at fork"))
    r = s.run(s.parse("spawn -> p\nmmap p 2 private -> b\nwrite p b\nfork p -> c\n"))
    assert r.metrics["warnings"] == 2
    assert r.warnings == ["line 4: fork_pte: pinned page shared at fork"] * 2


def test_children_of_fork_children_are_judged_like_named_ones():
    text = "spawn -> p\nmmap p 1 private -> b\nwrite p b\nfork_children p 3\nwrite p b\n"
    assert run("never_copy", text).verdict == "leak"        # the end audit reads the children too
    assert run("copy_on_wp", text).verdict == "ok"
    from policykit.testing import session as builtin
    s = builtin("copy-at-fork")
    r = s.run(s.parse("spawn -> p\nmmap p 1 private -> b\nwrite p b\nfail_alloc 1\nfork_children p 3\n"),
              invariants=True)
    assert r.verdict == "fork-failed"
