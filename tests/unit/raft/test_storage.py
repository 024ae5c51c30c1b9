"""Durable Raft storage: log recovery after crashes at every byte, compaction, stable store, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.raft.storage import (
    LogCorruptionError,
    LogStore,
    RaftStorage,
    SnapshotStore,
    StableStore,
    StorageError,
)
from conductor.raft.types import (
    Configuration,
    Entry,
    EntryKind,
    HardState,
    Server,
    Snapshot,
    SnapshotMeta,
    Suffrage,
)

CONF = Configuration(
    servers=(Server("a", "127.0.0.1:1", Suffrage.VOTER), Server("b", "127.0.0.1:2", Suffrage.NONVOTER)),
    index=1,
)


def ent(index: int, term: int = 1, size: int = 10) -> Entry:
    return Entry(term=term, index=index, kind=EntryKind.NORMAL, data=bytes([index % 251]) * size)


def seg_files(d: Path) -> list[Path]:
    return sorted((d / "raft-log").glob("*.seg"))


def test_append_reopen_round_trip(tmp_path: Path) -> None:
    st = RaftStorage(tmp_path, "n1")
    entries = [ent(i) for i in range(1, 11)]
    st.persist(hard_state=HardState(3, "n2", 5), entries=entries[:4])
    st.persist(entries=entries[4:])
    st.close()
    assert (tmp_path / "n1").stat().st_mode & 0o777 == 0o755
    st2 = RaftStorage(tmp_path, "n1")
    r = st2.load()
    assert r.entries == tuple(entries)
    assert r.hard_state == HardState(3, "n2", 5)
    assert r.snapshot is None
    assert st2.log.first_index == 1 and st2.log.last_index == 10
    assert st2.log.term(10) == 1 and st2.log.term(11) is None
    assert st2.log.entries(3, 6) == entries[2:5]
    st2.close()


def test_is_new(tmp_path: Path) -> None:
    st = RaftStorage(tmp_path, "n1")
    assert st.is_new()
    st.persist(hard_state=HardState(1, None, 0))
    assert not st.is_new()


def test_truncate_conflicting_suffix(tmp_path: Path) -> None:
    lg = LogStore(tmp_path / "log")
    lg.append([ent(i) for i in range(1, 8)])
    lg.truncate_from(5)
    assert lg.last_index == 4
    lg.append([ent(5, term=2), ent(6, term=2)])
    # overlapping append truncates automatically
    lg.append([ent(6, term=3)])
    lg.close()
    lg2 = LogStore(tmp_path / "log")
    got = [(e.index, e.term) for e in lg2.entries(1, 100)]
    assert got == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (6, 3)]
    with pytest.raises(ValueError, match="gap"):
        lg2.append([ent(9)])


def test_segments_rotate_truncate_and_compact(tmp_path: Path) -> None:
    lg = LogStore(tmp_path / "raft-log", segment_bytes=200)
    for i in range(1, 31):
        lg.append([ent(i, size=50)])
    assert len(seg_files(tmp_path)) > 3
    lg.truncate_from(20)
    assert lg.last_index == 19
    lg.compact_until(12)
    assert lg.first_index <= 13 and lg.last_index == 19
    lg.close()
    lg2 = LogStore(tmp_path / "raft-log", segment_bytes=200)
    assert lg2.last_index == 19 and lg2.first_index <= 13
    assert [e.index for e in lg2.entries(13, 20)] == list(range(13, 20))
    lg2.compact_until(19)  # everything covered: log becomes empty
    assert lg2.is_empty() and seg_files(tmp_path) == []
    lg2.append([ent(20)])
    lg2.close()
    assert LogStore(tmp_path / "raft-log").first_index == 20


def _write_log(d: Path, n: int, size: int = 100) -> tuple[Path, list[int]]:
    lg = LogStore(d / "raft-log")
    for i in range(1, n + 1):
        lg.append([ent(i, size=size)])
    offsets = list(lg._segments[0].offsets)
    lg.close()
    (path,) = seg_files(d)
    return path, offsets


def test_torn_last_record_at_every_byte_offset(tmp_path: Path) -> None:
    path, offsets = _write_log(tmp_path, 3, size=40)
    full = path.read_bytes()
    last_start = offsets[-1]
    for cut in range(last_start, len(full)):
        path.write_bytes(full[:cut])
        lg = LogStore(tmp_path / "raft-log")
        assert lg.last_index == 2, cut
        assert [e.index for e in lg.entries(1, 10)] == [1, 2]
        lg.close()
        assert path.stat().st_size == last_start  # truncated back to the record boundary
    # the full file is intact
    path.write_bytes(full)
    assert LogStore(tmp_path / "raft-log").last_index == 3


def test_garbage_appended_is_dropped(tmp_path: Path) -> None:
    path, _ = _write_log(tmp_path, 3)
    size = path.stat().st_size
    for garbage in (b"\x00" * 16, b"garbage!" * 7, os.urandom(3), b"RAFT" + os.urandom(40)):
        with open(path, "ab") as f:
            f.write(garbage)
        lg = LogStore(tmp_path / "raft-log")
        assert lg.last_index == 3
        lg.append([ent(4)])
        lg.truncate_from(4)
        lg.close()
        assert path.stat().st_size == size


@pytest.mark.parametrize("where", ["payload", "header-length", "header-crc"])
def test_corrupt_middle_record_raises(tmp_path: Path, where: str) -> None:
    path, offsets = _write_log(tmp_path, 3)
    buf = bytearray(path.read_bytes())
    pos = offsets[1] + {"payload": 40, "header-length": 6, "header-crc": 13}[where]
    buf[pos] ^= 0x55
    path.write_bytes(bytes(buf))
    with pytest.raises(LogCorruptionError, match="corrupt log record"):
        LogStore(tmp_path / "raft-log")


def test_corrupt_older_segment_raises(tmp_path: Path) -> None:
    lg = LogStore(tmp_path / "raft-log", segment_bytes=100)
    for i in range(1, 6):
        lg.append([ent(i, size=80)])
    lg.close()
    first = seg_files(tmp_path)[0]
    buf = bytearray(first.read_bytes())
    buf[-1] ^= 0xFF  # last record of a non-final segment
    first.write_bytes(bytes(buf))
    with pytest.raises(LogCorruptionError):
        LogStore(tmp_path / "raft-log", segment_bytes=100)


def test_large_entries_batch(tmp_path: Path) -> None:
    lg = LogStore(tmp_path / "raft-log")
    big = [Entry(1, i, EntryKind.NORMAL, os.urandom(2 * 1024 * 1024)) for i in range(1, 4)]
    lg.append(big)
    lg.close()
    lg2 = LogStore(tmp_path / "raft-log")
    assert lg2.entries(1, 4) == big


def test_stable_store_atomic(tmp_path: Path) -> None:
    p = tmp_path / "raft-stable"
    s = StableStore(p)
    assert s.state == HardState(0, None, 0)
    s.save(HardState(4, "x", 2))
    s.save(HardState(4, "x", 9))  # commit-only change: not rewritten
    assert StableStore(p).state == HardState(4, "x", 2)
    s.save(HardState(4, "x", 9), force=True)
    assert StableStore(p).state == HardState(4, "x", 9)
    # a leftover tmp file from a crash is ignored
    (tmp_path / "raft-stable.tmp").write_bytes(b"partial")
    assert StableStore(p).state.term == 4
    assert not (tmp_path / "raft-stable.tmp").exists()
    buf = bytearray(p.read_bytes())
    buf[10] ^= 1
    p.write_bytes(bytes(buf))
    with pytest.raises(StorageError, match="corrupt"):
        StableStore(p)


def test_snapshot_store_retains_one_and_ignores_tmp(tmp_path: Path) -> None:
    ss = SnapshotStore(tmp_path / "snapshots")
    assert ss.latest() is None
    s1 = Snapshot(SnapshotMeta(10, 2, CONF), b"state-10")
    s2 = Snapshot(SnapshotMeta(20, 3, CONF), b"state-20")
    ss.save(s1)
    ss.save(s2)
    assert len(list((tmp_path / "snapshots").glob("*.snap"))) == 1
    # a half-written newer snapshot (crash before rename) is ignored
    (tmp_path / "snapshots" / f"{30:020d}-{3:020d}.snap.tmp").write_bytes(b"junk")
    ss2 = SnapshotStore(tmp_path / "snapshots")
    assert ss2.latest() == s2
    assert list((tmp_path / "snapshots").glob("*.tmp")) == []


def test_empty_snapshot_is_valid(tmp_path: Path) -> None:
    ss = SnapshotStore(tmp_path / "snapshots")
    empty = Snapshot(SnapshotMeta(5, 1, CONF), b"")
    ss.save(empty)
    assert SnapshotStore(tmp_path / "snapshots").latest() == empty


def test_corrupt_snapshot_skipped(tmp_path: Path) -> None:
    ss = SnapshotStore(tmp_path / "snapshots", retain=2)
    ss.save(Snapshot(SnapshotMeta(5, 1, CONF), b"old"))
    ss.save(Snapshot(SnapshotMeta(9, 1, CONF), b"new"))
    newest = sorted((tmp_path / "snapshots").glob("*.snap"))[-1]
    buf = bytearray(newest.read_bytes())
    buf[-6] ^= 1
    newest.write_bytes(bytes(buf))
    latest = ss.latest()
    assert latest is not None and latest.data == b"old"


def test_load_after_snapshot_and_compaction(tmp_path: Path) -> None:
    st = RaftStorage(tmp_path, "n1", segment_bytes=150)
    st.persist(entries=[ent(i) for i in range(1, 21)], hard_state=HardState(1, "n1", 20))
    snap = Snapshot(SnapshotMeta(15, 1, CONF), b"fsm@15")
    st.persist(snapshot=snap, compact_to=12)
    st.close()
    st2 = RaftStorage(tmp_path, "n1", segment_bytes=150)
    r = st2.load()
    assert r.snapshot == snap
    assert [e.index for e in r.entries] == list(range(16, 21))
    assert r.hard_state.commit == 20


def test_installed_snapshot_discards_mismatching_log(tmp_path: Path) -> None:
    st = RaftStorage(tmp_path, "n1")
    st.persist(entries=[ent(i, term=1) for i in range(1, 6)])
    # leader's snapshot at index 8 term 2: our log does not contain it -> discarded
    snap = Snapshot(SnapshotMeta(8, 2, CONF), b"x")
    st.persist(snapshot=snap)
    assert st.log.is_empty()
    st.persist(entries=[ent(9, term=2)])
    st.close()
    r = RaftStorage(tmp_path, "n1").load()
    assert r.snapshot == snap and [e.index for e in r.entries] == [9]


def test_load_discards_log_superseded_by_snapshot_after_crash(tmp_path: Path) -> None:
    # crash between saving an installed snapshot and resetting the log
    st = RaftStorage(tmp_path, "n1")
    st.persist(entries=[ent(i, term=1) for i in range(1, 6)])
    st.snapshots.save(Snapshot(SnapshotMeta(4, 2, CONF), b"x"))
    st.close()
    r = RaftStorage(tmp_path, "n1").load()
    assert r.snapshot is not None and r.entries == ()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["append", "truncate", "compact", "reopen"]), st.integers(0, 12)),
        max_size=25,
    )
)
def test_log_matches_model_across_operations_and_reopens(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    d = tmp_path_factory.mktemp("log") / "raft-log"
    lg = LogStore(d, segment_bytes=120, sync=False)
    model: dict[int, Entry] = {}
    term = 1
    for op, k in ops:
        last = max(model) if model else 0
        if op == "append":
            term += k % 2
            start = last + 1 if model else 1
            batch = [ent(i, term=term, size=5 + k) for i in range(start, start + k % 4 + 1)]
            lg.append(batch)
            model.update({e.index: e for e in batch})
        elif op == "truncate" and model:
            cut = max(min(model), last - k % 3)
            lg.truncate_from(cut)
            model = {i: e for i, e in model.items() if i < cut}
        elif op == "compact" and model:
            upto = min(model) + k % 3
            lg.compact_until(upto)
            if upto >= last:
                model = {}
        elif op == "reopen":
            lg.close()
            lg = LogStore(d, segment_bytes=120, sync=False)
        if model:
            got = {e.index: e for e in lg.entries(lg.first_index, lg.last_index + 1)}
            assert lg.last_index == max(model)
            assert lg.first_index >= min(model)
            assert all(got[i] == model[i] for i in got)
            assert all(lg.term(i) == model[i].term for i in got)
            # compaction only drops a prefix
            model = {i: e for i, e in model.items() if i >= lg.first_index}
        else:
            assert lg.is_empty()
    lg.close()
