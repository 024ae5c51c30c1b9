"""Snapshots and log compaction: snapshot_due/compact, trailing logs, InstallSnapshot
catch-up of a lagging follower, and restart from a snapshot."""

from __future__ import annotations

import pytest

from conductor.raft.messages import InstallSnapshot

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
