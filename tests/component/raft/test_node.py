"""RaftNode in-process clusters over real TCP on 127.0.0.1 with durable storage in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from conductor.raft.fsm import RecordingFSM
from conductor.raft.node import RaftNode
from conductor.raft.types import ConfigurationChangedError, NotLeaderError, RaftConfig, Suffrage

if TYPE_CHECKING:
    from trio_typing import TaskStatus

FAST = RaftConfig(heartbeat_interval=0.05, election_timeout=0.3, lease_timeout=0.15)


@dataclass
class Member:
    node: RaftNode
    fsm: RecordingFSM
    scope: trio.CancelScope
    port: int

    def stop(self) -> None:
        self.scope.cancel()


@dataclass
class Cluster:
    nursery: trio.Nursery
    base: Path
    cfg: RaftConfig
    segment_bytes: int = 512  # small log segments so compaction deletes files
    secret: bytes | None = None
    members: dict[str, Member] = field(default_factory=dict)

    async def start(
        self, sid: str, *, bootstrap: bool = False, port: int = 0, fsm: RecordingFSM | None = None
    ) -> Member:
        fsm = fsm if fsm is not None else RecordingFSM()
        node = RaftNode(
            sid,
            f"127.0.0.1:{port}",
            None,
            self.base,
            fsm,
            self.cfg,
            bootstrap=bootstrap,
            segment_bytes=self.segment_bytes,
            secret=self.secret,
        )
        scope = trio.CancelScope()

        async def runner(task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await node.run(task_status=task_status)

        await self.nursery.start(runner)
        m = Member(node, fsm, scope, node.port)
        self.members[sid] = m
        return m

    async def restart(self, sid: str) -> Member:
        old = self.members[sid]
        old.stop()
        await trio.sleep(0.05)
        return await self.start(sid, port=old.port)

    def leaders(self) -> list[Member]:
        return [m for m in self.members.values() if m.node.is_leader()]

    async def leader(self) -> Member:
        await wait_for(lambda: len(self.leaders()) == 1)
        return self.leaders()[0]


async def wait_for(pred: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a condition on in-process node state (there is no event to wait on)."""
    with trio.fail_after(within):
        while not pred():  # noqa: ASYNC110
            await trio.sleep(0.01)


@asynccontextmanager
async def cluster(
    tmp_path: Path, n: int = 3, cfg: RaftConfig = FAST, secret: bytes | None = None
) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, tmp_path, cfg, secret=secret)
        a = await c.start("n1", bootstrap=True)
        assert a.node.fresh_bootstrap
        await wait_for(a.node.is_leader)
        for i in range(2, n + 1):
            m = await c.start(f"n{i}")
            _, version = a.node.membership()
            await a.node.add_voter(m.node.id, m.node.advertised_addr, version, timeout=5)
        yield c
        nursery.cancel_scope.cancel()


async def test_three_nodes_elect_one_leader_and_replicate(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            servers, _version = leader.node.membership()
            assert sorted(s.id for s in servers) == ["n1", "n2", "n3"]
            assert all(s.suffrage == Suffrage.VOTER for s in servers)
            results = [await leader.node.propose(f"e{i}".encode(), timeout=5) for i in range(20)]
            assert results == list(range(1, 21))
            want = [f"e{i}".encode() for i in range(20)]
            await wait_for(lambda: all(m.fsm.items == want for m in c.members.values()))
            assert len(c.leaders()) == 1
            follower = next(m for m in c.members.values() if m is not leader)
            with pytest.raises(NotLeaderError, match="node is not the leader"):
                await follower.node.propose(b"x", timeout=1)
            assert follower.node.leader() == (leader.node.id, leader.node.advertised_addr)
            st = follower.node.status()
            assert st["role"] == "follower" and st["leader_id"] == leader.node.id
            assert st["applied_index"] == st["commit_index"] == leader.node.status()["commit_index"]


async def test_cluster_with_shared_secret(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path, secret=b"cluster-secret") as c:
            leader = await c.leader()
            await leader.node.propose(b"authenticated", timeout=5)
            await wait_for(lambda: all(m.fsm.items == [b"authenticated"] for m in c.members.values()))
            # a server with the wrong secret never receives anything
            c.secret = b"wrong"
            intruder = await c.start("n9")
            _, version = leader.node.membership()
            await leader.node.add_nonvoter("n9", intruder.node.advertised_addr, version, timeout=5)
            await leader.node.propose(b"second", timeout=5)
            await trio.sleep(0.3)
            assert intruder.fsm.items == []
            assert leader.node.transport.stats.auth_failures > 0


async def test_concurrent_proposals(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            got: list[object] = []

            async def one(i: int) -> None:
                got.append(await leader.node.propose(b"%d" % i, timeout=5))

            async with trio.open_nursery() as n:
                for i in range(50):
                    n.start_soon(one, i)
            assert sorted(got) == list(range(1, 51))  # type: ignore[type-var]
            await wait_for(lambda: all(len(m.fsm.items) == 50 for m in c.members.values()))
            assert c.members["n2"].fsm.items == leader.fsm.items


async def test_leader_change_notifications_and_named_transfer(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            target = next(m for m in c.members.values() if m is not leader)
            old_sub = leader.node.leader_changes()
            new_sub = target.node.leader_changes()
            t0 = trio.current_time()
            new_leader = await leader.node.transfer_leadership(
                target.node.id, target.node.advertised_addr, timeout=5
            )
            elapsed = trio.current_time() - t0
            assert new_leader == target.node.id
            assert await new_sub.receive() is True
            assert await old_sub.receive() is False
            await wait_for(target.node.is_leader)
            assert not leader.node.is_leader()
            assert elapsed < 2.0
            # latest-wins buffer of one
            old_sub.push(True)
            old_sub.push(False)
            assert old_sub.receive_nowait() is False and old_sub.receive_nowait() is None
            # the new leader accepts proposals; transfer without a target picks someone else
            await target.node.propose(b"after-transfer", timeout=5)
            other = await target.node.transfer_leadership(timeout=5)
            assert other != target.node.id


async def test_membership_version_guard_and_remove(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            servers, version = leader.node.membership()
            assert version > 0
            stale = version - 1
            victim = next(s.id for s in servers if s.id != leader.node.id)
            msg = rf"configuration changed since {stale} \(latest is {version}\)"
            with pytest.raises(ConfigurationChangedError, match=msg):
                await leader.node.remove_server(victim, stale, timeout=5)
            await leader.node.demote_voter(victim, version, timeout=5)
            servers, v2 = leader.node.membership()
            assert v2 > version
            assert next(s for s in servers if s.id == victim).suffrage == Suffrage.NONVOTER
            await leader.node.remove_server(victim, 0, timeout=5)
            servers, _ = leader.node.membership()
            assert victim not in [s.id for s in servers]
            # other nodes see the same configuration
            third = next(m for m in c.members.values() if m.node.id not in (victim, leader.node.id))
            await wait_for(lambda: [s.id for s in third.node.membership()[0]] == [s.id for s in servers])
            # the pre-check dial fails for an unreachable address
            with pytest.raises(Exception, match="dial tcp"):
                await leader.node.add_voter("ghost", "127.0.0.1:1", 0, timeout=5)
            await leader.node.propose(b"still works", timeout=5)


async def test_barrier(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            for i in range(5):
                await leader.node.propose(b"%d" % i, timeout=5)
            applied = await leader.node.barrier(timeout=5)
            assert applied >= leader.node.status()["commit_index"] - 0
            assert len(leader.fsm.items) == 5
            follower = next(m for m in c.members.values() if m is not leader)
            with pytest.raises(NotLeaderError):
                await follower.node.barrier(timeout=1)


async def test_restart_from_disk_catches_up(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with cluster(tmp_path) as c:
            leader = await c.leader()
            for i in range(10):
                await leader.node.propose(b"a%d" % i, timeout=5)
            follower_id = next(sid for sid, m in c.members.items() if m is not leader)
            c.members[follower_id].stop()
            for i in range(10):
                await leader.node.propose(b"b%d" % i, timeout=5)
            m = await c.restart(follower_id)
            await wait_for(lambda: m.fsm.items == leader.fsm.items)
            assert len(m.fsm.items) == 20
            # restart the leader too: a new leader is elected and nothing is lost
            lid = leader.node.id
            await c.restart(lid)
            new_leader = await c.leader()
            await new_leader.node.propose(b"c0", timeout=5)
            await wait_for(lambda: all(len(x.fsm.items) == 21 for x in c.members.values()))
            # bootstrap flag on an existing cluster is a logged no-op
            assert not c.members[lid].node.fresh_bootstrap


async def test_snapshot_compaction_and_install_snapshot(tmp_path: Path) -> None:
    cfg = replace(FAST, snapshot_threshold=8, trailing_logs=2)
    with trio.fail_after(40):
        async with cluster(tmp_path, cfg=cfg) as c:
            leader = await c.leader()
            for i in range(40):
                await leader.node.propose(b"v%d" % i, timeout=5)
            storage = leader.node.storage
            assert storage is not None
            await wait_for(lambda: storage.snapshots.latest() is not None)
            assert storage.log.first_index > 1  # compacted
            # a brand-new server joins: it is far behind the compacted log -> InstallSnapshot
            d = await c.start("n4")
            _, version = leader.node.membership()
            await leader.node.add_voter("n4", d.node.advertised_addr, version, timeout=5)
            await wait_for(lambda: d.fsm.items == leader.fsm.items)
            assert len(d.fsm.items) == 40
            assert d.node.io_stats.snapshots_installed == 1  # caught up via InstallSnapshot
            assert d.node.storage is not None and d.node.storage.snapshots.latest() is not None
            # and it restarts from its own snapshot + log
            d2 = await c.restart("n4")
            await leader.node.propose(b"after", timeout=5)
            await wait_for(lambda: d2.fsm.items == leader.fsm.items)


async def test_empty_state_machine_snapshot_restart(tmp_path: Path) -> None:
    # only Raft-internal entries (no FSM data): the snapshot data is b"" and is valid
    cfg = replace(FAST, snapshot_threshold=1)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            c = Cluster(nursery, tmp_path, cfg)

            class EmptyFSM(RecordingFSM):
                def snapshot(self) -> bytes:
                    return b""

            a = await c.start("solo", bootstrap=True, fsm=EmptyFSM())
            await wait_for(a.node.is_leader)
            await a.node.barrier(timeout=5)
            await a.node.add_nonvoter("solo", a.node.advertised_addr, 0, timeout=5)
            storage = a.node.storage
            assert storage is not None
            await wait_for(lambda: storage.snapshots.latest() is not None)
            snap = storage.snapshots.latest()
            assert snap is not None and snap.data == b""
            a.stop()
            await trio.sleep(0.05)
            b = await c.start("solo", port=a.port, fsm=EmptyFSM())
            await wait_for(b.node.is_leader)
            nursery.cancel_scope.cancel()


def _caught_up(c: Cluster, index: int) -> bool:
    return all(m.node.applied_index >= index for m in c.members.values())


async def test_followers_replace_a_stopped_leader_before_the_election_timeout(tmp_path: Path) -> None:
    """Fast failover: a stopped leader's connections close, the followers' transports report
    it unreachable, and a new leader is elected well before the election timeout (the
    randomised timeout alone would take >= 1 s here)."""
    cfg = RaftConfig(heartbeat_interval=0.1, election_timeout=1.0, lease_timeout=0.3)
    with trio.fail_after(30):
        async with cluster(tmp_path, cfg=cfg) as c:
            for _ in range(3):
                leader = await c.leader()
                await leader.node.propose(b"x", timeout=5)
                await trio.sleep(0.3)
                t0 = trio.current_time()
                leader.stop()
                del c.members[leader.node.id]
                await wait_for(lambda: len(c.leaders()) == 1, within=5)
                assert trio.current_time() - t0 < 0.8
                new = c.leaders()[0]
                await new.node.propose(b"y", timeout=5)
                await c.start(leader.node.id, port=leader.port)
                await wait_for(partial(_caught_up, c, new.node.applied_index))
