"""Three RaftNode OS processes: kill -9 the leader mid-stream; no acknowledged commit is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from .raft_proc import ProcCluster

pytestmark = pytest.mark.slow

ARGS = ["--heartbeat", "0.1", "--election", "0.5", "--log-level", "info"]


def is_subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


async def test_kill_leader_mid_stream_no_acked_commit_lost(tmp_path: Path) -> None:
    pc = ProcCluster(tmp_path, ARGS)
    acked: list[str] = []
    attempts = 0
    try:
        with trio.fail_after(40):
            ids = await pc.form(3)
            leader = await pc.leader()
            killed: str | None = None
            restarted = False

            async def commit_one() -> None:
                nonlocal leader, attempts
                attempts += 1
                value = f"v{attempts}"
                try:
                    r = await pc.call(leader, "propose", data=value, timeout=2.0)
                except OSError:
                    r = {"ok": False, "error": "connection"}
                if r["ok"]:
                    acked.append(value)
                    return
                # not the leader / leader died / timed out: find the current leader
                alive = [s for s in ids if s != killed or restarted]
                leader = await pc.leader(alive, within=10)

            while len(acked) < 40:
                await commit_one()
            # kill -9 the leader while a client keeps committing
            killed = leader
            async with trio.open_nursery() as n:

                async def killer() -> None:
                    await trio.sleep(0.01)
                    pc.kill(killed)

                n.start_soon(killer)
                while len(acked) < 80:
                    await commit_one()
            await pc.wait_dead(killed)
            new_leader = await pc.leader([s for s in ids if s != killed])
            assert new_leader != killed
            # continue committing, then bring the killed node back from its disk state
            while len(acked) < 100:
                await commit_one()
            await pc.start(killed)
            restarted = True
            while len(acked) < 120:
                await commit_one()
            # every acknowledged commit is on all three nodes, in the same order
            items: dict[str, list[str]] = {}
            while True:
                for sid in ids:
                    r = await pc.call(sid, "items")
                    items[sid] = r["items"]
                if all(len(items[s]) == len(items[ids[0]]) for s in ids) and len(items[ids[0]]) >= len(acked):
                    break
                await trio.sleep(0.05)
            for sid in ids:
                assert items[sid] == items[ids[0]], sid
                assert is_subsequence(acked, items[sid]), sid
                # nothing is applied twice
                assert len(set(items[sid])) == len(items[sid])
    finally:
        with trio.CancelScope(shield=True):
            await pc.stop_all()
