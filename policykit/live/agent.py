"""The processes a scenario runs in: forked agents, each driven one command at a time
over a socket by the controller (:class:`Agent` is the controller's handle).

An agent only does what it is told -- touch memory at an address, pin it with io_uring,
vmsplice it, fork, exit -- and answers with what it saw: the values it read and the
addresses it page-faulted on.  Everything an agent holds (its perf event, rings, pipes)
belongs to it: a forked child closes what it inherited, as the scenario's references
belong to the process that made them.  Agents never return into the controller's code:
they end with ``os._exit``.
"""

from __future__ import annotations

import errno as _errno
import faulthandler
import fcntl
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from bisect import bisect_left
from pathlib import Path
from typing import Any

from . import libc
from .perf import FaultSampler
from .uring import IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, Ring

_VALUE = struct.Struct("<Q")
_MAX_MESSAGE = 1 << 20
F_SETPIPE_SZ = 1031


class AgentError(Exception):
    """An agent stopped answering, or answered what it should not."""


class Failed(Exception):
    """A system call of the step failed as the kernel failed it: errno name, message."""

    def __init__(self, errno: str, message: str) -> None:
        super().__init__(message)
        self.errno = errno


def _send(sock: socket.socket, obj: Any) -> None:
    sock.send(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(sock: socket.socket) -> Any:
    data = sock.recv(_MAX_MESSAGE)
    if not data:
        raise EOFError
    return pickle.loads(data)


class Agent:
    """The controller's handle on one agent process."""

    def __init__(self, pid: int, sock: socket.socket, timeout: float) -> None:
        self.pid = pid
        self.sock = sock
        self.sock.settimeout(timeout)
        self.alive = True

    @classmethod
    def spawn(cls, timeout: float = 20.0, zygote: Zygote | None = None) -> Agent:
        """A new agent: forked by ``zygote`` when there is one, else by this process."""
        if zygote is not None:
            return zygote.spawn(timeout)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:                                        # pragma: no cover - the agent
            ours.close()
            _serve(theirs)
        theirs.close()
        agent = cls(pid, ours, timeout)
        agent.call("hello")
        return agent

    def call(self, op: str, *args: Any) -> Any:
        """Send one command; its answer (raises :class:`Failed` for a failed call)."""
        try:
            _send(self.sock, (op, args))
            kind, value = _recv(self.sock)
        except socket.timeout:
            raise AgentError(f"agent {self.pid} did not answer {op!r} in {self.sock.gettimeout():g} s") from None
        except (EOFError, OSError) as exc:
            raise AgentError(f"agent {self.pid} went away during {op!r}: {exc or 'end of file'}") from None
        if kind == "failed":
            raise Failed(*value)
        if kind == "crashed":
            raise AgentError(f"agent {self.pid} failed {op!r}: {value}")
        return value

    def fork(self) -> Agent:
        """Have the agent fork: the child is a new agent."""
        try:
            _send(self.sock, ("fork", ()))
            msg, fds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 1)
        except (socket.timeout, OSError, EOFError) as exc:
            raise AgentError(f"agent {self.pid} did not fork: {exc}") from None
        kind, value = pickle.loads(msg)
        if kind != "ok" or not fds:
            for fd in fds:
                os.close(fd)
            raise Failed(*value) if kind == "failed" else AgentError(f"fork: {value}")
        return Agent(value, socket.socket(fileno=fds[0]), self.sock.gettimeout() or 20.0)

    def exit(self) -> None:
        """Have the agent exit, and wait until its memory is gone (its socket closes in
        do_exit() after exit_mm())."""
        try:
            _send(self.sock, ("exit", ()))
            while self.sock.recv(16):
                pass
        except (OSError, EOFError):
            pass
        self.close()

    def close(self) -> None:
        self.alive = False
        self.sock.close()


class Zygote:
    """A small process that forks the agents (``with``): a fresh interpreter with only
    this module loaded.  Forking the controller instead copies its page tables at every
    spawn and tears them down at every exit, and validate's controller grows to hundreds
    of MiB; an agent forked from an agent inherits the same.

    Each agent is forked twice over, so that it becomes the controller's child (the
    controller is a child subreaper while the zygote lives): the controller reads how
    an agent ended from its zombie and reaps it, as it does an agent it forked itself."""

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._subreaper = 0

    def __enter__(self) -> Zygote:
        # before the zygote starts: its descendants look for a subreaper only if an
        # ancestor was one when they were made
        self._subreaper = libc.set_child_subreaper(1)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen([sys.executable, "-I", "-c", _ZYGOTE, str(theirs.fileno())],
                                          pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            libc.set_child_subreaper(self._subreaper)
            raise
        finally:
            theirs.close()
        self._sock = ours
        ours.settimeout(self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, timeout: float | None = None) -> Agent:
        """A new agent, the controller's child."""
        if self._sock is None:
            raise AgentError("the zygote is not running")
        try:
            _send(self._sock, ("spawn", ()))
            msg, fds, _, _ = socket.recv_fds(self._sock, _MAX_MESSAGE, 1)
        except (socket.timeout, OSError) as exc:
            raise AgentError(f"the zygote did not fork an agent: {exc or 'end of file'}") from None
        kind, value = pickle.loads(msg) if msg else ("crashed", "end of file")
        if kind != "ok" or not fds:
            for fd in fds:
                os.close(fd)
            raise AgentError(f"the zygote did not fork an agent: {value}")
        agent = Agent(0, socket.socket(fileno=fds[0]), timeout or self.timeout)
        try:
            agent.pid = agent.call("hello")
        except AgentError:
            agent.close()
            raise
        return agent

    def close(self) -> None:
        """Stop the zygote (killed if it does not go at once) and reap it."""
        if self._sock is not None:
            self._sock.close()                  # end of file: the zygote exits
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        libc.set_child_subreaper(self._subreaper)


# -- the agent's side ------------------------------------------------------------------

class _State:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.faults = FaultSampler()
        self.rings: dict[str, Ring] = {}
        #: name -> ([(read fd, write fd, buffers in it)], bytes a buffer)
        self.pipes: dict[str, tuple[list[tuple[int, int, int]], int]] = {}
        self.device = os.memfd_create("policykit-device")

    def drop_inherited(self) -> None:
        """In a forked child: what the parent held is the parent's."""
        self.faults.close()
        for ring in self.rings.values():
            ring.drop()
        for pipes, _ in self.pipes.values():
            for r, w, _ in pipes:
                os.close(r)
                os.close(w)
        self.rings, self.pipes = {}, {}
        self.faults = FaultSampler()


def _serve(sock: socket.socket) -> None:                    # pragma: no cover - the agent
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # the kernel may kill an agent on purpose (SIGBUS from hugetlb): that is a result,
        # not a crash to dump a traceback for (pytest's faulthandler is inherited)
        faulthandler.disable()
        # One CPU for every agent: a page just faulted in waits in that CPU's LRU batch,
        # which MADV_PAGEOUT drains only on its own CPU.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        state = _State(sock)
        # An agent never reaps the agents it forked: the controller reads how a dead one
        # ended from its zombie (a SIGBUS from the kernel is a result, see
        # LiveSession._killed_by); the controller, their subreaper, reaps them at the end.
        while True:
            try:
                op, args = _recv(state.sock)
            except EOFError:
                break
            if op == "exit":
                for ring in state.rings.values():
                    ring.unregister()                       # the pins go before the mm does
                break
            if op == "fork":
                _fork(state)
                continue
            try:
                _send(state.sock, ("ok", _OPS[op](state, *args)))
            except Failed as exc:
                _send(state.sock, ("failed", (exc.errno, str(exc))))
            except OSError as exc:
                name = _errno.errorcode.get(exc.errno or 0, "EIO")
                _send(state.sock, ("failed", (name, f"{exc.strerror or exc}")))
    except BaseException as exc:
        code = 1
        try:
            _send(sock, ("crashed", f"{type(exc).__name__}: {exc}"))
        except BaseException:
            pass
    finally:
        os._exit(code)


def _fork(state: _State) -> None:                           # pragma: no cover - the agent
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except OSError as exc:
        ours.close()
        theirs.close()
        _send(state.sock, ("failed", (_errno.errorcode.get(exc.errno or 0, "EIO"), str(exc))))
        return
    if pid == 0:
        state.sock.close()
        ours.close()
        state.sock = theirs
        state.drop_inherited()
        return
    theirs.close()
    socket.send_fds(state.sock, [pickle.dumps(("ok", pid))], [ours.fileno()])
    ours.close()


def _values(state: _State, addrs: list[int]) -> list[int]:
    return [_VALUE.unpack(libc.load(a, 8))[0] for a in addrs]


def _faulted(state: _State, addrs: list[int], size: int) -> list[bool]:
    """Whether a fault was taken in ``[a, a + size)``, for each address ``a`` (a
    bisection per address: a THP's write sees hundreds of faults)."""
    seen = sorted(state.faults.take())
    out = []
    for a in addrs:
        i = bisect_left(seen, a)
        out.append(i < len(seen) and seen[i] < a + size)
    return out


def _hello(state: _State) -> int:
    state.faults.take()
    return os.getpid()


def _mmap(state: _State, addr: int, length: int, shared: bool, writable: bool, kind: str) -> None:
    flags = (libc.MAP_SHARED if shared else libc.MAP_PRIVATE) | libc.MAP_ANONYMOUS | libc.MAP_FIXED_NOREPLACE
    if kind == "hugetlb":
        flags |= libc.MAP_HUGETLB
    elif kind == "hugetlb-1g":
        flags |= libc.MAP_HUGETLB | 30 << libc.MAP_HUGE_SHIFT
    prot = libc.PROT_READ | (libc.PROT_WRITE if writable else 0)
    libc.mmap(addr, length, prot, flags)
    if kind == "thp":
        libc.madvise(addr, length, libc.MADV_HUGEPAGE)
    elif kind == "base":
        libc.madvise(addr, length, libc.MADV_NOHUGEPAGE)


def _write(state: _State, addrs: list[int], values: list[int], size: int) -> list[bool]:
    state.faults.take()
    for a, v in zip(addrs, values):
        libc.store(a, _VALUE.pack(v))
    return _faulted(state, addrs, size)


def _read(state: _State, addrs: list[int], size: int) -> tuple[list[int], list[bool]]:
    state.faults.take()
    values = _values(state, addrs)
    return values, _faulted(state, addrs, size)


def _munmap(state: _State, addr: int, length: int) -> None:
    libc.munmap(addr, length)


def _mremap(state: _State, addr: int, length: int, new: int) -> None:
    libc.mremap(addr, length, new)


def _mprotect(state: _State, addr: int, length: int, writable: bool) -> None:
    libc.mprotect(addr, length, libc.PROT_READ | (libc.PROT_WRITE if writable else 0))


def _madvise(state: _State, addr: int, length: int, advice: int) -> None:
    libc.madvise(addr, length, advice)


def _pin(state: _State, name: str, addr: int, length: int) -> None:
    ring = Ring()
    try:
        ring.register(addr, length)
    except BaseException:
        ring.close()
        raise
    state.rings[name] = ring


def _pipe_capacity() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def _vmsplice(state: _State, name: str, addrs: list[int], size: int, times: int) -> None:
    # vmsplice() puts a page into a pipe buffer: as many pipes as it takes to hold them
    # all (a pipe holds pipe-max-size bytes, unless raised with CAP_SYS_RESOURCE)
    per_pipe = max(1, _pipe_capacity() // size)
    pipes: list[tuple[int, int, int]] = []
    try:
        spliced = [a for _ in range(times) for a in addrs]
        for lo in range(0, len(spliced), per_pipe):
            chunk = spliced[lo:lo + per_pipe]
            r, w = os.pipe()
            pipes.append((r, w, len(chunk)))
            fcntl.fcntl(w, F_SETPIPE_SZ, max(1 << 16, 1 << (len(chunk) * size - 1).bit_length()))
            for a in chunk:
                libc.vmsplice(w, a, size)
    except BaseException:
        for r, w, _ in pipes:
            os.close(r)
            os.close(w)
        raise
    state.pipes[name] = (pipes, size)


def _release(state: _State, name: str) -> None:
    ring = state.rings.pop(name, None)
    if ring is not None:
        ring.close()
        return
    pipes, _ = state.pipes.pop(name)
    for r, w, _ in pipes:
        os.close(r)
        os.close(w)


def _dma_write(state: _State, name: str, addrs: list[int], values: list[int], size: int) -> None:
    ring = state.rings.get(name)
    if ring is None:
        raise Failed("EINVAL", "a device writes only through an io_uring fixed buffer here")
    for a, v in zip(addrs, values):
        os.pwrite(state.device, _VALUE.pack(v) + bytes(size - 8), 0)
        ring.fixed(IORING_OP_READ_FIXED, state.device, a, size)


def _dma_read(state: _State, name: str, addrs: list[int], indexes: list[int], size: int) -> list[int]:
    ring = state.rings.get(name)
    if ring is not None:
        out = []
        for a in addrs:
            ring.fixed(IORING_OP_WRITE_FIXED, state.device, a, 8)
            out.append(_VALUE.unpack(os.pread(state.device, 8, 0))[0])
        return out
    pipes, size = state.pipes[name]
    data = b"".join(_peek_pipe(r, n * size) for r, _, n in pipes)
    return [_VALUE.unpack_from(data, i * size)[0] for i in indexes]


def _peek_pipe(r: int, total: int) -> bytes:
    """What a pipe holds, leaving it there: tee() copies its buffers (the same page
    references) into a second pipe, which is read."""
    tr, tw = os.pipe()
    try:
        fcntl.fcntl(tw, F_SETPIPE_SZ, max(1 << 16, 1 << (total - 1).bit_length()))
        got = libc.tee(r, tw, total)
        data = b""
        while len(data) < got:
            data += os.read(tr, got - len(data))
    finally:
        os.close(tr)
        os.close(tw)
    return data


_OPS = {
    "hello": _hello, "mmap": _mmap, "write": _write, "read": _read, "munmap": _munmap, "mremap": _mremap,
    "mprotect": _mprotect, "madvise": _madvise, "pin": _pin, "vmsplice": _vmsplice,
    "release": _release, "dma_write": _dma_write, "dma_read": _dma_read,
}


def _zygote(sock: socket.socket) -> None:                   # pragma: no cover - the zygote
    """Fork an agent for each ``spawn`` until the controller's end closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            op, _ = _recv(sock)
        except (EOFError, OSError):
            return
        if op != "spawn":
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
            if pid == 0:                                # the go-between: forks the agent, goes
                code = 1
                try:
                    if os.fork() == 0:
                        sock.close()
                        ours.close()
                        _serve(theirs)
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise OSError(_errno.EAGAIN, "the go-between could not fork the agent")
        except OSError as exc:
            ours.close()
            _send(sock, ("failed", (_errno.errorcode.get(exc.errno or 0, "EIO"), str(exc))))
            continue
        finally:
            theirs.close()
        socket.send_fds(sock, [pickle.dumps(("ok", None))], [ours.fileno()])
        ours.close()


#: the zygote's program: this module from where the controller has it (not from the
#: current directory, nor from what PYTHONPATH says), serving the socket in argv[1]
_ZYGOTE = (f"import socket, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
           "from policykit.live.agent import _zygote; _zygote(socket.socket(fileno=int(sys.argv[1])))")
