"""policykit-hugetlb: mechanism, and its scenarios under the era policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from policykit import Engine, OperationFailed, check_invariants
from policykit.testing import apply as op
from policykit.testing import assert_passes, engine, scenario_params
from policykit.testing import plugin_refs as refs


SCENARIOS = Path(__file__).resolve().parent.parent / "policykit_hugetlb" / "scenarios"










def free(e: Engine) -> int:
    return e.machine.attrs["hugetlb"]["free"].get("2M", 0)


def test_faults_take_pages_from_the_pool_and_freeing_returns_them():
    e = engine()
    op(e, "hugetlb_pool", pages=2)
    p = e.spawn("p")
    b = op(e, "mmap_hugetlb", process=p, pages=2, sharing="private", size="2M").result
    e.write(p, [b])
    assert free(e) == 1
    assert e.machine.pages[e.process(p).mm.ptes[b].pfn].attrs["hpage_size"] == "2M"
    e.munmap(p, b, b + 2)
    assert free(e) == 2
    assert check_invariants(e.machine, refs(e)) == []


def test_an_empty_pool_fails_the_fault():
    e = engine()
    p = e.spawn("p")
    b = op(e, "mmap_hugetlb", process=p, pages=1, sharing="private", size="2M").result
    with pytest.raises(OperationFailed) as info:
        e.write(p, [b])
    assert info.value.errno == "SIGBUS"


def test_hugetlb_wp_reuses_by_mapcount_and_copies_2mib():
    e = engine()
    op(e, "hugetlb_pool", pages=3)
    p = e.spawn("p")
    b = op(e, "mmap_hugetlb", process=p, pages=1, sharing="private", size="2M").result
    e.write(p, [b])
    c = e.fork(p, "c")
    e.write(c, [b])                                  # mapped twice: copied
    assert e.metrics["hugetlb_copies"] == 1 and e.metrics["bytes_copied"] == 2 << 20
    e.gup(p, [b], pin=False)                         # a reference mapcount does not see
    e.write(p, [b])
    assert e.metrics["hugetlb_copies"] == 1, "mapped once: reused despite the reference"
    assert check_invariants(e.machine, refs(e)) == []


def test_a_1g_page_costs_1g_to_copy():
    e = engine()
    op(e, "hugetlb_pool", pages=2, size="1G")
    p = e.spawn("p")
    b = op(e, "mmap_hugetlb", process=p, pages=1, sharing="private", size="1G").result
    e.write(p, [b])
    c = e.fork(p, "c")
    e.write(c, [b])
    assert e.metrics["bytes_copied"] == 1 << 30
    assert e.machine.pages[e.process(c).mm.ptes[b].pfn].attrs["hpage_size"] == "1G"


def test_shared_hugetlb_is_shared_across_fork():
    e = engine()
    op(e, "hugetlb_pool", pages=1)
    p = e.spawn("p")
    b = op(e, "mmap_hugetlb", process=p, pages=1, sharing="shared", size="2M").result
    e.write(p, [b])
    c = e.fork(p, "c")
    [tok] = e.write(c, [b])
    assert e.read(p, [b]) == [tok] and free(e) == 0
    assert check_invariants(e.machine, refs(e)) == []


@pytest.mark.parametrize("path,policy,variant", scenario_params(SCENARIOS))
def test_scenario(path, policy, variant):
    assert_passes(path, policy, variant)


def test_a_directed_copy_hands_the_other_process_a_huge_page_from_the_pool():
    from policykit.testing import session
    s = session("ideal")
    text = ("hugetlb_pool {n}\nspawn -> p\nmmap_hugetlb p 1 private -> b\nwrite p b\n"
            "pin p b write longterm -> mr\nfork p -> c\ndma_write mr\nread c b\nread p b\n")
    r = s.run(s.parse(text.format(n=2)), invariants=True)
    assert (r.verdict, r.metrics["fork_copies"], r.metrics["hugetlb_copies"]) == ("ok", 0, 1)
    r = s.run(s.parse(text.format(n=1)), invariants=True)       # nothing to copy into
    [failed] = [rec for rec in r.steps if rec.status == "failed"]
    assert failed.step.op == "dma_write" and "no free huge page" in failed.message


def test_a_private_mapping_of_a_hugetlbfs_file_reads_the_file_and_copies_on_write():
    from policykit.testing import session
    s = session("linux-5.9")
    r = s.run(s.parse("hugetlb_pool 2\nspawn -> p\nmmap_hugetlb_file p f 1 shared -> shm\nwrite p shm\n"
                      "mmap_hugetlb_file p f 1 private -> priv\nread p priv\nwrite p priv\nread p shm\n"
                      "read p priv\n"), invariants=True)
    assert r.verdict == "ok"
    assert (r.metrics["hugetlb_copies"], r.metrics["wp_copies"]) == (1, 1)    # the write copied
    assert r.metrics["decisions"] == 0, "a file's page is copied without asking the policy"


def test_each_size_has_its_own_pool():
    e = engine()
    op(e, "hugetlb_pool", pages=1, size="1G")
    p = e.spawn("p")
    small = op(e, "mmap_hugetlb", process=p, pages=1, sharing="private", size="2M").result
    big = op(e, "mmap_hugetlb", process=p, pages=1, sharing="private", size="1G").result
    with pytest.raises(OperationFailed, match="no free huge page") as failed:
        e.write(p, [small])                     # no 2 MiB page: the 1 GiB pool is another
    assert failed.value.errno == "SIGBUS"
    e.write(p, [big])
    assert e.machine.attrs["hugetlb"]["free"] == {"1G": 0}
