"""What this machine's kernel lets the live backend do (:class:`Capabilities`), and the
system settings a run changes and must give back (:class:`Settings`).

Settings are restored in reverse order on the way out of the ``with`` block, on
success, failure, timeout and Ctrl-C alike: a hugetlb pool grown for a run shrinks back
to its old size, a swapfile made and enabled for a run is disabled and deleted.  One
live run at a time changes them (:class:`MachineLock`): a second would note the first's
temporary values as the ones to give back, and its ksmd scans would merge the first's
pages.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import PolicyKitError
from . import libc
from .observe import pagemap

_HUGETLB = {"2M": "/sys/kernel/mm/hugepages/hugepages-2048kB", "1G": "/sys/kernel/mm/hugepages/hugepages-1048576kB"}
_KSM = "/sys/kernel/mm/ksm"
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"
_MTHP = "/sys/kernel/mm/transparent_hugepage/hugepages-{kb}kB/enabled"
_SWAP_BYTES = 64 << 20


@dataclass(frozen=True)
class Capabilities:
    """What works here; each ``*_reason`` says why something does not ("" when it does)."""

    reason: str = ""             # why nothing can run live
    pfns: bool = False           # pagemap shows PFNs, kpageflags/kpagecount readable (root)
    perf_reason: str = ""
    io_uring_reason: str = ""
    soft_dirty: bool = False
    thp_reason: str = ""
    hugetlb_reason: str = ""
    swap_reason: str = ""
    ksm_reason: str = ""
    hugetlb_1g_reason: str = ""
    #: the mTHP sizes (KiB, below the PMD size) this kernel offers and this user may enable
    mthp_sizes: tuple[int, ...] = ()

    def mthp_reason(self, kb: int) -> str:
        """Why THPs of ``kb`` KiB cannot be made here ("" when they can)."""
        if self.thp_reason or kb == 2048:
            return self.thp_reason
        return "" if kb in self.mthp_sizes else \
            f"{kb} KiB THPs need a kernel with that mTHP size (6.8+) and root (to enable it)"

    @property
    def ksm(self) -> bool:
        return not self.ksm_reason

    @property
    def thp(self) -> bool:
        return not self.thp_reason

    @property
    def hugetlb(self) -> bool:
        return not self.hugetlb_reason

    @property
    def swap(self) -> bool:
        return not self.swap_reason

    @classmethod
    def probe(cls) -> Capabilities:
        """Look at this machine (touches one page of this process, and nothing else)."""
        if not os.path.exists("/proc/self/pagemap"):
            return cls(reason="not Linux, or no /proc/PID/pagemap")
        try:
            libc.syscall_number("perf_event_open")
        except libc.LibcError as exc:
            return cls(reason=str(exc))
        addr = libc.mmap(0, libc.PAGE_SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
        try:
            libc.store(addr, b"\1")
            entry = pagemap(os.getpid(), addr, 1)[0]
        finally:
            libc.munmap(addr, libc.PAGE_SIZE)
        pfns = entry.pfn != 0 and os.access("/proc/kpageflags", os.R_OK) and os.access("/proc/kpagecount", os.R_OK)
        root = os.geteuid() == 0
        return cls(
            pfns=pfns,
            perf_reason=_try(_perf, "perf_event_open(PERF_COUNT_SW_PAGE_FAULTS)"),
            io_uring_reason=_try(_io_uring, "io_uring"),
            soft_dirty=entry.soft_dirty,
            thp_reason=_thp_reason(),
            hugetlb_reason="" if root and os.path.isdir(_HUGETLB["2M"]) else
            "2 MiB hugetlb pages need root (to reserve them) and hugetlbfs support",
            swap_reason="" if root or _swap_active() else "swap needs root (to make and enable a swapfile)",
            ksm_reason="" if root and os.path.exists(f"{_KSM}/run") else
            "KSM needs CONFIG_KSM and root (to run ksmd)",
            hugetlb_1g_reason="" if root and os.path.isdir(_HUGETLB["1G"]) else
            "1 GiB hugetlb pages need root and a CPU and kernel that have them",
            mthp_sizes=tuple(kb for kb in (16, 32, 64, 128, 256, 512, 1024)
                             if root and os.path.exists(_MTHP.format(kb=kb))),
        )


def _try(fn: Callable[[], None], what: str) -> str:
    try:
        fn()
    except OSError as exc:
        return f"{what} is not available: {exc}"
    return ""


def _perf() -> None:
    from .perf import FaultSampler
    FaultSampler().close()


def _io_uring() -> None:
    from .uring import Ring
    Ring().close()


def _thp_reason() -> str:
    try:
        with open(_THP) as f:
            mode = f.read()
    except OSError:
        return "no transparent hugepages in this kernel"
    return "transparent hugepages are disabled ([never])" if "[never]" in mode else ""


def _swap_active() -> bool:
    try:
        with open("/proc/swaps") as f:
            return len(f.read().splitlines()) > 1
    except OSError:
        return False


class MachineBusy(PolicyKitError):
    """The machine could not be had for a live run: another held it for longer than we
    would wait, or its lock could not be opened."""


class MachineLock:
    """This machine, for one live run at a time: an exclusive ``flock()`` of
    ``/run/lock/policykit-live.lock`` (or, for a user who cannot write there, of a file
    in ``$XDG_RUNTIME_DIR`` or the temporary directory), holding the pid of the
    process that has it, and removed when it lets go.  Re-entrant within a process.
    Another run waits for it (saying so on stderr after a second) for at most
    ``wait`` seconds (:data:`LOCK_WAIT`), then gives up with :class:`MachineBusy`.  The
    kernel drops the lock of a process that dies."""

    #: where the lock is, when no path is given (tests point it elsewhere)
    path: str | None = None
    _held: tuple[int, str] | None = None
    _depth = 0

    def __init__(self, wait: float | None = None, path: str | None = None) -> None:
        self.wait = LOCK_WAIT if wait is None else wait
        self._path = path

    def __enter__(self) -> MachineLock:
        cls = MachineLock
        if cls._depth == 0:
            path = self._path or cls.path or _lock_path()
            cls._held = (_take_lock(path, self.wait), path)
        cls._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        cls = MachineLock
        cls._depth -= 1
        if cls._depth == 0 and cls._held is not None:
            (fd, path), cls._held = cls._held, None
            try:
                os.unlink(path)         # while held: a waiter that opened it sees it gone
            except OSError:
                pass
            try:                        # forked agents share the open file: unlock it for all
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


#: how long a live run waits for another to be done with the machine, in seconds
LOCK_WAIT = 600.0


def _lock_path() -> str:
    for where in ("/run/lock", os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir()):
        if where and os.access(where, os.W_OK):
            return os.path.join(where, "policykit-live.lock")
    return os.path.join(tempfile.gettempdir(), "policykit-live.lock")


def _take_lock(path: str, wait: float) -> int:
    """An fd of ``path`` holding its exclusive flock, our pid written in it.  The file
    its holder removes is opened again: a lock on a removed file locks nothing."""
    started = time.monotonic()
    told = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise MachineBusy(f"cannot open the live backend's lock {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            waited = time.monotonic() - started
            if waited >= wait:
                raise MachineBusy(f"another live run ({holder}) has held this machine for {wait:g} s "
                                  f"(lock {path}); try again when it is done") from None
            if not told and waited >= 1.0:
                print(f"waiting for another live run ({holder}) to be done with this machine (lock {path})",
                      file=sys.stderr)
                told = True
            time.sleep(min(0.05, wait - waited))
            continue
        except BaseException:
            os.close(fd)
            raise
        try:
            mine, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
            same = (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
        except OSError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)                    # its holder removed it as we took it: again


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says."""
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "a process"


class Settings:
    """System settings changed for a run, each undone on :meth:`restore` (``with``).

    ``pools``: a longer-lived Settings that changes the huge page pools and makes the
    swap space instead, and gives them back when it is restored -- validate keeps one
    for all its scenarios, so a 1 GiB page is reserved once (seconds the first time) and
    a swapfile made and enabled once (swapoff takes about 20 ms), not around every
    scenario."""

    def __init__(self, pools: Settings | None = None) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._pools = pools
        self._lock = MachineLock()

    def __enter__(self) -> Settings:
        self._lock.__enter__()          # the machine is this run's until restored
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.restore()
        finally:
            self._lock.__exit__()

    def restore(self) -> None:
        """Undo every change, the last first; every undo is tried even if one fails."""
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except OSError as exc:
                errors.append(f"{what}: {exc}")
        if errors:
            raise OSError("could not restore: " + "; ".join(errors))

    def hugetlb_free(self, pages: int, size: str = "2M") -> None:
        """Exactly ``pages`` free huge pages of ``size`` (2M or 1G), as the simulator's
        ``hugetlb_pool`` says: the persistent pool of that size is resized (and given back
        its old size later)."""
        if self._pools is not None:
            self._pools.hugetlb_free(pages, size)
            return
        where = _HUGETLB[size]
        path = f"{where}/nr_hugepages"
        _settle_surplus(where)
        free = _read_int(f"{where}/free_hugepages")
        if free == pages:
            return
        persistent = _read_int(path) - _read_int(f"{where}/surplus_hugepages")
        what = f"nr_hugepages ({size})"
        if not any(w == what for w, _ in self._undo):
            def restore() -> None:
                _write(path, persistent)
                _settle_surplus(where)
            self._undo.append((what, restore))
        # the kernel may stop short (a signal pending, compaction not done yet): ask again
        # while each try gets more
        have = -1
        for _ in range(_POOL_TRIES):
            _write(path, persistent - free + pages)
            got = _read_int(f"{where}/free_hugepages")
            if got == pages or got <= have:
                break
            have = got
        if _read_int(f"{where}/free_hugepages") != pages:
            raise OSError(f"could not make the pool {pages} free huge page(s) of {size}")

    def mthp(self, kb: int) -> None:
        """Anonymous THPs of ``kb`` KiB where MADV_HUGEPAGE asks (``madvise``), and of no
        other size below the PMD size, as cow.c runs each size on its own; every size's
        setting comes back later."""
        paths = {size: _MTHP.format(kb=size) for size in (16, 32, 64, 128, 256, 512, 1024)
                 if os.path.exists(_MTHP.format(kb=size))}
        if not any(w == "mthp" for w, _ in self._undo):
            saved = {size: _mode(path) for size, path in paths.items()}

            def restore() -> None:
                for size, mode in saved.items():
                    _write_text(paths[size], mode)
            self._undo.append(("mthp", restore))
        for size, path in paths.items():
            _write_text(path, "madvise" if size == kb else "never")

    def ksm_scan(self, timeout: float = 10.0) -> None:
        """What one full scan of ksmd merges: ksmd runs, without sleeping and without
        skipping pages, until two more full scans are done (a page merges once its
        checksum held for one scan); then it stops.  Its settings come back later."""
        names = ("run", "sleep_millisecs", "pages_to_scan", "smart_scan")
        if not any(w == "ksm" for w, _ in self._undo):
            saved = {n: _read_int(f"{_KSM}/{n}") for n in names if os.path.exists(f"{_KSM}/{n}")}

            def restore() -> None:
                for n in ("run", *[n for n in names if n != "run"]):
                    if n in saved:
                        _write(f"{_KSM}/{n}", saved[n])
            self._undo.append(("ksm", restore))
        if os.path.exists(f"{_KSM}/smart_scan"):
            _write(f"{_KSM}/smart_scan", 0)
        _write(f"{_KSM}/sleep_millisecs", 0)
        _write(f"{_KSM}/pages_to_scan", 10000)
        start = _read_int(f"{_KSM}/full_scans")
        _write(f"{_KSM}/run", 1)
        deadline = time.monotonic() + timeout
        try:
            while _read_int(f"{_KSM}/full_scans") < start + 2:
                if time.monotonic() > deadline:
                    raise OSError(f"ksmd did not finish two scans in {timeout:g} s")
                time.sleep(0.001)
        finally:
            _write(f"{_KSM}/run", 0)

    def swap(self) -> None:
        """Swap space: what is active, or a swapfile made and enabled for the run (for
        the runs of ``pools``, when there is one)."""
        if self._pools is not None:
            self._pools.swap()
            return
        if _swap_active():
            return
        fd, path = tempfile.mkstemp(prefix="policykit-swap-", dir="/var/tmp")
        try:
            _make_swapfile(fd, _SWAP_BYTES)
        finally:
            os.close(fd)

        def remove() -> None:
            os.unlink(path)
        self._undo.append(("swapfile", remove))
        if libc._libc.swapon(path.encode(), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"swapon {path}: {os.strerror(err)}")

        def swapoff() -> None:
            if libc._libc.swapoff(path.encode()) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"swapoff {path}: {os.strerror(err)}")
        self._undo.append(("swapon", swapoff))


#: how often a pool is asked to grow while each try gets more pages
_POOL_TRIES = 8


def _settle_surplus(where: str, timeout: float = 10.0) -> None:
    """Wait for surplus huge pages to go: pages a killed process's io_uring ring still
    pinned when the pool shrank, which its teardown (a workqueue) frees a moment later --
    more than 2 s later, seen once on a loaded machine."""
    deadline = time.monotonic() + timeout
    while _read_int(f"{where}/surplus_hugepages") and time.monotonic() < deadline:
        time.sleep(0.002)


def _make_swapfile(fd: int, size: int) -> None:
    """A version-1 swap area: a header page (mkswap's layout) and zeros."""
    pages = size // libc.PAGE_SIZE
    os.ftruncate(fd, 0)
    os.posix_fallocate(fd, 0, size)          # a swapfile may have no holes
    header = bytearray(libc.PAGE_SIZE)
    struct.pack_into("<III", header, 1024, 1, pages - 1, 0)       # version, last_page, nr_badpages
    header[1024 + 12:1024 + 28] = os.urandom(16)                 # uuid
    header[-10:] = b"SWAPSPACE2"
    os.pwrite(fd, bytes(header), 0)
    os.fsync(fd)


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def _mode(path: str) -> str:
    """The chosen word of a sysfs setting: ``always [madvise] never`` -> ``madvise``."""
    with open(path) as f:
        text = f.read()
    start = text.index("[") + 1
    return text[start:text.index("]", start)]


def _write_text(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _write(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))
