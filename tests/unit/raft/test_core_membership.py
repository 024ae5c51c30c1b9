"""Membership changes: add/promote/demote/remove/re-add, the prev_index (version)
guard, one change at a time, and a removed leader stepping down."""

from __future__ import annotations

import pytest

from conductor.raft.types import (
    ConfigChangeInProgressError,
    ConfigurationChangedError,
    NotLeaderError,
    RaftError,
    Role,
    Suffrage,
)

from .cluster import Cluster


def _suffrages(cl: Cluster, nid: str) -> dict[str, Suffrage]:
    return {s.id: s.suffrage for s in cl.cores[nid].status().configuration.servers}


def _grow() -> tuple[Cluster, str]:
    cl = Cluster(["n1", "n2", "n3", "n4"], voters=["n1"])
    lead = cl.elect()
    return cl, lead


def test_add_nonvoter_then_promote_then_demote_then_remove_then_readd() -> None:
    cl, lead = _grow()
    c = cl.cores[lead]
    v = c.status().configuration.index
    idx = c.add_nonvoter("n2", "addr-n2", v, cl.now)
    cl.flush()
    assert _suffrages(cl, "n2") == {"n1": Suffrage.VOTER, "n2": Suffrage.NONVOTER}
    assert c.status().configuration.index == idx  # the version is the entry index
    c.add_voter("n2", "addr-n2", idx, cl.now)  # promotion
    cl.flush()
    assert _suffrages(cl, lead)["n2"] == Suffrage.VOTER
    c.add_voter("n3", "addr-n3", 0, cl.now)  # version 0 skips the guard
    cl.flush()
    assert c.status().configuration.voters() == ("n1", "n2", "n3")
    c.demote_voter("n3", 0, cl.now)
    cl.flush()
    assert _suffrages(cl, "n3")["n3"] == Suffrage.NONVOTER
    c.remove_server("n3", 0, cl.now)
    cl.flush()
    assert cl.cores[lead].status().configuration.get("n3") is None
    assert cl.cores["n3"].status().configuration.get("n3") is None  # it learned its removal
    cl.propose(b"after-removal")
    c.add_voter("n3", "addr-n3", 0, cl.now)  # re-add the same id
    cl.flush()
    cl.run(0.3)
    assert b"after-removal" in cl.data_applied("n3")
    assert cl.cores[lead].commit == cl.cores["n3"].commit


def test_version_guard_rejects_stale_prev_index_with_exact_text() -> None:
    cl, lead = _grow()
    c = cl.cores[lead]
    old = c.status().configuration.index
    new = c.add_nonvoter("n2", "addr-n2", old, cl.now)
    cl.flush()
    with pytest.raises(ConfigurationChangedError) as exc:
        c.add_voter("n2", "addr-n2", old, cl.now)
    assert str(exc.value) == f"configuration changed since {old} (latest is {new})"
    with pytest.raises(ConfigurationChangedError):
        c.remove_server("n2", old, cl.now)
    with pytest.raises(ConfigurationChangedError):
        c.demote_voter("n1", new + 7, cl.now)


def test_one_change_at_a_time() -> None:
    cl = Cluster(["n1", "n2", "n3", "n4"], voters=["n1", "n2", "n3"])
    lead = cl.elect()
    c = cl.cores[lead]
    others = [i for i in ("n1", "n2", "n3") if i != lead]
    cl.isolate(others[0])
    cl.isolate(others[1])  # the change cannot commit
    c.add_nonvoter("n4", "addr-n4", 0, cl.now)
    with pytest.raises(ConfigChangeInProgressError):
        c.add_voter("n4", "addr-n4", 0, cl.now)


def test_add_nonvoter_never_demotes_a_voter_and_add_voter_updates_address() -> None:
    cl = Cluster(["n1", "n2", "n3"])
    lead = cl.elect()
    c = cl.cores[lead]
    other = next(i for i in ("n1", "n2", "n3") if i != lead)
    c.add_nonvoter(other, "new-addr", 0, cl.now)
    cl.flush()
    s = c.status().configuration.get(other)
    assert s is not None and s.suffrage == Suffrage.VOTER and s.address == "new-addr"
    c.add_voter(other, "newer-addr", 0, cl.now)
    cl.flush()
    s = c.status().configuration.get(other)
    assert s is not None and s.address == "newer-addr"


def test_membership_ops_need_the_leader_and_a_voter() -> None:
    cl = Cluster(["n1", "n2", "n3"])
    lead = cl.elect()
    follower = next(i for i in ("n1", "n2", "n3") if i != lead)
    with pytest.raises(NotLeaderError):
        cl.cores[follower].add_voter("n9", "x", 0, cl.now)
    solo = Cluster(["n1"])
    solo.elect()
    with pytest.raises(RaftError, match="at least one voter"):
        solo.cores["n1"].demote_voter("n1", 0, solo.now)


def test_removed_leader_steps_down_after_commit_and_others_elect() -> None:
    cl = Cluster(["n1", "n2", "n3"])
    lead = cl.elect()
    c = cl.cores[lead]
    c.remove_server(lead, 0, cl.now)
    cl.flush()
    assert c.role == Role.FOLLOWER
    cl.run(2.0)
    new = cl.leader()
    assert new != lead
    assert cl.cores[new].status().configuration.voters() == tuple(i for i in ("n1", "n2", "n3") if i != lead)
    cl.propose(b"without-old-leader")
    assert c.role == Role.FOLLOWER  # never campaigns again


def test_demoting_the_leader_triggers_a_new_election() -> None:
    cl = Cluster(["n1", "n2", "n3"])
    lead = cl.elect()
    cl.cores[lead].demote_voter(lead, 0, cl.now)
    cl.flush()
    cl.run(2.0)
    assert cl.leader() != lead
    assert _suffrages(cl, lead)[lead] == Suffrage.NONVOTER
