"""Which addresses a process page-faulted on: a software PAGE_FAULTS perf event that
samples every fault with its address (PERF_SAMPLE_ADDR), read from its ring buffer.

A process opens it for itself (``pid`` 0, not inherited by children): the backend's
agents each open their own, and only faults in the memory under test are looked at,
so the interpreter's own faults do not count.  (getrusage's fault counts would.)
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap as _mmap
import os
import struct

from .libc import PAGE_SIZE, LibcError, syscall

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_SAMPLE_ADDR = 1 << 3
PERF_RECORD_SAMPLE = 9
PERF_FLAG_FD_CLOEXEC = 1 << 3
_DISABLED, _EXCLUDE_HV = 1 << 0, 1 << 6
_PERF_EVENT_IOC_ENABLE = 0x2400
_DATA_PAGES = 16                       # a power of two: 64 KiB of 16-byte samples


class _Attr(ctypes.Structure):
    """struct perf_event_attr, as far as PERF_ATTR_SIZE_VER8."""

    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
                ("branch_sample_type", ctypes.c_uint64), ("sample_regs_user", ctypes.c_uint64),
                ("sample_stack_user", ctypes.c_uint32), ("clockid", ctypes.c_int32),
                ("sample_regs_intr", ctypes.c_uint64), ("aux_watermark", ctypes.c_uint32),
                ("sample_max_stack", ctypes.c_uint16), ("_reserved2", ctypes.c_uint16),
                ("aux_sample_size", ctypes.c_uint32), ("_reserved3", ctypes.c_uint32),
                ("sig_data", ctypes.c_uint64), ("config3", ctypes.c_uint64)]


_HEADER = struct.Struct("<IHH")
_U64 = struct.Struct("<Q")


class FaultSampler:
    """The page faults of the calling process since the last :meth:`take`."""

    def __init__(self) -> None:
        attr = _Attr()
        attr.type = PERF_TYPE_SOFTWARE
        attr.size = ctypes.sizeof(_Attr)
        attr.config = PERF_COUNT_SW_PAGE_FAULTS
        attr.sample_period = 1
        attr.sample_type = PERF_SAMPLE_ADDR
        attr.flags = _DISABLED | _EXCLUDE_HV
        attr.wakeup_events = 1 << 30
        self.fd = syscall("perf_event_open", ctypes.c_void_p(ctypes.addressof(attr)), 0, -1, -1,
                          PERF_FLAG_FD_CLOEXEC)
        try:
            self._ring = _mmap.mmap(self.fd, (1 + _DATA_PAGES) * PAGE_SIZE, _mmap.MAP_SHARED,
                                    _mmap.PROT_READ | _mmap.PROT_WRITE)
        except OSError:
            os.close(self.fd)
            raise
        self._size = _DATA_PAGES * PAGE_SIZE
        fcntl.ioctl(self.fd, _PERF_EVENT_IOC_ENABLE, 0)

    def take(self) -> list[int]:
        """The addresses faulted on since the last call (oldest first)."""
        ring = self._ring
        head = _U64.unpack_from(ring, 1024)[0]          # data_head
        tail = _U64.unpack_from(ring, 1032)[0]          # data_tail
        base, size = PAGE_SIZE, self._size
        out = []
        if head - tail > size:
            raise LibcError(0, "perf ring buffer overrun: faults were lost")
        while tail < head:
            off = tail % size
            raw = bytes(ring[base + off:base + off + 8]) if off + 8 <= size else \
                bytes(ring[base + off:base + size]) + bytes(ring[base:base + off + 8 - size])
            rtype, _, rsize = _HEADER.unpack(raw)
            if rtype == PERF_RECORD_SAMPLE:
                o = (off + 8) % size
                addr = bytes(ring[base + o:base + o + 8]) if o + 8 <= size else \
                    bytes(ring[base + o:base + size]) + bytes(ring[base:base + o + 8 - size])
                out.append(_U64.unpack(addr)[0])
            tail += rsize
        _U64.pack_into(ring, 1032, tail)
        return out

    def close(self) -> None:
        self._ring.close()
        os.close(self.fd)
