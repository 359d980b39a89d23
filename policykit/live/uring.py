"""A minimal io_uring through raw system calls: one ring, one fixed buffer.

Registering a buffer (IORING_REGISTER_BUFFERS) takes a long-term FOLL_WRITE pin on its
pages, as RDMA does; IORING_OP_READ_FIXED then has the "device" write those pages
(from a file) and IORING_OP_WRITE_FIXED has it read them, through the pin, whatever the
page tables say by then.  Unregistering drops the pin at once (closing the ring would
drop it later, from a workqueue).
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
import struct

from .libc import Iovec, LibcError, syscall

IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES = 0, 0x8000000, 0x10000000
IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS = 0, 1
IORING_ENTER_GETEVENTS = 1
IORING_FEAT_SINGLE_MMAP = 1
IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED = 4, 5


class _SqOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "flags",
                                               "dropped", "array", "resv1")] + [("user_addr", ctypes.c_uint64)]


class _CqOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "overflow",
                                               "cqes", "flags", "resv1")] + [("user_addr", ctypes.c_uint64)]


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("sq_entries", "cq_entries", "flags", "sq_thread_cpu",
                                               "sq_thread_idle", "features", "wq_fd")] + \
               [("resv", ctypes.c_uint32 * 3), ("sq_off", _SqOffsets), ("cq_off", _CqOffsets)]


# struct io_uring_sqe: opcode, flags, ioprio, fd, off, addr, len, rw_flags, user_data,
# buf_index, personality, splice_fd_in, addr3, pad
_SQE = struct.Struct("<BBHiQQIIQHHiQQ")
_CQE = struct.Struct("<QiI")
_U32 = struct.Struct("<I")


class Ring:
    """One io_uring with (at most) one registered buffer."""

    def __init__(self, entries: int = 4) -> None:
        p = _Params()
        self.fd = syscall("io_uring_setup", entries, ctypes.c_void_p(ctypes.addressof(p)))
        self._maps: list[_mmap.mmap] = []
        try:
            sq_size = p.sq_off.array + p.sq_entries * 4
            cq_size = p.cq_off.cqes + p.cq_entries * _CQE.size
            if p.features & IORING_FEAT_SINGLE_MMAP:
                sq_size = cq_size = max(sq_size, cq_size)
            self._sq = self._map(sq_size, IORING_OFF_SQ_RING)
            self._cq = self._sq if p.features & IORING_FEAT_SINGLE_MMAP else self._map(cq_size, IORING_OFF_CQ_RING)
            self._sqes = self._map(p.sq_entries * _SQE.size, IORING_OFF_SQES)
        except OSError:
            self.close()
            raise
        self._p = p
        self.registered = False

    def _map(self, size: int, offset: int) -> _mmap.mmap:
        m = _mmap.mmap(self.fd, size, _mmap.MAP_SHARED | getattr(_mmap, "MAP_POPULATE", 0),
                       _mmap.PROT_READ | _mmap.PROT_WRITE, offset=offset)
        self._maps.append(m)
        return m

    def register(self, addr: int, length: int) -> None:
        """Pin ``[addr, addr+length)`` as fixed buffer 0 (FOLL_WRITE | FOLL_LONGTERM)."""
        iov = Iovec(addr, length)
        syscall("io_uring_register", self.fd, IORING_REGISTER_BUFFERS, ctypes.c_void_p(ctypes.addressof(iov)), 1)
        self.registered = True

    def unregister(self) -> None:
        if self.registered:
            syscall("io_uring_register", self.fd, IORING_UNREGISTER_BUFFERS, 0, 0)
            self.registered = False

    def fixed(self, opcode: int, fd: int, addr: int, length: int, offset: int = 0) -> int:
        """Submit one READ_FIXED / WRITE_FIXED on buffer 0 and wait for it: its result."""
        p, sq = self._p, self._sq
        tail = _U32.unpack_from(sq, p.sq_off.tail)[0]
        index = tail & _U32.unpack_from(sq, p.sq_off.ring_mask)[0]
        _SQE.pack_into(self._sqes, index * _SQE.size, opcode, 0, 0, fd, offset, addr, length, 0,
                       0x5eed, 0, 0, 0, 0, 0)
        _U32.pack_into(sq, p.sq_off.array + index * 4, index)
        _U32.pack_into(sq, p.sq_off.tail, tail + 1)
        syscall("io_uring_enter", self.fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0)
        cq = self._cq
        head = _U32.unpack_from(cq, p.cq_off.head)[0]
        if head == _U32.unpack_from(cq, p.cq_off.tail)[0]:
            raise LibcError(0, "io_uring: no completion")
        slot = head & _U32.unpack_from(cq, p.cq_off.ring_mask)[0]
        _, res, _ = _CQE.unpack_from(cq, p.cq_off.cqes + slot * _CQE.size)
        _U32.pack_into(cq, p.cq_off.head, head + 1)
        if res < 0:
            raise LibcError(-res, f"io_uring fixed I/O: {os.strerror(-res)}")
        return res

    def drop(self) -> None:
        """Close this process's handle without unregistering: a forked child's copy of
        its parent's ring (the registration belongs to the ring, which the parent keeps)."""
        self.registered = False
        self.close()

    def close(self) -> None:
        try:
            self.unregister()
        finally:
            for m in self._maps:
                m.close()
            self._maps = []
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
