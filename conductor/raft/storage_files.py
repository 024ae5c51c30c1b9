"""Small durable files of Raft storage: the stable store (term, vote, commit) and snapshots.

Both are replaced atomically (write a tmp file, fsync it, rename, fsync the directory);
leftover ``*.tmp`` files from a crash are ignored and removed. See `storage` for the layout.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import structlog

from conductor.raft.messages import decode_configuration, encode_configuration
from conductor.raft.types import HardState, Snapshot, SnapshotMeta

log = structlog.get_logger(__name__)

DIR_MODE = 0o755
_STABLE_MAGIC = b"RSTB"
_STABLE_HDR = struct.Struct(">4sIQQH")  # magic, version, term, commit, vote length
_SNAP_MAGIC = b"RSNP"
_SNAP_HDR = struct.Struct(">4sIQQI")  # magic, version, index, term, configuration length
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


class StorageError(Exception):
    """Storage could not be read or written."""


class LogCorruptionError(StorageError):
    """A log record other than a torn tail failed verification."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, buf: bytes | memoryview) -> None:
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _atomic_write(path: Path, chunks: Iterable[bytes], sync: bool) -> None:
    """Write ``chunks`` to ``path`` via a tmp file: write, fsync, rename, fsync directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


# ---------------------------------------------------------------- stable store


class StableStore:
    """term, vote and commit in one small file, replaced atomically."""

    def __init__(self, path: Path, *, sync: bool = True):
        self.path = path
        self.sync = sync
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            tmp.unlink()
        self._state = self._read()

    def _read(self) -> HardState:
        if not self.path.exists():
            return HardState(term=0, vote=None, commit=0)
        buf = self.path.read_bytes()
        if len(buf) < _STABLE_HDR.size + 4 or zlib.crc32(buf[:-4]) != _U32.unpack_from(buf, len(buf) - 4)[0]:
            raise StorageError(f"{self.path}: stable store is corrupt (checksum mismatch)")
        magic, _version, term, commit, vlen = _STABLE_HDR.unpack_from(buf, 0)
        if magic != _STABLE_MAGIC:
            raise StorageError(f"{self.path}: not a raft stable store")
        vote_b = buf[_STABLE_HDR.size : _STABLE_HDR.size + vlen]
        return HardState(term=term, vote=vote_b.decode() if vlen else None, commit=commit)

    @property
    def state(self) -> HardState:
        return self._state

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, hs: HardState, *, force: bool = False) -> None:
        """Persist ``hs``. A change of the commit index alone is kept in memory only (a stale
        commit index on disk is always safe: it is a lower bound), unless ``force``."""
        old = self._state
        self._state = hs
        if not force and self.path.exists() and (hs.term, hs.vote) == (old.term, old.vote):
            return
        vote_b = hs.vote.encode() if hs.vote is not None else b""
        body = _STABLE_HDR.pack(_STABLE_MAGIC, 1, hs.term, hs.commit, len(vote_b)) + vote_b
        _atomic_write(self.path, [body, _U32.pack(zlib.crc32(body))], self.sync)


# ---------------------------------------------------------------- snapshots


class SnapshotStore:
    """Snapshot files in ``snapshots/``; the newest ``retain`` are kept."""

    def __init__(self, directory: Path, *, retain: int = 1, sync: bool = True):
        self.dir = directory
        self.retain = max(1, retain)
        self.sync = sync
        self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for p in self.dir.iterdir():
            if p.name.endswith(".tmp"):
                log.info("raft snapshots: removing leftover temporary file", path=str(p))
                p.unlink()

    def _files(self) -> list[Path]:
        def key(p: Path) -> tuple[int, int]:
            idx, term = p.stem.split("-")
            return int(idx), int(term)

        return sorted((p for p in self.dir.iterdir() if p.suffix == ".snap"), key=key)

    def save(self, snap: Snapshot) -> None:
        meta = snap.meta
        conf = encode_configuration(meta.configuration)
        head = _SNAP_HDR.pack(_SNAP_MAGIC, 1, meta.index, meta.term, len(conf)) + conf
        head += _U64.pack(len(snap.data))
        crc = zlib.crc32(snap.data, zlib.crc32(head))
        path = self.dir / f"{meta.index:020d}-{meta.term:020d}.snap"
        _atomic_write(path, [head, snap.data, _U32.pack(crc)], self.sync)
        old = [p for p in self._files() if p != path]
        if len(old) >= self.retain:
            for p in old[: len(old) - self.retain + 1]:
                p.unlink()
            if self.sync:
                fsync_dir(self.dir)

    @staticmethod
    def read(path: Path) -> Snapshot:
        buf = path.read_bytes()
        if len(buf) < _SNAP_HDR.size + 12 or zlib.crc32(buf[:-4]) != _U32.unpack_from(buf, len(buf) - 4)[0]:
            raise StorageError(f"{path}: snapshot checksum mismatch")
        magic, _version, index, term, clen = _SNAP_HDR.unpack_from(buf, 0)
        if magic != _SNAP_MAGIC:
            raise StorageError(f"{path}: not a raft snapshot")
        pos = _SNAP_HDR.size
        conf = decode_configuration(buf[pos : pos + clen])
        pos += clen
        (dlen,) = _U64.unpack_from(buf, pos)
        pos += 8
        data = buf[pos : pos + dlen]
        if len(data) != dlen or pos + dlen != len(buf) - 4:
            raise StorageError(f"{path}: snapshot length mismatch")
        return Snapshot(meta=SnapshotMeta(index=index, term=term, configuration=conf), data=data)

    def latest(self) -> Snapshot | None:
        """The newest readable snapshot (an unreadable one is logged and skipped)."""
        for path in reversed(self._files()):
            try:
                return self.read(path)
            except (StorageError, ValueError) as e:
                log.error("raft snapshots: skipping unreadable snapshot", path=str(path), error=str(e))
        return None
