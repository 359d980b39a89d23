"""Keeping a plugin's fault apart from the user's wish to stop, and bounding a run's time.

Plugins are Python and run in-process: whatever they raise -- ``SystemExit`` and
``KeyboardInterrupt`` included -- is their fault, reported as such, and never ends the
run.  Two things do stop it: the user's Ctrl-C (told apart from a plugin's
``raise KeyboardInterrupt`` by the SIGINT handler :func:`watch_interrupts` installs) and
a :class:`Deadline` raised by :func:`deadline` when a run's time is up.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_watching = False
_interrupted = False


class Deadline(BaseException):
    """A run's time ran out (raised by the alarm of :func:`deadline`; a BaseException, so
    that no ``except Exception`` in a plugin swallows it)."""


@contextmanager
def watch_interrupts() -> Iterator[None]:
    """Inside the block, a KeyboardInterrupt stops the program only when the user pressed
    Ctrl-C; one a plugin raises is a fault of that plugin (the CLI runs in such a block).
    The previous SIGINT handler is restored after it."""
    global _watching, _interrupted

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _watching, _interrupted
    previous = signal.signal(signal.SIGINT, on_sigint)
    _watching, _interrupted = True, False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _watching, _interrupted = state


@contextmanager
def terminations_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP stop the program as the user's Ctrl-C does
    (a KeyboardInterrupt that unwinds), so that a command being killed still gives back
    what it changed -- the live backend's system settings and processes.  Python's
    default for them ends the process without running a ``finally``."""
    def on_signal(signum: int, frame: FrameType | None) -> None:
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stops_the_run(exc: BaseException) -> bool:
    """Whether ``exc`` must end the run rather than be reported as a plugin's fault: the
    user's Ctrl-C, or a deadline.  Without :func:`watch_interrupts`, any
    KeyboardInterrupt counts as the user's."""
    if isinstance(exc, Deadline):
        return True
    return isinstance(exc, KeyboardInterrupt) and (_interrupted or not _watching)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`Deadline` in this thread when ``seconds`` have passed inside the
    block (None or 0: no limit; off the main thread, where no alarm can be set: no
    limit either).  The previous alarm handler and timer are restored."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Deadline

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)


@contextmanager
def alarm_clock() -> Iterator[Callable[[float | None], None]]:
    """Inside the block, ``set(seconds)`` arms an alarm that raises :class:`Deadline`
    when they have passed (None or 0 disarms it): :func:`deadline` for many spans in a
    row, with one handler installed for all.  Off the main thread it never rings.  The
    previous alarm handler and timer are restored after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda seconds: None
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Deadline

    def set_alarm(seconds: float | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-6) if seconds else 0)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_timer = signal.getitimer(signal.ITIMER_REAL)
    try:
        yield set_alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)
