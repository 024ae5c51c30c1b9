"""Snapshots and log compaction: snapshot_due/compact, trailing logs, InstallSnapshot
catch-up of a lagging follower, and restart from a snapshot."""

from __future__ import annotations

import dataclasses

import pytest

from conductor.raft.core_log import RaftLog
from conductor.raft.messages import InstallSnapshot
from conductor.raft.types import Entry, EntryKind

from .cluster import SIM_CONFIG, Cluster

IDS = ["n1", "n2", "n3"]


def _fill(cl: Cluster, n: int, tag: str) -> None:
    for k in range(n):
        cl.propose(f"{tag}{k}".encode())


def test_compaction_saves_a_snapshot_and_keeps_trailing_logs() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    c = cl.cores[lead]
    assert not c.snapshot_due()
    _fill(cl, SIM_CONFIG.snapshot_threshold, "e")
    assert c.snapshot_due()
    applied = c.applied
    c.compact(applied, b"state@%d" % applied)
    rd = c.ready()
    assert rd is not None and rd.snapshot_to_save is not None
    assert rd.snapshot_to_save.meta.index == applied and rd.snapshot_to_save.meta.term == c.term
    assert rd.snapshot_to_save.meta.configuration.voters() == tuple(IDS)
    assert rd.compact_to == applied - SIM_CONFIG.trailing_logs == c.log.offset
    c.advance(rd)
    assert not c.snapshot_due()
    with pytest.raises(ValueError):
        c.compact(c.applied + 5, b"")


def test_lagging_follower_catches_up_with_install_snapshot() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    lagger = next(i for i in IDS if i != lead)
    cl.isolate(lagger)
    cl.cut -= {frozenset((a, b)) for a in IDS for b in IDS if lagger not in (a, b)}
    _fill(cl, 40, "e")
    c = cl.cores[lead]
    c.compact(c.applied, b"SNAP")
    cl.flush()
    assert c.log.offset > cl.cores[lagger].log.last_index()
    cl.heal()
    cl.run(0.5)
    assert any(isinstance(m, InstallSnapshot) and m.dst == lagger for m in cl.delivered)
    assert [s.data for s in cl.snapshots_applied[lagger]] == [b"SNAP"]
    f = cl.cores[lagger]
    assert f.commit == c.commit and f.applied == c.applied
    saved = cl.disks[lagger].snapshot
    assert saved is not None and saved.data == b"SNAP"
    cl.propose(b"after")
    cl.run(0.2)
    assert cl.data_applied(lagger)[-1] == b"after"


def test_restart_from_snapshot_redelivers_only_later_entries() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    _fill(cl, 10, "a")
    c = cl.cores[lead]
    snap_at = c.applied
    c.compact(snap_at, b"S")
    cl.flush()
    _fill(cl, 3, "b")
    cl.crash(lead)
    cl.restart(lead)
    r = cl.cores[lead]
    assert r.snapshot is not None and r.snapshot.data == b"S" and r.snapshot.meta.index == snap_at
    assert cl.applied[lead][0].index == snap_at + 1  # re-delivered right after restart
    cl.run(1.0)
    assert cl.data_applied(lead)[:3] == [b"b0", b"b1", b"b2"]
    assert all(e.index > snap_at for e in cl.applied[lead])


# ---------------------------------------------------------------- memory cap (bytes)


def test_raft_log_byte_accounting_through_append_truncate_and_compact() -> None:
    lg = RaftLog()
    for i in range(1, 11):
        lg.append(Entry(1, i, EntryKind.NORMAL, b"x" * (10 * i)))
    assert lg.bytes_in_memory() == sum(10 * i for i in range(1, 11))
    assert lg.bytes_between(3, 4) == 70 and lg.bytes_between(0, 100) == lg.bytes_in_memory()
    assert lg.start_for_bytes(10, 100) == 9  # entry 10 alone holds 100 bytes
    assert lg.start_for_bytes(10, 99) == 10  # not even the last one fits
    assert lg.start_for_bytes(10, 190) == 8 and lg.start_for_bytes(10, 189) == 9
    assert lg.start_for_bytes(10, 10**9) == 0
    lg.truncate_from(8)
    assert lg.bytes_in_memory() == sum(10 * i for i in range(1, 8))
    lg.append(Entry(2, 8, EntryKind.NORMAL, b"y" * 5))
    lg.compact_to(4)
    assert lg.bytes_in_memory() == 50 + 60 + 70 + 5 and lg.bytes_between(1, 5) == 50
    assert lg.start_for_bytes(8, 75) == 6 and lg.start_for_bytes(8, 10**9) == 4
    lg.compact_to(8)
    assert lg.bytes_in_memory() == 0 and lg.bytes_between(1, 8) == 0
    lg.append(Entry(2, 9, EntryKind.NORMAL, b"z" * 7))
    assert lg.bytes_in_memory() == 7 and lg.start_for_bytes(9, 7) == 8
    lg.reset(20, 3)
    assert lg.bytes_in_memory() == 0


def test_snapshot_is_due_by_bytes_before_the_entry_count() -> None:
    cfg = dataclasses.replace(SIM_CONFIG, snapshot_threshold=1000, trailing_logs=1000)
    cl = Cluster(IDS, cfg=cfg)
    c = cl.cores[cl.elect()]
    big = b"B" * (cfg.snapshot_threshold_bytes // 4)
    for _ in range(3):
        cl.propose(big)
    assert not c.snapshot_due()
    cl.propose(big)
    assert c.snapshot_due()
    applied = c.applied
    c.compact(applied, b"S")
    # trailing entries are capped by bytes: only what fits in trailing_logs_bytes is kept
    kept = c.log.bytes_between(c.log.offset + 1, applied)
    assert kept <= cfg.trailing_logs_bytes < kept + len(big)
    rd = c.ready()
    assert rd is not None and rd.compact_to == c.log.offset > applied - cfg.trailing_logs


def test_memory_stays_bounded_with_large_entries_and_lagging_follower_gets_a_snapshot() -> None:
    cfg = dataclasses.replace(
        SIM_CONFIG, snapshot_threshold=10**6, trailing_logs=10**6, trailing_logs_bytes=20_000
    )
    cl = Cluster(IDS, cfg=cfg)
    lead = cl.elect()
    lagger = next(i for i in IDS if i != lead)
    cl.isolate(lagger)
    cl.cut -= {frozenset((a, b)) for a in IDS for b in IDS if lagger not in (a, b)}
    c = cl.cores[lead]
    entry = 3_000
    peak = 0
    for k in range(200):  # 600 KB of entries through a 1000 + 20_000 byte budget
        cl.propose(bytes([k % 256]) * entry)
        for core in cl.cores.values():
            if core.snapshot_due():
                core.compact(core.applied, b"S%d" % core.applied)
        cl.flush()
        peak = max(peak, c.log.bytes_in_memory())
    assert peak <= cfg.snapshot_threshold_bytes + cfg.trailing_logs_bytes + 2 * entry
    assert c.log.offset > cl.cores[lagger].log.last_index()
    cl.heal()
    cl.run(0.5)
    assert cl.snapshots_applied[lagger] and cl.cores[lagger].applied == c.applied
