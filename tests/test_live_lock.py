"""One live run at a time changes this machine's settings: a second waits for the
first, says so, and gives up with a clear error; a run that dies lets go."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

system = pytest.importorskip("policykit.live.system")

#: a process holding the lock at argv[1] until its stdin closes
HOLD = ("import sys; from policykit.live.system import MachineLock; "
        "lock = MachineLock(path=sys.argv[1]); lock.__enter__(); print('held', flush=True); "
        "sys.stdin.read(); lock.__exit__()")


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock in ``tmp_path``: (it, the lock's path)."""
    path = str(tmp_path / "policykit-live.lock")
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "held\n"
        return proc
    yield start, path
    for proc in procs:
        proc.kill()
        proc.wait()


def _can_take(path: str) -> bool:
    """Can another process take the lock at ``path`` right now?"""
    code = ("import sys; from policykit.live.system import MachineLock, MachineBusy\n"
            "try:\n    with MachineLock(wait=0, path=sys.argv[1]):\n        pass\n"
            "except MachineBusy:\n    sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", code, path]).returncode == 0


def test_a_second_run_gives_up_naming_the_first(holder, capsys):
    start, path = holder
    proc = start()
    began = time.monotonic()
    with pytest.raises(system.MachineBusy, match=rf"another live run \(pid {proc.pid}\) has held this machine "
                                                  r"for 0.3 s") as info:
        with system.MachineLock(wait=0.3, path=path):
            pass
    assert 0.3 <= time.monotonic() - began < 2
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == ""          # under a second: no word of waiting


def test_a_second_run_waits_says_so_and_goes_on_when_the_first_is_done(holder, capsys):
    start, path = holder
    proc = start()
    threading.Timer(1.5, proc.stdin.close).start()
    began = time.monotonic()
    with system.MachineLock(wait=30, path=path):
        waited = time.monotonic() - began
        assert not _can_take(path)
    assert 1.4 <= waited < 10
    assert f"waiting for another live run (pid {proc.pid}) to be done with this machine" in capsys.readouterr().err
    assert _can_take(path)
    assert not (system.os.path.exists(path)), "the lock file goes with the lock"


def test_a_run_killed_outright_lets_go(holder):
    start, path = holder
    proc = start()
    assert not _can_take(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with system.MachineLock(wait=5, path=path):
        assert not _can_take(path)


def test_nested_settings_hold_the_machine_until_the_outermost_is_done(monkeypatch, tmp_path):
    path = str(tmp_path / "policykit-live.lock")
    monkeypatch.setattr(system.MachineLock, "path", path)
    with system.Settings() as pools:
        with system.Settings(pools):
            with system.Settings():         # check_exclusive_bit's, inside a run
                assert not _can_take(path)
            assert not _can_take(path)
        assert not _can_take(path)
    assert _can_take(path) and not system.os.path.exists(path)


def test_live_and_validate_give_up_with_a_clear_error_while_another_run_holds_the_machine(
        holder, monkeypatch, tmp_path, capsys):
    from policykit.cli import main

    caps = system.Capabilities.probe()
    if caps.reason or caps.perf_reason:
        pytest.skip(f"live backend unavailable: {caps.reason or caps.perf_reason}")
    start, path = holder
    proc = start()
    monkeypatch.setattr(system.MachineLock, "path", path)
    monkeypatch.setattr(system, "LOCK_WAIT", 0.2)
    scn = tmp_path / "t.scn"
    scn.write_text("scenario t\nspawn -> p\nmmap p 1 private -> buf\nwrite p buf\n")
    for argv in (["live", str(scn)], ["validate", "linux-6.x", "--corpus", str(scn)]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert f"error: another live run (pid {proc.pid}) has held this machine for 0.2 s" in err
