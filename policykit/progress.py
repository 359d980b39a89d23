"""Progress of long runs on stderr: a tqdm bar when stderr is a terminal, nothing
otherwise (stdout stays clean for the results)."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """A progress callback ``(done, total, what)``: ``done`` of ``total`` items finished,
    across every worker, ``what`` the item being worked on (may be empty).  The bar
    appears at the first call with enough work to be worth one, and closes when
    ``done`` reaches ``total``."""

    #: fewer items than this finish too fast for a bar
    MIN_ITEMS = 20

    def __init__(self, unit: str = "run", stream: Any = None) -> None:
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if self._bar is None:
            if total < self.MIN_ITEMS or not self.stream.isatty():
                return
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=self.unit, file=self.stream, leave=False,
                             dynamic_ncols=True, smoothing=0.1)
        bar = self._bar
        if bar.total != total:
            bar.total = total
        bar.update(max(0, done - bar.n))
        if what:
            bar.set_postfix_str(what[:50], refresh=False)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
