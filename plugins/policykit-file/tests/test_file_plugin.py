"""policykit-file: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import Engine, OperationFailed, check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs


SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_file" / "scenarios"










def mapped(e: Engine, sharing: str, prot: str = "rw", file_prot: str = "rw"):
    tokens = op(e, "create_file", name="f", pages=2, prot=file_prot).tokens
    p = e.spawn("p")
    base = op(e, "mmap_file", process=p, name="f", pages=2, sharing=sharing, prot=prot).result
    return p, base, tokens


def test_private_read_maps_the_page_cache_and_a_write_copies_it():
    e = engine()
    p, b, tokens = mapped(e, "private")
    assert e.read(p, [b]) == [tokens[0]]
    cache = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert not cache.anon and cache.attrs["file"] and not e.process(p).mm.ptes[b].writable
    assert (cache.refcount, cache.mapcount) == (2, 1), "the page cache + one mapping"
    [tok] = e.write(p, [b])
    anon = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert anon.anon and anon.content == tok and cache.content == tokens[0]
    assert (cache.refcount, cache.mapcount) == (1, 0)
    assert check_invariants(e.machine, refs(e)) == []


def test_a_write_fault_on_a_page_cache_page_never_asks_to_reuse_it():
    e = engine("never-copy")                # reuses every anonymous page it can...
    p, b, tokens = mapped(e, "private")
    e.read(p, [b])
    e.write(p, [b])                          # ...but a page cache page is always copied
    f = e.machine.attrs["files"]["f"]
    assert e.machine.pages[f["cache"][0]].content == tokens[0]


def test_shared_mapping_writes_the_page_cache():
    e = engine()
    p, b, tokens = mapped(e, "shared")
    [tok] = e.write(p, [b + 1])
    f = e.machine.attrs["files"]["f"]
    assert e.machine.pages[f["cache"][1]].content == tok
    c = e.fork(p, "c")
    assert e.read(c, [b + 1]) == [tok]


def test_shared_writable_mapping_of_a_read_only_file_is_refused():
    e = engine()
    with pytest.raises(OperationFailed) as info:
        mapped(e, "shared", "rw", file_prot="ro")
    assert info.value.errno == "EACCES"


def test_truncate_unmaps_and_later_access_is_sigbus():
    e = engine()
    p, b, tokens = mapped(e, "private")
    e.write(p, [b + 1])                      # a COWed copy past the new end
    op(e, "truncate", name="f", pages=1)
    assert b + 1 not in e.process(p).mm.ptes
    with pytest.raises(OperationFailed) as info:
        e.read(p, [b + 1])
    assert info.value.errno == "SIGBUS"
    assert e.read(p, [b]) == [tokens[0]]
    assert check_invariants(e.machine, refs(e)) == []


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)


def test_wipeonfork_is_refused_on_a_file_mapping():
    e = engine()
    p, b, _ = mapped(e, "private")
    with pytest.raises(OperationFailed) as exc:
        op(e, "madvise", process=p, region=range(b, b + 1), advice="wipeonfork")
    assert exc.value.errno == "EINVAL"


@pytest.mark.parametrize("text,message", [
    ("create_file f 1000000000\n", "create_file of 1,000,000,000 pages"),
    ("".join(f"create_file f{i} 16\n" for i in range(300)), "exceed 256 files"),
    ("".join(f"create_file f{i} 65536\n" for i in range(17)), "exceed 1,048,576 pages"),
])
def test_files_are_bounded_before_anything_is_made(text, message):
    from policykit import ScenarioError, Session, load_policy
    s = Session(load_policy("linux-6.x"))
    with pytest.raises(ScenarioError, match=message):
        s.parse(text)


def test_fork_asks_fork_pte_about_page_cache_pages_of_a_private_mapping():
    e = engine("linux-5.9")
    p, b, tokens = mapped(e, "private")
    e.read(p, [b, b + 1])
    e.gup(p, [b], pin=True, longterm=True)          # a read-only pin of the page cache page
    # nothing was ever written to the mapping: no anon_vma, and 5.9's copy hit a BUG
    with pytest.raises(OperationFailed, match="fork_pte refused to share the page cache page"):
        e.fork(p, "c")
    e.write(p, [b + 1])                             # a COW fault: the mapping gets an anon_vma
    assert e.process(p).mm.find_vma(b).attrs["anon_vma"]
    c = e.fork(p, "c")
    cache = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    copy = e.machine.pages[e.process(c).mm.ptes[b].pfn]
    assert cache.attrs["file"] and copy.anon and copy.content == tokens[0] == e.read(c, [b])[0]
    assert e.metrics["fork_copies"] == 1 and (copy.refcount, copy.mapcount) == (1, 1)
    assert e.process(c).mm.find_vma(b).attrs["anon_vma"], "the child's mapping inherits it"
    assert not check_invariants(e.machine, refs(e))


def test_page_cache_pages_are_shared_at_fork_from_5_19_and_in_shared_mappings():
    for policy, sharing in (("linux-5.19", "private"), ("copy-at-fork", "shared")):
        e = engine(policy)
        p, b, tokens = mapped(e, sharing)
        e.read(p, [b])
        e.gup(p, [b], pin=True, longterm=True)
        c = e.fork(p, "c")
        assert e.read(c, [b]) == tokens[:1]     # a shared mapping's PTEs are left to faults
        assert e.process(c).mm.ptes[b].pfn == e.process(p).mm.ptes[b].pfn, policy
        assert e.metrics["fork_copies"] == 0


def test_the_private_copy_of_a_cow_fault_enters_the_lru_add_batch():
    e = engine("linux-5.9")
    p, b, _ = mapped(e, "private")
    op(e, "run_on", process=p, cpu=0)
    e.write(p, [b])                                 # do_cow_fault: a fresh anonymous page
    copy = e.machine.pages[e.process(p).mm.ptes[b].pfn]
    assert copy.anon and copy.refcount == 2, "its mapping and the batch's reference"
    assert check_invariants(e.machine, refs(e)) == []
