"""Progress: the true total across forked workers, and a bar only on a terminal."""

from __future__ import annotations

import io

from policykit.parallel import fork_map
from policykit.progress import ProgressBar


def _square(x):
    return x * x


def test_fork_map_reports_the_work_of_every_worker():
    seen = []
    out = fork_map(_square, list(range(60)), jobs=3, progress=lambda done, total, what: seen.append((done, total)))
    assert out == [x * x for x in range(60)]
    assert all(total == 60 for _, total in seen)
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == 60     # ends at the total of all workers, not one share


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_shows_on_a_terminal_only_and_closes_at_the_end():
    quiet = io.StringIO()
    bar = ProgressBar(stream=quiet)
    for i in range(31):
        bar(i, 30, f"item {i}")
    assert quiet.getvalue() == ""
    tty = _Tty()
    bar = ProgressBar(stream=tty)
    for i in range(31):
        bar(i, 30, f"item {i}")
    text = tty.getvalue()
    assert "0/30" in text and bar._bar is None             # drawn, then cleared (leave=False)
    few = _Tty()
    ProgressBar(stream=few)(0, 5)
    assert few.getvalue() == ""
