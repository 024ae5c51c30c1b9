"""RaftCore elections: bootstrap, pre-vote, leader stickiness, check-quorum and the lease."""

from __future__ import annotations

import dataclasses
import random

import pytest

from conductor.raft.core import RaftCore
from conductor.raft.messages import VoteRequest, VoteResponse, encode_configuration
from conductor.raft.types import (
    EMPTY_STATE,
    CantBootstrapError,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    NotLeaderError,
    RestoredState,
    Role,
    Server,
    Suffrage,
)

from .cluster import SIM_CONFIG, Cluster

IDS = ["n1", "n2", "n3"]


def test_single_voter_bootstrap_elects_itself_immediately() -> None:
    c = RaftCore("n1", SIM_CONFIG, EMPTY_STATE, random.Random(1), 0.0)
    c.bootstrap([Server("n1", "a1", Suffrage.VOTER)], 0.0)
    assert c.next_deadline() == 0.0
    c.tick(0.0)
    assert c.role == Role.LEADER and c.term == 2
    rd = c.ready()
    assert rd is not None and rd.soft_state is not None and rd.soft_state.role == Role.LEADER
    assert [e.index for e in rd.entries_to_append] == [1, 2]  # config + leader's NOOP
    # the NOOP commits once it is on the (only) voter's disk: in the next Ready
    assert [e.index for e in rd.committed_entries] == [1]
    assert not rd.send_before_persist  # the new term and vote must be durable first
    c.advance(rd)
    rd = c.ready()
    assert rd is not None and [e.index for e in rd.committed_entries] == [2]
    assert rd.hard_state is not None and rd.hard_state.commit == 2


def test_bootstrap_only_works_on_new_clusters() -> None:
    cl = Cluster(["n1"])
    cl.elect()
    with pytest.raises(CantBootstrapError, match="bootstrap only works on new clusters"):
        cl.cores["n1"].bootstrap([Server("n1", "a", Suffrage.VOTER)], cl.now)
    cl.restart("n1")  # state on disk: still refused after a restart
    with pytest.raises(CantBootstrapError):
        cl.cores["n1"].bootstrap([Server("n1", "a", Suffrage.VOTER)], cl.now)
    assert cl.elect() == "n1"


def test_three_nodes_elect_one_leader_known_to_all() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    assert len(cl.leaders()) == 1
    for i in IDS:
        st = cl.cores[i].status()
        assert st.leader_id == lead and st.leader_address == f"addr-{lead}"
    assert cl.cores[lead].status().lease_valid


def test_nodes_without_configuration_or_vote_never_campaign() -> None:
    cl = Cluster(["n1", "n2"], bootstrap=False)
    cl.run(3.0)
    assert cl.leaders() == [] and all(c.term == 0 for c in cl.cores.values())
    assert cl.cores["n1"].next_deadline() is None


def test_pre_vote_keeps_a_partitioned_node_from_disrupting() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    term = cl.cores[lead].term
    follower = next(i for i in IDS if i != lead)
    cl.isolate(follower)
    cl.run(3.0)
    assert cl.cores[follower].term == term  # pre-vote never succeeded, term not inflated
    cl.heal()
    cl.run(1.0)
    assert cl.leader() == lead and cl.cores[lead].term == term


def test_without_pre_vote_the_partitioned_node_inflates_its_term() -> None:
    cfg = dataclasses.replace(SIM_CONFIG, pre_vote=False, check_quorum=False)
    cl = Cluster(IDS, cfg=cfg)
    lead = cl.elect()
    term = cl.cores[lead].term
    follower = next(i for i in IDS if i != lead)
    cl.isolate(follower)
    cl.run(3.0)
    assert cl.cores[follower].term > term + 2


def test_leader_stickiness_ignores_higher_term_vote_requests() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    follower = next(i for i in IDS if i != lead)
    other = next(i for i in IDS if i not in (lead, follower))
    c = cl.cores[follower]
    term = c.term
    c.step(VoteRequest(other, follower, term + 5, 10**6, term + 4, False), cl.now)
    assert c.term == term and c.vote != other
    # ... unless it is a leadership-transfer campaign
    c.step(VoteRequest(other, follower, term + 5, 10**6, term + 4, True), cl.now)
    assert c.term == term + 5 and c.vote == other


def test_check_quorum_isolated_leader_steps_down_and_refuses_proposals() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    cl.isolate(lead)
    c = cl.cores[lead]
    cl.run(SIM_CONFIG.lease_timeout * 0.5)
    assert c.role == Role.LEADER
    cl.run(SIM_CONFIG.lease_timeout)
    st = c.status()
    assert st.role == Role.FOLLOWER and not st.lease_valid
    with pytest.raises(NotLeaderError, match="node is not the leader"):
        c.propose(b"x", cl.now)
    cl.run(1.0)
    new = [i for i in cl.leaders() if i != lead]
    assert len(new) == 1


def test_lease_expiry_refuses_proposals_even_before_the_next_tick() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    c = cl.cores[lead]
    c.propose(b"ok", cl.now)
    late = cl.now + SIM_CONFIG.lease_timeout + 0.01  # no tick, no responses in between
    with pytest.raises(NotLeaderError):
        c.propose(b"late", late)
    assert c.role == Role.FOLLOWER


def test_restarted_node_rejoins_as_follower() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    follower = next(i for i in IDS if i != lead)
    cl.propose(b"a")
    cl.crash(follower)
    cl.propose(b"b")
    cl.restart(follower)
    cl.run(0.5)
    assert cl.cores[follower].role == Role.FOLLOWER and cl.leader() == lead
    assert cl.data_applied(follower) == [b"a", b"b"]


def test_a_node_with_a_stale_configuration_still_votes_for_an_up_to_date_candidate() -> None:
    # n3 missed the entry promoting n2: refusing n2's vote could deadlock the cluster
    conf = Configuration((Server("n2", "a2", Suffrage.NONVOTER), Server("n3", "a3", Suffrage.VOTER)), 1)
    log = (Entry(1, 1, EntryKind.CONFIG, encode_configuration(conf)),)
    c = RaftCore("n3", SIM_CONFIG, RestoredState(HardState(1, None, 1), None, log), random.Random(0), 0.0)
    c.step(VoteRequest("n2", "n3", 2, 5, 1, False), 0.0)
    rd = c.ready()
    assert rd is not None and rd.messages == (VoteResponse("n3", "n2", 2, True),)
    assert rd.hard_state == HardState(2, "n2", 1)
