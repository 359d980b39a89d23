"""A search's levels shared out between forked worker processes.

Each worker owns some of the states of the current level (they stay in its memory: a
state never crosses a pipe).  For a level, every worker expands its own states and sends
back, per transition, the parent's id, the step's position in the parent's enumeration,
the child's fingerprint, and -- only for a child it has not seen before, or a transition
the search finds interesting -- the step's text and verdicts.  This process merges the
answers in the sequential order (parent id, then step position), keeps the first of each
fingerprint exactly as a one-process search would, numbers the new states, and tells each
worker which of its children to keep as its share of the next level.  So the result is
the same whatever the number of workers: the visited set and the witnesses live here,
and the order of decisions is fixed.

This is also the shape a distributed search takes (TLC's: workers owning states, one
place deciding what is new); workers here are forked, so they share the policy, the
plugins and the start states without sending them.
"""

from __future__ import annotations

import heapq
import os
import pickle
import struct
import time
from typing import TYPE_CHECKING, Any

from ..parallel import WorkerError, stop_worker
from .search import SAME, fingerprinted, rebuild, transitions, weight
from .visited import FingerprintSet

if TYPE_CHECKING:
    from .search import Node, Search

_HEADER = struct.Struct("<Q")
#: a level of fewer new states than this is not worth evening out between workers
_BALANCE_FROM = 2048


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _recv(fd: int) -> Any:
    head = _read(fd, _HEADER.size)
    if head is None:
        raise EOFError
    (n,) = _HEADER.unpack(head)
    data = _read(fd, n)
    if data is None:
        raise EOFError
    return pickle.loads(data)


def _read(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _tagged(rows: list[Any], k: int) -> Any:
    for row in rows:
        yield row, k


class Workers:
    """The worker processes of one search, started with the first level's states."""

    def __init__(self, search: Search, frontier: list[tuple[int, Node]], depth: int) -> None:
        self.search = search
        #: the states every worker starts with (each expands its share of them)
        self.roots = {gid for gid, _ in frontier}
        self.procs: list[tuple[int, int, int]] = []     # pid, to worker, from worker
        n = max(1, search.jobs)
        for k in range(n):
            mine = frontier[k::n]
            to_r, to_w = os.pipe()
            from_r, from_w = os.pipe()
            pid = os.fork()
            if pid == 0:                                # the worker
                os.close(to_w)
                os.close(from_r)
                for _, _, fd in self.procs:
                    os.close(fd)
                status = 0
                try:
                    _serve(search, mine, frontier, depth, to_r, from_w)
                except BaseException:                  # noqa: BLE001 - reported through the pipe
                    status = 1
                finally:
                    os._exit(status)
            os.close(to_r)
            os.close(from_w)
            self.procs.append((pid, to_w, from_r))

    def level(self, depth: int, visited: FingerprintSet, start: float) -> tuple[list, bool, bool]:
        """Expand one level on the workers; returns what a one-process level returns,
        the next frontier as (id, None) pairs (its states stay with the workers)."""
        search = self.search
        st = search.stats
        b = search.space.bounds
        deadline = start + b.time if b.time else 0.0
        for _, to_w, _ in self.procs:
            _send(to_w, ("expand", depth, deadline))
        shares = []
        cut = False
        for k, (_, _, from_r) in enumerate(self.procs):
            kind, value = self._answer(from_r)
            if kind == "error":
                raise WorkerError(f"a search worker failed: {value}")
            rows, generated, stopped = value
            st.generated += generated
            cut = cut or stopped
            shares.append(_tagged(rows, k))
        # each worker's rows come in its states' order: merge them, do not sort them all
        answers = heapq.merge(*shares, key=lambda rk: (rk[0][0], rk[0][1]))
        keep: list[list[tuple[int, int, int]]] = [[] for _ in self.procs]
        nxt = []
        stop = False
        loads: list[list[int]] = [[] for _ in self.procs]
        for (parent, idx, fp, new, text, verdicts, work), k in answers:
            if verdicts is not None and not stop and search.judge(parent, text, verdicts, depth):
                stop = True
                st.exhaustive, st.stopped = False, "stopped at the first finding"
            if new and visited.add(fp):
                gid = search.trace.add(parent, idx)
                keep[k].append((parent, idx, gid))
                loads[k].append(work)
                nxt.append((gid, None))
                st.distinct += 1
        if b.max_states and st.distinct >= b.max_states and not cut:
            cut = True
        if cut:
            st.stopped = (f"--time {b.time:g}s ran out at depth {depth}:" if deadline and time.perf_counter() >= deadline
                          else f"--max-states {b.max_states:,} reached at depth {depth}:")
            st.left = len(nxt)
        moved = self._balance(keep, loads) if depth < b.depth and not (stop or cut) else [[] for _ in keep]
        for (_, to_w, _), mine, theirs in zip(self.procs, keep, moved):
            _send(to_w, ("keep", mine, theirs))
        return nxt, stop, cut

    def _balance(self, keep: list[list[tuple[int, int, int]]],
                 loads: list[list[int]]) -> list[list[list[tuple[int, int, int]]]]:
        """Even out the next level's work (each new state weighs the steps its parent
        took): a worker left with more than its share gives the surplus (its last states)
        to those with less, which take each again from a start state by the way the trace
        records (a few steps against the dozens its expansion takes).  Which worker
        expands a state changes nothing found: the answers are merged in the sequential
        order."""
        moved: list[list[list[tuple[int, int, int]]]] = [[] for _ in keep]
        sums = [sum(w) for w in loads]
        share = sum(sums) / len(sums)
        if sum(len(k) for k in keep) < _BALANCE_FROM or max(sums) - share <= share / 64:
            return moved
        parents, index = self.search.trace.parents, self.search.trace.index
        for k in range(len(keep)):
            while sums[k] < share:
                g = max(range(len(keep)), key=sums.__getitem__)
                if sums[g] <= share or len(keep[g]) <= 1 or sums[g] - loads[g][-1] < share:
                    break
                _, _, gid = keep[g].pop()
                w = loads[g].pop()
                sums[g] -= w
                sums[k] += w
                chain = []
                while gid not in self.roots:
                    chain.append((gid, parents[gid], index[gid]))
                    gid = parents[gid]
                moved[k].append(chain[::-1])
        return moved

    def _answer(self, fd: int) -> tuple[str, Any]:
        try:
            return _recv(fd)
        except EOFError:
            return ("error", "it died before answering")

    def close(self) -> None:
        for pid, to_w, from_r in self.procs:
            try:
                _send(to_w, ("stop",))
            except OSError:
                pass
            os.close(to_w)
            stop_worker(pid, from_r)
        self.procs = []


def _serve(search: Search, frontier: list[tuple[int, Node]], everything: list[tuple[int, Node]], depth: int,
           rfd: int, wfd: int) -> None:
    """A worker's loop: expand its states when asked, keep the children it is told to
    (and take again those it is given from another worker's share).  Every worker's
    first states (at ``depth``) are kept for good, ``frontier`` being its share of them;
    of the later ones it keeps the way to each (parent and step position) and, within
    its share of ``search.keep``, the state itself."""
    seen = FingerprintSet()
    space, metrics, interesting = search.space, search.copy_metrics, search.interesting
    base = {gid: (node, depth) for gid, node in everything}
    ways: dict[int, tuple[int, int]] = {}
    share = max(1, search.keep // max(1, search.jobs))
    pending: dict[tuple[int, int], Node | None] = {}
    work: list[tuple[int, Node | None]] = list(frontier)
    while True:
        try:
            msg = _recv(rfd)
        except EOFError:
            return
        if msg[0] == "stop":
            return
        if msg[0] == "keep":
            work = []
            room = share
            for parent, idx, gid in msg[1]:
                child = pending[(parent, idx)]
                ways[gid] = (parent, idx)
                if child is not None:
                    room -= weight(child)
                work.append((gid, child if room >= 0 else None))
            if msg[2]:                          # given by another worker: taken again
                for chain in msg[2]:
                    for gid, parent, idx in chain:
                        ways[gid] = (parent, idx)
                    work.append((chain[-1][0], None))
                work.sort(key=lambda w: w[0])   # the rows go back in the states' order
            pending = {}
            continue
        _, level, deadline = msg
        rows = []
        generated = 0
        stopped = False
        # the states of the last level are never expanded: none is kept
        last = space.bounds.depth
        room = share if level < last else -1
        try:
            for n, (gid, node) in enumerate(work):
                if deadline and n % 32 == 0 and time.perf_counter() >= deadline:
                    stopped = True
                    break
                if node is None:
                    node = rebuild(space, base, ways.__getitem__, gid, metrics)
                steps = space.steps(node[0], level)
                fps: dict[int, int] = {}
                mine, taken = len(rows), 0
                for idx, step, child, verdicts, twin, fp in fingerprinted(
                        transitions(node, steps, level, metrics, gid not in base), interesting, node):
                    generated += 1
                    if child is None:               # its twin's state, or its own: seen already
                        new = False                 # (its own fingerprint given where interesting)
                        if twin != SAME:
                            fp = fps.get(twin)      # type: ignore[arg-type]
                    else:
                        taken += 1
                        fps[idx] = fp               # type: ignore[assignment]
                        new = seen.add(fp)
                    hit = interesting(verdicts)
                    if new:
                        room -= weight(child)
                        pending[(gid, idx)] = child if room >= 0 else None
                    if new or hit:
                        rows.append((gid, idx, fp, new, step.text if hit else None,
                                     tuple(v.brief() for v in verdicts) if hit else None, 0))
                # what expanding a new state may cost, for the sharing out of the next
                # level: about as many steps as its parent took (its twins cost nothing)
                if level < last:
                    for k in range(mine, len(rows)):
                        if rows[k][3]:
                            rows[k] = rows[k][:6] + (taken,)
            _send(wfd, ("ok", (rows, generated, stopped)))
        except BaseException as exc:  # noqa: BLE001 - the coordinator reports it
            _send(wfd, ("error", f"{type(exc).__name__}: {exc}"))
            return
