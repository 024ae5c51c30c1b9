"""Durable Raft storage: segmented write-ahead log, stable store (term/vote/commit), snapshots.

Layout under ``<storage_dir>/<server_id>/`` (created with mode 0755)::

    raft-log/<first-index:020d>.seg   append-only log segments
    raft-stable                       term, vote, commit (atomically replaced)
    snapshots/<index>-<term>.snap     the newest snapshot (one retained), atomically renamed

Log record format (all integers big-endian)::

    magic u32 | payload length u32 | crc32(payload) u32 | crc32(previous 12 bytes) u32 | payload

The payload is ``messages.encode_entry(entry)``. Every append is written with one gathered
``writev()`` per batch (no copy of large entries) and made durable (``fdatasync`` of the
file, ``fsync`` of the directory when a file is created, renamed or deleted) before the call
returns. The stable store and snapshot files live in `storage_files`.

Recovery rules (on open):

* every record of every segment is verified; indices must be contiguous;
* in the *last* segment, a bad record that is not followed by any valid record is a torn
  write from a crash: the file is truncated there and the record dropped;
* any other bad record (a valid record follows it, or it is in an older segment) is
  corruption of data that may have been committed: :class:`LogCorruptionError` is raised.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from conductor.raft.messages import decode_entry, encode_entry_parts
from conductor.raft.storage_files import (
    DIR_MODE,
    LogCorruptionError,
    SnapshotStore,
    StableStore,
    StorageError,
    fsync_dir,
    write_all,
)
from conductor.raft.types import Entry, HardState, RestoredState, Snapshot

__all__ = [
    "DIR_MODE",
    "LogCorruptionError",
    "LogStore",
    "RaftStorage",
    "SnapshotStore",
    "StableStore",
    "StorageError",
]

log = structlog.get_logger(__name__)

RECORD_MAGIC = 0x52414654  # "RAFT"
_REC_HDR = struct.Struct(">IIII")
_REC_MAGIC_BYTES = struct.pack(">I", RECORD_MAGIC)
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

_U32 = struct.Struct(">I")


def _writev_all(fd: int, bufs: list[bytes]) -> None:
    """Write all buffers with as few syscalls as possible and no concatenation copies."""
    iov_max = 512
    k = 0
    while k < len(bufs):
        batch = bufs[k : k + iov_max]
        n = os.writev(fd, batch)
        total = sum(len(b) for b in batch)
        if n < total:  # partial write: finish this batch the slow way
            rest = memoryview(b"".join(batch))[n:]
            write_all(fd, rest)
        k += iov_max


# ---------------------------------------------------------------- log


@dataclass(slots=True)
class _Segment:
    first_index: int
    path: Path
    offsets: list[int] = field(default_factory=list)  # record start offset of each entry
    terms: list[int] = field(default_factory=list)
    size: int = 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.offsets) - 1


def _segment_name(first_index: int) -> str:
    return f"{first_index:020d}.seg"


def _find_valid_record(buf: bytes, start: int) -> int | None:
    """Offset of the first fully valid record at or after ``start``, or None."""
    pos = buf.find(_REC_MAGIC_BYTES, start)
    while pos != -1:
        if _record_at(buf, pos) is not None:
            return pos
        pos = buf.find(_REC_MAGIC_BYTES, pos + 1)
    return None


def _record_at(buf: bytes, pos: int) -> bytes | None:
    """The payload of a valid record starting at ``pos``, or None if it is not valid."""
    if pos + _REC_HDR.size > len(buf):
        return None
    magic, length, pcrc, hcrc = _REC_HDR.unpack_from(buf, pos)
    if magic != RECORD_MAGIC or zlib.crc32(buf[pos : pos + 12]) != hcrc:
        return None
    end = pos + _REC_HDR.size + length
    if end > len(buf):
        return None
    payload = buf[pos + _REC_HDR.size : end]
    if zlib.crc32(payload) != pcrc:
        return None
    return payload


class LogStore:
    """Segmented append-only log. Blocking calls; every mutation is durable on return."""

    def __init__(self, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES, sync: bool = True):
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.sync = sync
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the last segment, opened for append
        self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._recover()

    # -- recovery

    def _recover(self) -> None:
        paths = sorted(p for p in self.dir.iterdir() if p.suffix == ".seg")
        for p in self.dir.iterdir():
            if p.suffix == ".tmp":
                p.unlink()
        for i, path in enumerate(paths):
            try:
                first = int(path.stem)
            except ValueError as e:
                raise StorageError(f"unexpected file in log directory: {path}") from e
            seg = self._scan(path, first, last=i == len(paths) - 1)
            if not seg.offsets:
                path.unlink()
                continue
            if self._segments and seg.first_index != self._segments[-1].last_index + 1:
                raise LogCorruptionError(
                    f"log segments not contiguous: {path.name} starts at {seg.first_index}, "
                    f"previous ends at {self._segments[-1].last_index}"
                )
            self._segments.append(seg)
        if self._segments:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)

    def _scan(self, path: Path, first: int, *, last: bool) -> _Segment:
        buf = path.read_bytes()
        seg = _Segment(first_index=first, path=path)
        pos = 0
        while pos < len(buf):
            payload = _record_at(buf, pos)
            entry: Entry | None = None
            if payload is not None:
                try:
                    entry = decode_entry(payload)
                except Exception:
                    entry = None
            if entry is None or entry.index != first + len(seg.offsets):
                if entry is not None:
                    raise LogCorruptionError(
                        f"{path}: entry at offset {pos} has index {entry.index}, "
                        f"expected {first + len(seg.offsets)}"
                    )
                nxt = _find_valid_record(buf, pos + 1)
                if not last or nxt is not None:
                    raise LogCorruptionError(
                        f"{path}: corrupt log record at offset {pos} "
                        f"(entry {first + len(seg.offsets)}) followed by valid data; refusing to drop it"
                    )
                log.warning(
                    "raft log: dropping torn tail record",
                    segment=str(path),
                    offset=pos,
                    dropped_bytes=len(buf) - pos,
                )
                with open(path, "r+b") as f:
                    f.truncate(pos)
                    if self.sync:
                        os.fsync(f.fileno())
                break
            seg.offsets.append(pos)
            seg.terms.append(entry.term)
            assert payload is not None
            pos += _REC_HDR.size + len(payload)
        seg.size = pos
        return seg

    # -- queries

    @property
    def first_index(self) -> int:
        """Index of the first stored entry, or 0 if the log is empty."""
        return self._segments[0].first_index if self._segments else 0

    @property
    def last_index(self) -> int:
        """Index of the last stored entry, or 0 if the log is empty."""
        return self._segments[-1].last_index if self._segments else 0

    def is_empty(self) -> bool:
        return not self._segments

    def _locate(self, index: int) -> tuple[int, int] | None:
        if not self._segments or index < self.first_index or index > self.last_index:
            return None
        firsts = [s.first_index for s in self._segments]
        si = bisect.bisect_right(firsts, index) - 1
        return si, index - self._segments[si].first_index

    def term(self, index: int) -> int | None:
        loc = self._locate(index)
        if loc is None:
            return None
        si, k = loc
        return self._segments[si].terms[k]

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (clipped to what is stored)."""
        out: list[Entry] = []
        lo = max(lo, self.first_index)
        hi = min(hi, self.last_index + 1)
        for seg in self._segments:
            if seg.last_index < lo or seg.first_index >= hi:
                continue
            a = max(lo, seg.first_index) - seg.first_index
            b = min(hi, seg.last_index + 1) - seg.first_index
            start = seg.offsets[a]
            end = seg.offsets[b] if b < len(seg.offsets) else seg.size
            with open(seg.path, "rb") as f:
                f.seek(start)
                buf = f.read(end - start)
            pos = 0
            while pos < len(buf):
                _magic, length, _pcrc, _hcrc = _REC_HDR.unpack_from(buf, pos)
                payload = buf[pos + _REC_HDR.size : pos + _REC_HDR.size + length]
                if zlib.crc32(payload) != _pcrc:
                    raise LogCorruptionError(f"{seg.path}: checksum mismatch reading offset {start + pos}")
                out.append(decode_entry(payload))
                pos += _REC_HDR.size + length
        return out

    # -- mutations

    def _new_segment(self, first_index: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.dir / _segment_name(first_index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        if self.sync:
            fsync_dir(self.dir)
        self._segments.append(_Segment(first_index=first_index, path=path))

    def append(self, entries: Sequence[Entry]) -> None:
        """Append a contiguous batch; an overlapping batch first truncates the conflicting suffix."""
        if not entries:
            return
        first = entries[0].index
        for k, e in enumerate(entries):
            if e.index != first + k:
                raise ValueError("entries to append are not contiguous")
        if self._segments:
            if first <= self.last_index:
                self.truncate_from(first)
            if self._segments and first != self.last_index + 1:
                raise ValueError(f"append at {first} leaves a gap after last index {self.last_index}")
        if not self._segments or self._segments[-1].size >= self.segment_bytes:
            self._new_segment(first)
        seg = self._segments[-1]
        parts: list[bytes] = []
        pos = seg.size
        for e in entries:
            # the entry's wire encoding as [header, data] pieces: no multi-MB concatenation
            pieces = encode_entry_parts(e)
            length = sum(len(p) for p in pieces)
            crc = 0
            for piece in pieces:
                crc = zlib.crc32(piece, crc)
            head = struct.pack(">III", RECORD_MAGIC, length, crc)
            parts.append(head + _U32.pack(zlib.crc32(head)))
            parts.extend(pieces)
            seg.offsets.append(pos)
            seg.terms.append(e.term)
            pos += _REC_HDR.size + length
        assert self._fd is not None
        try:
            _writev_all(self._fd, parts)
            if self.sync:
                os.fdatasync(self._fd)
        except OSError:
            del seg.offsets[len(seg.offsets) - len(entries) :]
            del seg.terms[len(seg.terms) - len(entries) :]
            raise
        seg.size = pos

    def truncate_from(self, index: int) -> None:
        """Delete every entry with index >= ``index``."""
        if not self._segments or index > self.last_index:
            return
        removed = False
        while self._segments and self._segments[-1].first_index >= index:
            seg = self._segments.pop()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            seg.path.unlink()
            removed = True
        if removed and self.sync:
            fsync_dir(self.dir)
        if not self._segments:
            return
        seg = self._segments[-1]
        if self._fd is None:
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        k = index - seg.first_index
        if k < len(seg.offsets):
            cut = seg.offsets[k]
            os.ftruncate(self._fd, cut)
            if self.sync:
                os.fsync(self._fd)
            del seg.offsets[k:]
            del seg.terms[k:]
            seg.size = cut

    def compact_until(self, index: int) -> None:
        """Allow entries with index <= ``index`` to be dropped: deletes whole segments covered by it.

        If ``index`` covers the whole log, the log becomes empty (the next append starts a new
        segment at any index)."""
        if not self._segments:
            return
        if index >= self.last_index:
            self.reset()
            return
        removed = False
        while len(self._segments) > 1 and self._segments[0].last_index <= index:
            seg = self._segments.pop(0)
            seg.path.unlink()
            removed = True
        if removed and self.sync:
            fsync_dir(self.dir)

    def reset(self) -> None:
        """Delete the whole log."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for seg in self._segments:
            seg.path.unlink()
        self._segments.clear()
        if self.sync:
            fsync_dir(self.dir)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------- facade


class RaftStorage:
    """Everything one server persists, under ``<base_dir>/<server_id>/``."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        server_id: str,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        sync: bool = True,
    ):
        self.path = Path(base_dir) / server_id
        self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.log = LogStore(self.path / "raft-log", segment_bytes=segment_bytes, sync=sync)
        self.stable = StableStore(self.path / "raft-stable", sync=sync)
        self.snapshots = SnapshotStore(self.path / "snapshots", sync=sync)
        if sync:  # make the (possibly new) directories themselves durable
            fsync_dir(self.path.parent)
            fsync_dir(self.path)

    def is_new(self) -> bool:
        """True when nothing was ever persisted (a bootstrap may proceed)."""
        return not self.stable.exists() and self.log.is_empty() and self.snapshots.latest() is None

    def load(self) -> RestoredState:
        """Read the state to hand to the core: hard state, newest snapshot, log entries after it."""
        hs = self.stable.state
        snap = self.snapshots.latest()
        after = snap.meta.index if snap is not None else 0
        lg = self.log
        if snap is not None and not lg.is_empty():
            t = lg.term(snap.meta.index)
            if lg.last_index < snap.meta.index or (t is not None and t != snap.meta.term):
                log.info("raft log: discarding log superseded by snapshot", snapshot_index=snap.meta.index)
                lg.reset()
        entries: tuple[Entry, ...] = ()
        if not lg.is_empty():
            if lg.first_index > after + 1:
                raise LogCorruptionError(
                    f"log starts at {lg.first_index} but the snapshot only covers up to {after}"
                )
            entries = tuple(lg.entries(after + 1, lg.last_index + 1))
        if entries:
            hs_commit = min(hs.commit, entries[-1].index)
        else:
            hs_commit = min(hs.commit, after)
        hs = HardState(term=hs.term, vote=hs.vote, commit=max(hs_commit, after))
        return RestoredState(hard_state=hs, snapshot=snap, entries=entries)

    def save_snapshot(self, snap: Snapshot) -> None:
        """Persist a snapshot; a log that does not contain the snapshot's last entry is discarded."""
        self.snapshots.save(snap)
        t = self.log.term(snap.meta.index)
        if t is None or t != snap.meta.term:
            self.log.reset()

    def persist(
        self,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        compact_to: int | None = None,
        truncate_from: int | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        """Durably apply one Ready's worth of changes (in the order the core requires)."""
        if snapshot is not None:
            self.save_snapshot(snapshot)
        if truncate_from is not None:
            self.log.truncate_from(truncate_from)
        if entries:
            self.log.append(entries)
        if hard_state is not None:
            self.stable.save(hard_state)
        if compact_to is not None:
            self.log.compact_until(compact_to)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stable.save(self.stable.state, force=self.stable.exists())
        self.log.close()
