"""The pytest plugin: a user's scenarios collected and run by pytest, JUnit XML from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

RDMA = """\
scenario rdma-fork
title "a write pin stays coherent after fork and a parent write"
tags rdma
spawn -> p
mmap p 1 private -> buf
write p buf
pin p buf write longterm -> mr
fork p -> c
write p buf
dma_write mr
expect my-linus: ok
expect never-copy: {never}
"""

COW = """\
scenario cow-basic
variants base thp
spawn -> p
mmap_variant p -> buf
fork p -> c
write c buf
read p buf
expect my-linus: ok
expect linux-5.9: ok
"""


@pytest.fixture
def user(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "policies" / "my-linus.pol").write_text(
        'policy my-linus\nsummary "6.x under another name"\nextends linux-6.x\n', encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.policykit]\npolicy-path = ["policies"]\ncorpus = ["scenarios"]\n', encoding="utf-8")
    (tmp_path / "scenarios" / "rdma.scn").write_text(RDMA.format(never="leak"), encoding="utf-8")
    (tmp_path / "scenarios" / "cow.scn").write_text(COW, encoding="utf-8")
    return tmp_path


def pytest_in(path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "POLICYKIT_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=path, capture_output=True, text=True, env=env, timeout=300)


def cases(xml_path):
    root = ET.parse(xml_path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None and suite.tag == "testsuite"
    return suite, {c.get("name"): c for c in suite.iter("testcase")}


def test_pytest_collects_and_runs_scenarios_with_junit_output(user):
    proc = pytest_in(user, "--junitxml=r.xml", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite, by_name = cases(user / "r.xml")
    # one item per (scenario, variant, policy with an expectation): ids scenario/variant[policy]
    assert set(by_name) == {"rdma-fork[my-linus]", "rdma-fork[never-copy]",
                            "cow-basic/base[my-linus]", "cow-basic/base[linux-5.9]",
                            "cow-basic/thp[my-linus]", "cow-basic/thp[linux-5.9]"}
    assert suite.get("tests") == "6" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert all(c.get("classname") and c.get("time") is not None for c in by_name.values())


def test_a_failure_shows_the_violation_the_step_and_a_trace(user):
    (user / "scenarios" / "rdma.scn").write_text(RDMA.format(never="ok"), encoding="utf-8")
    proc = pytest_in(user, "--junitxml=r.xml", "-q")
    assert proc.returncode == 1
    out = proc.stdout
    assert "rdma-fork under never-copy: expected ok, got leak" in out
    assert "scenarios/rdma.scn:10:1: leak:" in out and "dma_write mr" in out
    assert "fork_pte@" in out and "share [never-copy.pol:" in out        # the short trace
    _, by_name = cases(user / "r.xml")
    failure = by_name["rdma-fork[never-copy]"].find("failure")
    assert failure is not None and "got leak" in (failure.get("message") or "") + (failure.text or "")
    assert by_name["rdma-fork[my-linus]"].find("failure") is None


def test_tags_are_markers_and_policies_can_be_chosen(user):
    proc = pytest_in(user, "-q", "-m", "rdma", "--policykit-policy", "linux-5.9-rc4")
    # 5.9-rc4 is the 2020 RDMA regression: no expectation here, so a violation fails
    assert proc.returncode == 1 and "1 failed, 2 deselected" in proc.stdout
    assert "rdma-fork[linux-5.9-rc4]" in proc.stdout


def test_an_unknown_expect_policy_fails_its_item_with_a_hint(user):
    (user / "scenarios" / "rdma.scn").write_text(RDMA.format(never="leak").replace("my-linus", "my-linuss"),
                                                  encoding="utf-8")
    proc = pytest_in(user, "-q")
    assert proc.returncode == 1
    assert "rdma-fork[my-linuss]" in proc.stdout and "did you mean 'my-linus'?" in proc.stdout


def test_a_malformed_scenario_is_a_collection_error_with_a_caret(user):
    (user / "scenarios" / "bad.scn").write_text("scenario bad\nspawn -> p\nwrite p nowhere\n", encoding="utf-8")
    proc = pytest_in(user, "-q")
    assert proc.returncode == 2
    assert "scenarios/bad.scn:3:9: error[PK251]: unknown region 'nowhere'" in proc.stdout and "^" in proc.stdout and "Traceback" not in proc.stdout


def test_without_a_project_table_nothing_is_collected(tmp_path):
    (tmp_path / "x.scn").write_text(textwrap.dedent(COW), encoding="utf-8")
    proc = pytest_in(tmp_path, "-q")
    assert proc.returncode == 5           # no tests ran
    proc = pytest_in(tmp_path, "-q", "--policykit", "--policykit-policy", "linux-6.x")
    assert proc.returncode == 0 and "2 passed" in proc.stdout
