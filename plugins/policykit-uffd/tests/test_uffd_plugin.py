"""policykit-uffd: minor faults answered by UFFDIO_CONTINUE, write protection, and its
scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import OperationFailed, check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs

SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_uffd" / "scenarios"


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)


def file_mapped(e, sharing: str = "private", prot: str = "rw"):
    tokens = op(e, "create_file", name="f", pages=2).tokens
    p = e.spawn("p")
    b = op(e, "mmap_file", process=p, name="f", pages=2, sharing=sharing, prot=prot).result
    return p, b, tokens


def test_a_minor_fault_maps_the_cached_page_read_only_and_dirty_and_a_write_copies_it():
    e = engine()
    p, b, tokens = file_mapped(e)
    op(e, "uffd_register", process=p, region=range(b, b + 2), mode="minor")
    assert e.read(p, [b]) == tokens[:1]             # not cached yet: a missing fault, as before
    assert e.metrics["uffd_minor_faults"] == 0
    e.munmap(p, b, b + 2)
    b = op(e, "mmap_file", process=p, name="f", pages=2, sharing="private", prot="rw").result
    op(e, "uffd_register", process=p, region=range(b, b + 2), mode="minor")
    assert e.read(p, [b]) == tokens[:1]             # cached now: the handler's UFFDIO_CONTINUE
    pte = e.process(p).mm.ptes[b]
    cache = e.machine.pages[pte.pfn]
    assert e.metrics["uffd_minor_faults"] == 1 and cache.attrs["file"]
    assert (pte.writable, pte.dirty) == (False, True)
    [tok] = e.write(p, [b])                         # the write retries and COWs
    assert e.process(p).mm.ptes[b].pfn != cache.pfn and cache.content == tokens[0] != tok
    assert check_invariants(e.machine, refs(e)) == []


def test_a_shared_mapping_gets_the_cached_page_as_the_vma_allows():
    e = engine()
    p, b, tokens = file_mapped(e, "shared")
    e.read(p, [b])                                  # into the page cache
    q = e.spawn("q")
    c = op(e, "mmap_file", process=q, name="f", pages=2, sharing="shared", prot="rw").result
    op(e, "uffd_register", process=q, region=range(c, c + 2), mode="minor")
    e.write(q, [c])
    assert e.process(q).mm.ptes[c].pfn == e.process(p).mm.ptes[b].pfn, "written in place"
    assert e.metrics["uffd_minor_faults"] == 1 and e.metrics["wp_copies"] == 0


def test_a_child_does_not_inherit_the_registration():
    e = engine()
    p, b, tokens = file_mapped(e)
    e.read(p, [b, b + 1])
    op(e, "uffd_register", process=p, region=range(b, b + 2), mode="minor")
    e.munmap(p, b + 1, b + 2)                       # page 1 is cached, unmapped
    c = e.fork(p, "c")
    e.read(c, [b])
    assert e.metrics["uffd_minor_faults"] == 0, "the child's faults are its own"


@pytest.mark.parametrize("mode, sharing", [("minor", None), ("wp", "private")])
def test_registration_is_refused_where_the_mode_does_not_apply(mode, sharing):
    e = engine()
    if sharing is None:                             # minor mode on private anonymous memory
        p = e.spawn("p")
        b = e.mmap(p, 1)
    else:                                           # write protection on a file mapping
        p, b, _ = file_mapped(e, sharing)
    with pytest.raises(OperationFailed) as exc:
        op(e, "uffd_register", process=p, region=range(b, b + 1), mode=mode)
    assert exc.value.errno == "EINVAL"


def test_a_write_on_a_write_protected_page_goes_to_the_handler_and_an_unshare_passes():
    e = engine("linux-6.x")
    p = e.spawn("p")
    b = e.mmap(p, 1)
    e.write(p, [b])
    with pytest.raises(OperationFailed, match="not registered"):
        op(e, "uffd_writeprotect", process=p, region=range(b, b + 1), state="on")
    op(e, "uffd_register", process=p, region=range(b, b + 1), mode="wp")
    op(e, "uffd_writeprotect", process=p, region=range(b, b + 1), state="on")
    assert not e.process(p).mm.ptes[b].writable
    c = e.fork(p, "c")                              # shared, R/O; a R/O pin unshares
    e.gup(p, [b], pin=True, longterm=True)
    pte = e.process(p).mm.ptes[b]
    assert e.metrics["unshare_copies"] == 1 and pte.attrs == {"uffd_wp": True}, "the copy keeps the bit"
    assert not e.process(c).mm.ptes[b].attrs, "the child's PTE has no userfaultfd"
    assert e.metrics["uffd_wp_faults"] == 0
    e.write(p, [b])                                 # the handler hears of it, lifts it
    assert e.metrics["uffd_wp_faults"] == 1 and not e.process(p).mm.ptes[b].attrs
    assert e.process(p).mm.ptes[b].writable and e.metrics["wp_copies"] == 0, "the pinned copy is reused"
    op(e, "uffd_writeprotect", process=p, region=range(b, b + 1), state="on")
    op(e, "uffd_writeprotect", process=p, region=range(b, b + 1), state="off")
    assert not e.process(p).mm.ptes[b].attrs
    e.munmap(p, b, b + 1)
    assert check_invariants(e.machine, refs(e)) == []


def test_a_missing_fault_is_filled_by_the_handler_writable_or_write_protected():
    e = engine("linux-6.x")
    p = e.spawn("p")
    b = e.mmap(p, 2)
    op(e, "uffd_register", process=p, region=range(b, b + 2), mode="missing")
    assert e.read(p, [b]) == [0]
    pte = e.process(p).mm.ptes[b]
    page = e.machine.pages[pte.pfn]
    assert page.anon and not page.zero and pte.writable and (page.refcount, page.mapcount) == (1, 1)
    op(e, "uffd_register", process=p, region=range(b, b + 2), mode="wp")
    e.read(p, [b + 1])                              # UFFDIO_COPY_MODE_WP
    pte = e.process(p).mm.ptes[b + 1]
    assert not pte.writable and pte.attrs == {"uffd_wp": True}
    assert e.metrics["uffd_missing_faults"] == 2 and e.metrics["faults_read"] == 0
    e.write(p, [b + 1])                             # the handler lifts it; an exclusive page: reuse
    assert e.metrics["uffd_wp_faults"] == 1 and e.metrics["wp_copies"] == 0
    assert check_invariants(e.machine, refs(e)) == []
    f, g, _ = file_mapped(e)
    with pytest.raises(OperationFailed) as exc:
        op(e, "uffd_register", process=f, region=range(g, g + 1), mode="missing")
    assert exc.value.errno == "EINVAL"
