"""The replicated state machine interface the Raft node drives, plus a small log-recording FSM.

`RaftNode` calls `apply` for every committed NORMAL entry, in log order, exactly once per
incarnation of the state machine (after `restore` it continues from the snapshot's index).
NOOP and CONFIG entries are Raft-internal and never reach the state machine. `snapshot`
is called right after an apply batch, so its bytes reflect exactly the entries applied so
far; an empty state machine may return ``b""`` (a valid snapshot, see optimism#13363).
"""

from __future__ import annotations

import struct
from typing import Protocol

from conductor.raft.types import Entry

_U32 = struct.Struct(">I")


class StateMachine(Protocol):
    def apply(self, entry: Entry) -> object:
        """Apply one committed entry; the return value is handed to the proposer."""
        ...

    def snapshot(self) -> bytes:
        """Serialise the whole state (called between applies)."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a snapshot's bytes."""
        ...


class RecordingFSM:
    """Keeps every applied payload in order (tests, the cluster harness, the benchmark).

    ``apply`` returns the number of entries applied so far."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.last_index = 0

    def apply(self, entry: Entry) -> object:
        self.items.append(entry.data)
        self.last_index = entry.index
        return len(self.items)

    def snapshot(self) -> bytes:
        parts = [_U32.pack(len(self.items))]
        for it in self.items:
            parts.append(_U32.pack(len(it)))
            parts.append(it)
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        items: list[bytes] = []
        if data:
            (n,) = _U32.unpack_from(data, 0)
            pos = 4
            for _ in range(n):
                (ln,) = _U32.unpack_from(data, pos)
                pos += 4
                items.append(data[pos : pos + ln])
                pos += ln
        self.items = items
