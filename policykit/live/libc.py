"""The system calls the live backend needs, through ctypes (x86_64 and aarch64 Linux).

Memory is mapped with libc's ``mmap`` at addresses the backend chooses: Python's own
``mmap`` module maps MAP_SHARED, which is not the memory under test.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HPAGE_PMD_SIZE = 2 << 20
HPAGE_PUD_SIZE = 1 << 30
MAP_HUGE_SHIFT = 26

PROT_READ, PROT_WRITE = 0x1, 0x2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_HUGETLB = 0x40000
MAP_FIXED_NOREPLACE = 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value

MADV_DONTNEED = 4
MADV_DONTFORK, MADV_DOFORK = 10, 11
MADV_MERGEABLE = 12
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15
MADV_WIPEONFORK, MADV_KEEPONFORK = 18, 19
MADV_PAGEOUT = 21
MADV_COLLAPSE = 25

MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37

_SYSCALLS = {
    "x86_64": {"perf_event_open": 298, "io_uring_setup": 425, "io_uring_enter": 426,
               "io_uring_register": 427},
    "aarch64": {"perf_event_open": 241, "io_uring_setup": 425, "io_uring_enter": 426,
                "io_uring_register": 427},
}


class LibcError(OSError):
    """A system call failed: errno and the call's name."""


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.syscall.restype = ctypes.c_long


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc.vmsplice.restype = ctypes.c_ssize_t
_libc.vmsplice.argtypes = (ctypes.c_int, ctypes.POINTER(Iovec), ctypes.c_size_t, ctypes.c_uint)


def _check(ret: int, name: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise LibcError(err, f"{name}: {os.strerror(err)}")
    return ret


def syscall_number(name: str) -> int:
    table = _SYSCALLS.get(platform.machine())
    if table is None:
        raise LibcError(0, f"the live backend knows the system calls of x86_64 and aarch64, not {platform.machine()}")
    return table[name]


def syscall(name: str, *args: int | ctypes.c_void_p) -> int:
    """A raw system call by name; raises LibcError on -1."""
    return _check(_libc.syscall(ctypes.c_long(syscall_number(name)),
                                *[a if isinstance(a, ctypes.c_void_p) else ctypes.c_long(a) for a in args]),
                  name)


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    ret = _libc.mmap(addr, length, prot, flags, fd, offset)
    if ret is None or ret == MAP_FAILED:
        err = ctypes.get_errno()
        raise LibcError(err, f"mmap: {os.strerror(err)}")
    return int(ret)


_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p)


def mremap(old: int, length: int, new: int) -> int:
    """Move ``length`` bytes at ``old`` to ``new`` (MREMAP_MAYMOVE | MREMAP_FIXED)."""
    ret = _libc.mremap(old, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, new)
    if ret is None or ret == MAP_FAILED:
        err = ctypes.get_errno()
        raise LibcError(err, f"mremap: {os.strerror(err)}")
    return int(ret)


def munmap(addr: int, length: int) -> None:
    _check(_libc.munmap(addr, length), "munmap")


def mprotect(addr: int, length: int, prot: int) -> None:
    _check(_libc.mprotect(addr, length, prot), "mprotect")


def madvise(addr: int, length: int, advice: int) -> None:
    _check(_libc.madvise(addr, length, advice), "madvise")


def vmsplice(fd: int, addr: int, length: int, flags: int = 0) -> int:
    iov = Iovec(addr, length)
    ret = _libc.vmsplice(fd, ctypes.byref(iov), 1, flags)
    return _check(ret, "vmsplice")


_libc.tee.restype = ctypes.c_ssize_t
_libc.tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)


def tee(fd_in: int, fd_out: int, length: int) -> int:
    """tee(): duplicate up to ``length`` bytes of one pipe into another, consuming nothing."""
    return _check(_libc.tee(fd_in, fd_out, length, 0), "tee")


def store(addr: int, data: bytes) -> None:
    """Write ``data`` at ``addr`` (the write faults as a CPU store would)."""
    ctypes.memmove(addr, data, len(data))


def load(addr: int, length: int) -> bytes:
    """Read ``length`` bytes at ``addr``."""
    return ctypes.string_at(addr, length)


def set_child_subreaper(on: int) -> int:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants come back to this process to be
    reaped (``on`` 1) or not (0); returns the setting it had."""
    got = ctypes.c_int(0)
    _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(got), 0, 0, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0)
    return got.value
