"""Known kernel deviations: validate tells a documented kernel bug from a disagreement of
the simulator's, by the signature of the first disagreeing step (no live run needed)."""

from __future__ import annotations

import json

import pytest

from policykit import cli
from policykit.cli import ExitCode, main
from policykit.live import validate as validate_mod
from policykit.live.deviations import known_deviation
from policykit.live.validate import Disagreement, Validation
from policykit.testing import session

SCN = """\
spawn -> parent
hugetlb_pool 2 {size}
mmap_hugetlb parent 1 private {size} -> buf
write parent buf
fork parent -> child
write parent buf
read child buf
"""

#: what 6.18 showed at the fork of cow-basic/hugetlb-1g: the child maps nothing there
LOST = [Disagreement(4, "fork parent -> child", "page", "child:buf[0]", "-", "p0"),
        Disagreement(4, "fork parent -> child", "kind", "child:buf[0]", "-", "hugetlb"),
        Disagreement(4, "fork parent -> child", "exclusive", "parent:buf[0]", True, False),
        Disagreement(5, "write parent buf", "fault", "parent:buf[0]", "no fault", "copy")]


def scenario(size: str = "1G"):
    s = session("linux-6.x")
    return s.parse(SCN.format(size=size), "lost.scn")


def test_a_1g_hugetlb_page_the_child_lacks_after_fork_is_the_known_deviation():
    found = known_deviation(scenario("1G"), LOST)
    assert found is not None and found.name == "hugetlb-1g-lost-at-fork"
    assert found.doc.startswith("docs/live.md#")


@pytest.mark.parametrize("why, scn, disagreements", [
    ("a 2 MiB hugetlb page", "2M", LOST),
    ("the first disagreement is not at the fork", "1G", LOST[3:]),
    ("the child has the page, the counts differ", "1G",
     [Disagreement(4, "fork parent -> child", "mapcount", "parent:buf[0]", 1, 2)]),
    ("another region disagrees too", "1G",
     LOST[:1] + [Disagreement(4, "fork parent -> child", "page", "child:other[0]", "-", "p1")]),
])
def test_anything_else_stays_a_disagreement(why, scn, disagreements):
    assert known_deviation(scenario(scn), disagreements) is None, why


def _fake_validate(monkeypatch, deviation: bool) -> None:
    scn = scenario("1G")
    v = Validation(scn, disagreements=list(LOST))
    if deviation:
        v.deviation = known_deviation(scn, v.disagreements)

    def fake(session, scenarios, caps=None, progress=None):
        return [v]
    monkeypatch.setattr(validate_mod, "validate", fake)
    monkeypatch.setattr(cli, "_live_capabilities", lambda: None)


def test_validate_reports_a_known_deviation_apart_and_passes_unless_strict(monkeypatch, capsys):
    _fake_validate(monkeypatch, deviation=True)
    assert main(["validate", "linux-6.x"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "kernel deviation" in out and "known kernel deviation 'hugetlb-1g-lost-at-fork'" in out
    assert "0 disagree, 1 show a known kernel deviation (hugetlb-1g-lost-at-fork)" in out
    assert main(["validate", "linux-6.x", "--strict"]) == ExitCode.FAILED
    capsys.readouterr()
    assert main(["validate", "linux-6.x", "--format", "json"]) == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenarios"][0]["kernel_deviation"] == "hugetlb-1g-lost-at-fork"


def test_a_disagreement_that_is_no_known_deviation_fails(monkeypatch, capsys):
    _fake_validate(monkeypatch, deviation=False)
    assert main(["validate", "linux-6.x"]) == ExitCode.FAILED
    assert "1 disagree" in capsys.readouterr().out


def test_each_known_deviation_is_documented_where_it_points():
    import re
    from pathlib import Path

    from policykit.live.deviations import KNOWN
    root = Path(__file__).resolve().parent.parent
    for k in KNOWN:
        path, anchor = k.doc.split("#")
        slugs = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                 for line in (root / path).read_text().splitlines() if line.startswith("#")}
        assert anchor in slugs, k.name
