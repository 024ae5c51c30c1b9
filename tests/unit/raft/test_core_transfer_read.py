"""Leadership transfer (targeted, most up-to-date, refusal of proposals, abort on
timeout) and read-index."""

from __future__ import annotations

import random

import pytest

from conductor.raft.core import RaftCore
from conductor.raft.messages import (
    AppendResponse,
    HeartbeatResponse,
    TimeoutNow,
    VoteResponse,
    encode_configuration,
)
from conductor.raft.types import (
    Configuration,
    Entry,
    EntryKind,
    HardState,
    LeadershipTransferInProgressError,
    NotLeaderError,
    RaftError,
    ReadState,
    RestoredState,
    Role,
    Server,
    Suffrage,
)

from .cluster import SIM_CONFIG, Cluster

IDS = ["n1", "n2", "n3"]


def test_targeted_transfer_moves_leadership() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    target = next(i for i in IDS if i != lead)
    cl.propose(b"before")
    assert cl.cores[lead].transfer_leadership(target, cl.now) == target
    cl.flush()
    assert cl.leader() == target
    cl.propose(b"after")
    cl.run(0.2)
    assert cl.data_applied(lead) == [b"before", b"after"]


def test_transfer_catches_the_target_up_first_and_refuses_proposals_meanwhile() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    target = next(i for i in IDS if i != lead)
    cl.isolate(target)
    other = next(i for i in IDS if i not in (lead, target))
    cl.propose(b"target-missed-this")
    c = cl.cores[lead]
    c.transfer_leadership(target, cl.now)
    with pytest.raises(LeadershipTransferInProgressError, match="leadership transfer in progress"):
        c.propose(b"x", cl.now)
    with pytest.raises(LeadershipTransferInProgressError):
        c.transfer_leadership(None, cl.now)
    assert not any(isinstance(m, TimeoutNow) for m in cl.delivered)
    cl.heal()
    cl.run(0.3)
    assert cl.leader() == target and other != target
    assert b"target-missed-this" in cl.data_applied(target)


def test_transfer_aborts_after_an_election_timeout() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    target = next(i for i in IDS if i != lead)
    cl.cut.add(frozenset((lead, target)))  # target unreachable, quorum intact via the third node
    cl.propose(b"gap")
    c = cl.cores[lead]
    c.transfer_leadership(target, cl.now)
    assert c.status().transfer_in_progress
    cl.run(SIM_CONFIG.election_timeout * 0.5)
    with pytest.raises(LeadershipTransferInProgressError):
        c.propose(b"x", cl.now)
    cl.run(SIM_CONFIG.election_timeout * 0.6)
    assert c.role == Role.LEADER and not c.status().transfer_in_progress
    c.propose(b"accepted-again", cl.now)


def test_transfer_to_none_picks_the_most_up_to_date_voter() -> None:
    cl = Cluster(["n1", "n2", "n3", "n4", "n5"])
    lead = cl.elect()
    others = sorted(i for i in cl.cores if i != lead)
    best = others[-1]
    for i in others[:-1]:
        cl.cut.add(frozenset((lead, i)))
    cl.cores[lead].propose(b"only-best-has-it", cl.now)  # cannot commit, best alone acks
    cl.flush()
    for i in others[:-1]:
        cl.cut.discard(frozenset((lead, i)))
    assert cl.cores[lead].transfer_leadership(None, cl.now) == best


def test_transfer_errors() -> None:
    cl = Cluster([*IDS, "n4"], voters=IDS)
    lead = cl.elect()
    follower = next(i for i in IDS if i != lead)
    with pytest.raises(NotLeaderError):
        cl.cores[follower].transfer_leadership(None, cl.now)
    with pytest.raises(RaftError, match="itself"):
        cl.cores[lead].transfer_leadership(lead, cl.now)
    with pytest.raises(RaftError, match="not a voter"):
        cl.cores[lead].transfer_leadership("n4", cl.now)


def test_read_index_confirms_leadership_then_reports_once_applied() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    idx = cl.propose(b"w")
    cl.cores[lead].read_index(b"r1", cl.now)
    cl.flush()
    assert cl.reads[lead] == [(b"r1", idx)]


def test_read_index_is_not_confirmed_without_a_quorum() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    cl.isolate(lead)
    cl.cores[lead].read_index(b"r1", cl.now)
    cl.flush()
    assert cl.reads[lead] == []
    cl.run(SIM_CONFIG.lease_timeout * 2)  # steps down: the read fails
    assert cl.dropped[lead] == [b"r1"] and cl.reads[lead] == []
    with pytest.raises(NotLeaderError):
        cl.cores[lead].read_index(b"r2", cl.now)


def test_new_leader_defers_reads_until_its_noop_commits() -> None:
    conf = Configuration(tuple(Server(i, i, Suffrage.VOTER) for i in IDS), 1)
    log = (Entry(1, 1, EntryKind.CONFIG, encode_configuration(conf)), Entry(1, 2, EntryKind.NORMAL, b"old"))
    c = RaftCore("n1", SIM_CONFIG, RestoredState(HardState(1, None, 1), None, log), random.Random(0), 0.0)
    c.campaign(0.0, transfer=True)
    c.step(VoteResponse("n2", "n1", c.term, True), 0.0)
    assert c.role == Role.LEADER and c.commit == 1
    c.read_index(b"r", 0.0)
    c.step(HeartbeatResponse("n2", "n1", c.term, c.hb_round), 0.0)  # leadership confirmed...
    rd = c.ready()
    assert rd is not None and rd.read_states == ()  # ...but no entry of its term committed yet
    c.advance(rd)
    c.step(AppendResponse("n2", "n1", c.term, True, 3, 0, 0), 0.0)
    rd = c.ready()
    assert rd is not None and rd.read_states == (ReadState(b"r", 3),)
