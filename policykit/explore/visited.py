"""The visited set: 64-bit fingerprints in one flat open-addressing table.

A Python ``set`` of ints costs about 60 bytes a state (the int object, the hash and the
pointer, the table's slack); this keeps 8 bytes a slot in an ``array('Q')`` at most
half full: 16 to 32 bytes a state.  Fingerprint 0 is the empty slot's, so 0 is stored
as 1 (the chance that this merges two states is that of any other collision).
"""

from __future__ import annotations

from array import array

_MASK64 = (1 << 64) - 1


class FingerprintSet:
    """A set of 64-bit fingerprints; :meth:`add` says whether one was new."""

    __slots__ = ("_table", "_mask", "_len")

    def __init__(self, capacity: int = 1 << 12) -> None:
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._table = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        """Bytes the table takes."""
        return self._table.itemsize * len(self._table)

    def _slot(self, fp: int) -> int:
        """Where ``fp`` (stored form) is, or the empty slot where it would go."""
        table, mask = self._table, self._mask
        i = (fp ^ (fp >> 29)) & mask
        while table[i] != 0 and table[i] != fp:
            i = (i + 1) & mask
        return i

    def add(self, fp: int) -> bool:
        """Add ``fp``; True when it was not there yet."""
        fp = (fp & _MASK64) or 1
        i = self._slot(fp)
        if self._table[i] == fp:
            return False
        self._table[i] = fp
        self._len += 1
        if self._len * 2 > self._mask:
            self._grow()
        return True

    def __contains__(self, fp: int) -> bool:
        fp = (fp & _MASK64) or 1
        return self._table[self._slot(fp)] == fp

    def _grow(self) -> None:
        old = self._table
        size = len(old) * 2
        table = array("Q", bytes(8 * size))
        mask = size - 1
        for fp in old:                  # _slot(), inline: every one of them is new here
            if fp:
                i = (fp ^ (fp >> 29)) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = fp
        self._table, self._mask = table, mask
