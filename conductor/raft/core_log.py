"""The core's in-memory view of the Raft log: entries after an offset (the last
compacted index), with term lookups, conflict search and truncation, and a running
byte count of the entries' payloads (the core compacts by bytes as well as by count,
so a log of multi-MB entries stays bounded in memory). Pure data structure: what is
durable is tracked by the core, not here."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from conductor.raft.types import Entry


class RaftLog:
    """Entries `offset+1 .. last_index()`. `offset_term` is the term of entry `offset`
    (or -1 when unknown, e.g. trailing entries kept behind a snapshot after a restart)."""

    __slots__ = ("_cum", "_cum0", "entries", "offset", "offset_term")

    def __init__(self, offset: int = 0, offset_term: int = 0, entries: Iterable[Entry] = ()) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.entries: list[Entry] = []
        # running payload byte totals: _cum[k] covers entries[0..k]; _cum0 is the total
        # before entries[0] (only differences are meaningful)
        self._cum: list[int] = []
        self._cum0 = 0
        for e in entries:
            self.append(e)

    def _cum_at(self, index: int) -> int:
        """Running byte total up to and including entry `index` (offset <= index <= last)."""
        return self._cum0 if index == self.offset else self._cum[index - self.offset - 1]

    def bytes_between(self, lo: int, hi: int) -> int:
        """Payload bytes of entries lo..hi inclusive, clipped to the entries in memory."""
        lo = max(lo, self.offset + 1)
        hi = min(hi, self.last_index())
        if lo > hi:
            return 0
        return self._cum_at(hi) - self._cum_at(lo - 1)

    def bytes_in_memory(self) -> int:
        return self._cum[-1] - self._cum0 if self._cum else 0

    def start_for_bytes(self, index: int, budget: int) -> int:
        """The smallest j >= offset such that entries j+1..index hold <= `budget` bytes."""
        target = self._cum_at(index) - budget
        if target <= self._cum0:
            return self.offset
        return self.offset + 1 + bisect_left(self._cum, target, 0, index - self.offset)

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else max(self.offset_term, 0)

    def term_at(self, index: int) -> int | None:
        """The term of entry `index`, 0 for index 0, None when unknown (compacted or beyond the end)."""
        if index == self.offset:
            return self.offset_term if self.offset_term >= 0 else None
        if index < self.offset or index > self.offset + len(self.entries):
            return None
        return self.entries[index - self.offset - 1].term

    def slice(
        self, lo: int, hi: int, max_count: int | None = None, max_bytes: int | None = None
    ) -> list[Entry]:
        """Entries lo..hi inclusive, limited in count and bytes (at least one entry if any)."""
        hi = min(hi, self.last_index())
        if lo > hi:
            return []
        if lo <= self.offset:
            raise IndexError(f"entry {lo} is compacted (offset {self.offset})")
        if max_count is not None:
            hi = min(hi, lo + max_count - 1)
        out = self.entries[lo - self.offset - 1 : hi - self.offset]
        if max_bytes is not None:
            size = 0
            for k, e in enumerate(out):
                size += len(e.data) + 32
                if size > max_bytes and k > 0:
                    return out[:k]
        return out

    def append(self, e: Entry) -> None:
        if e.index != self.last_index() + 1:
            raise ValueError(f"non-contiguous append: {e.index} after {self.last_index()}")
        if self.entries and e.term < self.entries[-1].term:
            raise ValueError("terms must not decrease along the log")
        self.entries.append(e)
        self._cum.append((self._cum[-1] if self._cum else self._cum0) + len(e.data))

    def truncate_from(self, index: int) -> None:
        """Drop entries >= index."""
        if index <= self.offset:
            raise ValueError("cannot truncate compacted entries")
        del self.entries[index - self.offset - 1 :]
        del self._cum[index - self.offset - 1 :]

    def compact_to(self, index: int) -> None:
        """Drop entries <= index (they are covered by a snapshot)."""
        if index <= self.offset:
            return
        term = self.term_at(index)
        if index >= self.last_index():
            self._cum0 = self._cum[-1] if self._cum else self._cum0
        else:
            self._cum0 = self._cum_at(index)
        del self.entries[: index - self.offset]
        del self._cum[: index - self.offset]
        self.offset = index
        self.offset_term = term if term is not None else -1

    def reset(self, index: int, term: int) -> None:
        self.entries = []
        self._cum = []
        self._cum0 = 0
        self.offset = index
        self.offset_term = term

    def up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (last_index, last_term) at least as up to date as this one?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest j <= index whose term is <= `term` (not below `offset`)."""
        hi = min(index, self.last_index()) - self.offset
        if hi <= 0:
            return self.offset
        pos = bisect_right(self.entries, term, 0, hi, key=lambda e: e.term)
        return self.offset + pos
