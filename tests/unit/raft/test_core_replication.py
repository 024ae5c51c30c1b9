"""RaftCore log replication: commit, pipelining, fast backtracking, current-term
commit rule and non-voters that replicate but do not count."""

from __future__ import annotations

import random

from conductor.raft.core import RaftCore
from conductor.raft.messages import AppendEntries, AppendResponse, VoteResponse, encode_configuration
from conductor.raft.types import (
    Configuration,
    Entry,
    EntryKind,
    HardState,
    RestoredState,
    Role,
    Server,
    Suffrage,
)

from .cluster import SIM_CONFIG, Cluster

IDS = ["n1", "n2", "n3"]


def test_proposals_commit_and_apply_in_order_everywhere() -> None:
    cl = Cluster(IDS)
    cl.elect()
    idx = [cl.propose(f"e{k}".encode()) for k in range(20)]
    assert idx == list(range(idx[0], idx[0] + 20))
    cl.run(0.2)
    for i in IDS:
        assert cl.data_applied(i) == [f"e{k}".encode() for k in range(20)]
        assert cl.cores[i].commit == idx[-1]


def test_leader_pipelines_appends_up_to_the_inflight_window() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    c = cl.cores[lead]
    for k in range(10):
        c.propose(f"x{k}".encode(), cl.now)
    rd = c.ready()
    assert rd is not None
    per_peer = [m for m in rd.messages if isinstance(m, AppendEntries) and m.dst != lead]
    # max_inflight (4) messages per follower went out before any response came back
    assert len(per_peer) == 2 * SIM_CONFIG.max_inflight
    c.advance(rd)


def test_minority_partition_cannot_commit_and_catches_up_after_heal() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    f1, f2 = (i for i in IDS if i != lead)
    cl.isolate(f2)
    cl.propose(b"with-quorum")
    cl.isolate(f1)  # leader now alone
    c = cl.cores[lead]
    before = c.commit
    idx = c.propose(b"no-quorum", cl.now)
    cl.flush()
    assert c.commit == before < idx
    cl.heal()
    cl.elect()
    cl.run(0.5)
    for i in IDS:
        assert b"with-quorum" in cl.data_applied(i)


def _node_with_log(nid: str, entries: list[Entry], term: int, commit: int) -> RaftCore:
    return RaftCore(
        nid,
        SIM_CONFIG,
        RestoredState(HardState(term, None, commit), None, tuple(entries)),
        random.Random(0),
        0.0,
    )


def _conf_entry(ids: list[str]) -> Entry:
    conf = Configuration(tuple(Server(i, f"addr-{i}", Suffrage.VOTER) for i in ids), 1)
    return Entry(1, 1, EntryKind.CONFIG, encode_configuration(conf))


def test_follower_truncates_conflicting_suffix_with_few_round_trips() -> None:
    base = [_conf_entry(["n1", "n2"])]
    # n2 has 100 uncommitted entries of term 2 that the new leader (term 3) never had
    stale = base + [Entry(2, i, EntryKind.NORMAL, b"stale") for i in range(2, 102)]
    good = (
        base
        + [Entry(3, 2, EntryKind.NOOP, b"")]
        + [Entry(3, i, EntryKind.NORMAL, b"good") for i in range(3, 6)]
    )
    cl = Cluster(["n1", "n2"], bootstrap=False)
    for nid, log, term in (("n1", good, 3), ("n2", stale, 2)):
        cl.cores[nid] = _node_with_log(nid, log, term, 1)
        cl.disks[nid].entries = list(log)
        cl.disks[nid].hard_state = HardState(term, None, 1)
    cl.cores["n1"].campaign(0.0, transfer=True)  # n2 votes: n1's last term 3 > 2
    cl.flush()
    assert cl.cores["n1"].role == Role.LEADER
    rejects = [m for m in cl.delivered if isinstance(m, AppendResponse) and not m.success]
    assert 1 <= len(rejects) <= 3
    n2 = cl.cores["n2"]
    assert n2.log.last_index() == cl.cores["n1"].log.last_index() == 6
    assert [n2.log.term_at(i) for i in range(2, 7)] == [3, 3, 3, 3, 4]
    assert cl.disks["n2"].entries[-1].index == 6 and all(e.data != b"stale" for e in cl.disks["n2"].entries)


def test_new_leader_commits_old_term_entries_only_through_its_own() -> None:
    base = [_conf_entry(["n1", "n2", "n3"]), Entry(1, 2, EntryKind.NORMAL, b"old")]
    c = _node_with_log("n1", base, 1, 1)
    c.campaign(0.0, transfer=True)
    c.step(VoteResponse("n2", "n1", c.term, True), 0.0)
    assert c.role == Role.LEADER
    noop = c.log.last_index()
    rd = c.ready()
    assert rd is not None
    c.advance(rd)  # the NOOP is on n1's disk
    # n2 acknowledges the old-term entry only: it is on a quorum but must not commit
    c.step(AppendResponse("n2", "n1", c.term, True, 2, 0, 0), 0.0)
    assert c.commit == 1
    c.step(AppendResponse("n2", "n1", c.term, True, noop, 0, 0), 0.0)
    assert c.commit == noop


def test_nonvoters_replicate_but_do_not_count_toward_commit() -> None:
    cl = Cluster(["n1", "n2", "n3"], voters=["n1", "n2"])
    lead = cl.elect()
    cl.cores[lead].add_nonvoter("n3", "addr-n3", 0, cl.now)
    cl.flush()
    cl.propose(b"seen-by-all")
    cl.run(0.2)
    assert b"seen-by-all" in cl.data_applied("n3")
    other_voter = "n2" if lead == "n1" else "n1"
    cl.isolate(other_voter)
    c = cl.cores[lead]
    before = c.commit
    c.propose(b"needs-the-other-voter", cl.now)
    cl.flush()
    assert c.commit == before  # n3's ack is not enough
    assert cl.cores["n3"].log.last_index() == c.log.last_index()
    cl.isolate(lead)
    cl.run(2.0)  # no quorum anywhere; the non-voter never campaigns
    assert cl.cores["n3"].role == Role.FOLLOWER and cl.leaders() == []


def _replicating(c: RaftCore) -> None:
    """Both followers acknowledge the new leader's NOOP (their progress leaves probing)."""
    for f in ("n2", "n3"):
        c.step(AppendResponse(f, "n1", c.term, True, c.log.last_index(), 0, 0), 0.0)
    rd = c.ready()
    assert rd is not None
    c.advance(rd)


def test_leader_sends_appends_before_its_own_fsync_and_counts_itself_once_durable() -> None:
    base = [_conf_entry(["n1", "n2", "n3"])]
    c = _node_with_log("n1", base, 1, 1)
    c.campaign(0.0, transfer=True)
    c.step(VoteResponse("n2", "n1", c.term, True), 0.0)
    rd = c.ready()
    assert rd is not None and rd.hard_state is not None
    assert not rd.send_before_persist  # the new term/vote must hit the disk first
    c.advance(rd)
    _replicating(c)
    idx = c.propose(b"x", 0.0)
    rd = c.ready()
    assert rd is not None and rd.send_before_persist
    assert [e.index for e in rd.entries_to_append] == [idx]
    assert any(isinstance(m, AppendEntries) and m.entries and m.entries[-1].index == idx for m in rd.messages)
    # one follower acks before our own fsync finished: n1 + n2 is a quorum only once n1 is durable
    c.step(AppendResponse("n2", "n1", c.term, True, idx, 0, 0), 0.0)
    assert c.commit < idx
    c.advance(rd)  # our fsync is done
    assert c.commit == idx


def test_two_followers_commit_without_the_leaders_own_fsync() -> None:
    base = [_conf_entry(["n1", "n2", "n3"])]
    c = _node_with_log("n1", base, 1, 1)
    c.campaign(0.0, transfer=True)
    c.step(VoteResponse("n2", "n1", c.term, True), 0.0)
    rd = c.ready()
    assert rd is not None
    c.advance(rd)
    _replicating(c)
    idx = c.propose(b"x", 0.0)
    rd = c.ready()
    assert rd is not None and rd.send_before_persist
    for f in ("n2", "n3"):
        c.step(AppendResponse(f, "n1", c.term, True, idx, 0, 0), 0.0)
    assert c.commit == idx and c.durable_index < idx
