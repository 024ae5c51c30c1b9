"""RaftCore.report_unreachable: the leader falls back to probing (etcd ReportUnreachable);
a follower that lost its leader campaigns early (fast failover), and spurious reports
never unseat a leader that still reaches a quorum."""

from __future__ import annotations

import dataclasses

import pytest

from conductor.raft.core import RaftCore
from conductor.raft.progress import Progress, ProgressState
from conductor.raft.types import Role

from .cluster import SIM_CONFIG, Cluster
from .sim import Mix, Sim

IDS = ["n1", "n2", "n3"]
HB = SIM_CONFIG.heartbeat_interval
ET = SIM_CONFIG.election_timeout
# the latest a fast campaign can start after the leader's last message reached a follower
FAST_BOUND = SIM_CONFIG.failover_silence * HB + SIM_CONFIG.failover_delay_max


def _state(pr: Progress) -> ProgressState:  # (a call: mypy must not narrow across inputs)
    return pr.state


def _lost(core: RaftCore) -> bool:
    return core.leader_lost


# ---------------------------------------------------------------- leader side


def test_leader_moves_a_pipelining_follower_back_to_probe() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    cl.propose(b"x")
    core = cl.cores[lead]
    peer = next(i for i in IDS if i != lead)
    pr = core.progress[peer]
    assert _state(pr) == ProgressState.REPLICATE
    pr.inflight.append(pr.match + 5)  # pretend appends are in flight (and were lost)
    pr.next = pr.match + 6
    core.report_unreachable(peer, cl.now)
    assert _state(pr) == ProgressState.PROBE and pr.next == pr.match + 1 and not pr.inflight
    # replication resumes from the real match point
    cl.propose(b"y")
    assert _state(pr) == ProgressState.REPLICATE and pr.match == core.log.last_index()
    cl.run(2 * HB)  # the next heartbeat carries the commit index
    assert cl.data_applied(peer)[-2:] == [b"x", b"y"]


def test_leader_ignores_reports_about_unknown_peers_and_keeps_leading() -> None:
    cl = Cluster(IDS)
    lead = cl.elect()
    term = cl.cores[lead].term
    cl.cores[lead].report_unreachable("nobody", cl.now)
    cl.cores[lead].report_unreachable(lead, cl.now)
    cl.run(1.0)
    assert cl.leader() == lead and cl.cores[lead].term == term


# ---------------------------------------------------------------- follower side


def _crash_leader(cl: Cluster, report: bool) -> tuple[str, int, float]:
    lead = cl.elect()
    cl.run(0.2)  # steady state
    term = cl.cores[lead].term
    cl.crash(lead)
    t_crash = cl.now
    if report:
        for i in IDS:
            if i != lead:
                cl.cores[i].report_unreachable(lead, cl.now)
    return lead, term, t_crash


def test_followers_elect_a_new_leader_soon_after_the_leader_is_reported_dead() -> None:
    for seed in range(20):
        cl = Cluster(IDS, seed=seed)
        old, term, t_crash = _crash_leader(cl, report=True)
        deadline = t_crash + FAST_BOUND + 0.05  # well before any election timeout (>= ET)
        assert deadline - t_crash < ET
        while cl.now < deadline and not cl.leaders():
            cl.run(0.01)  # coarse steps: both followers often campaign in the same step
        new = cl.leader()
        assert new != old
        assert cl.cores[new].term == term + 1, "pre-vote: no term inflation"
        idx = cl.propose(b"after")
        cl.run(2 * HB)
        assert all(cl.cores[i].commit >= idx for i in IDS if i != old)


def test_without_a_report_the_election_timeout_still_applies() -> None:
    cl = Cluster(IDS, seed=3)
    _crash_leader(cl, report=False)
    cl.run(FAST_BOUND + 0.05)
    assert cl.leaders() == []
    cl.run(2 * ET)  # the fallback path
    assert len(cl.leaders()) == 1


def test_fast_failover_can_be_disabled() -> None:
    cfg = dataclasses.replace(SIM_CONFIG, fast_failover=False)
    cl = Cluster(IDS, cfg=cfg, seed=3)
    _crash_leader(cl, report=True)
    cl.run(FAST_BOUND + 0.05)
    assert cl.leaders() == []


def test_campaign_waits_for_the_leader_to_be_silent() -> None:
    cl = Cluster(IDS, seed=1)
    lead = cl.elect()
    f = next(i for i in IDS if i != lead)
    core = cl.cores[f]
    core.report_unreachable(lead, cl.now)
    silent_since = core.last_leader_contact
    assert _lost(core)
    d = core.next_deadline()
    assert d is not None
    assert silent_since + SIM_CONFIG.failover_silence * HB + SIM_CONFIG.failover_delay_min <= d
    assert d <= max(cl.now, silent_since + SIM_CONFIG.failover_silence * HB) + SIM_CONFIG.failover_delay_max
    # the leader is alive: its next heartbeat clears the suspicion and the early deadline
    cl.run(HB + 0.01)
    assert not _lost(core) and core.role == Role.FOLLOWER
    d2 = core.next_deadline()
    assert d2 is not None and d2 >= core.last_leader_contact + ET


def test_reports_about_other_peers_or_from_non_followers_do_nothing() -> None:
    cl = Cluster(IDS, seed=2)
    lead = cl.elect()
    f, other = (i for i in IDS if i != lead)
    core = cl.cores[f]
    before = core.next_deadline()
    core.report_unreachable(other, cl.now)  # not our leader
    assert not core.leader_lost and core.next_deadline() == before


@pytest.mark.parametrize("seed", range(10))
def test_spurious_reports_at_every_follower_never_unseat_a_connected_leader(seed: int) -> None:
    cl = Cluster(IDS, seed=seed)
    lead = cl.elect()
    term = cl.cores[lead].term
    for _ in range(100):
        for i in IDS:
            if i != lead:
                cl.cores[i].report_unreachable(lead, cl.now)
        cl.run(0.013)
    assert cl.leader() == lead and all(cl.cores[i].term == term for i in IDS)


class SpuriousSim(Sim):
    """No faults but false "leader unreachable" reports, often at every follower at once,
    over a lossless (but reordering, duplicating) network: the leader must never change."""

    def do_fault(self) -> None:
        self.stats["spurious_rounds"] += 1
        for _ in range(self.rng.randrange(1, 4)):
            t = self.now + self.rng.uniform(0.0, 0.05)
            for nid in sorted(self.nodes):
                c = self.nodes[nid].core
                lead = c.leader_id if c is not None else None
                if lead is not None and lead != nid and self.rng.random() < 0.8:
                    self.push(t + self.rng.uniform(0.0, 0.003), "unreachable", (nid, lead))


SPURIOUS = Mix("spurious", reads=True, drop=0.0, dup=0.05)


@pytest.mark.parametrize("seed", range(40))
def test_simulated_spurious_reports_never_cause_a_leader_change(seed: int) -> None:
    sim = SpuriousSim(seed, SPURIOUS, spares=0, duration=3.0)
    sim.run()
    assert sim.stats["unreachable"] > 20
    assert sim.stats["elected"] == 1, f"seed {seed}: leaders by term {sim.leaders}"
    assert len({sim.core(n).term for n in sim.nodes}) == 1


def test_rival_pre_candidates_with_equal_logs_do_not_split_the_vote() -> None:
    """Both followers start a pre-vote at the same instant: the lower id goes on, the other
    backs it and stands down, so the new leader is elected in term + 1 at once."""
    for seed in range(10):
        cl = Cluster(IDS, seed=seed)
        old, term, _ = _crash_leader(cl, report=False)
        a, b = (i for i in IDS if i != old)
        for i in (a, b):
            cl.cores[i].campaign(cl.now, transfer=False)
        assert cl.cores[a].role == cl.cores[b].role == Role.PRE_CANDIDATE
        cl.flush()
        assert cl.leader() == min(a, b) and cl.cores[min(a, b)].term == term + 1
        assert cl.cores[max(a, b)].role == Role.FOLLOWER
