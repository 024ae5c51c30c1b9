"""Multi-process gossip: ``baton p2p run`` nodes on 127.0.0.1 in a static line topology."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import trio

from baton.rpcclient import RpcClientError

from .gossip_helpers import free_port, make_block_json, start_node, wait_for

pytestmark = pytest.mark.slow


async def test_block_reaches_every_node_once(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            seq = await start_node(nursery, tmp_path, "n0", sequencer=True)
            nodes = [seq]
            for i in range(1, 4):
                nodes.append(await start_node(nursery, tmp_path, f"n{i}", static=[nodes[-1].addr]))

            async def line_up() -> bool:
                for i, n in enumerate(nodes):
                    want = {nodes[j].peer_id for j in (i - 1, i + 1) if 0 <= j < len(nodes)}
                    if not want <= await n.connected_peers():
                        return False
                return True

            await wait_for(line_up, 20)
            await trio.sleep(1.5)  # a few heartbeats: meshes grafted
            env = make_block_json(100)
            res = await seq.call("baton_publishPayload", env)
            assert res["topic"] == "/optimism/10/3/blocks"
            block_hash = env["executionPayload"]["blockHash"]

            async def everywhere() -> bool:
                for n in nodes:
                    if not any(b["hash"] == block_hash for b in await n.recent()):
                        return False
                return True

            await wait_for(everywhere, 10)
            await trio.sleep(1.0)
            for n in nodes:
                recent = await n.recent()
                assert [b["hash"] for b in recent] == [block_hash], n.name
                assert recent[0]["messageId"] == res["messageId"]
            # relayed hop by hop along the line
            assert (await nodes[3].recent())[0]["fromPeer"] == nodes[2].peer_id
            for n in nodes:
                assert await n.stop() == 0
            nursery.cancel_scope.cancel()


async def test_killed_static_peer_is_redialled(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = free_port()
            b = await start_node(nursery, tmp_path, "b", port=port)
            a = await start_node(nursery, tmp_path, "a", sequencer=True, static=[b.addr])

            async def a_sees_b() -> bool:
                return b.peer_id in await a.connected_peers()

            await wait_for(a_sees_b, 15)
            await b.stop(signal.SIGKILL)

            async def a_lost_b() -> bool:
                return b.peer_id not in await a.connected_peers()

            await wait_for(a_lost_b, 15)
            b2 = await start_node(nursery, tmp_path, "b", port=port)  # same key, same port
            assert b2.peer_id == b.peer_id
            await wait_for(a_sees_b, 30, interval=0.25)
            # and gossip flows again over the new connection
            await trio.sleep(1.0)
            env = make_block_json(200)

            async def b2_has_block() -> bool:
                return any(x["hash"] == env["executionPayload"]["blockHash"] for x in await b2.recent())

            await a.call("baton_publishPayload", env)
            await wait_for(b2_has_block, 10)
            await a.stop()
            await b2.stop()
            nursery.cancel_scope.cancel()


async def test_blocked_peer_cannot_reconnect_until_unblocked(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            a = await start_node(nursery, tmp_path, "a", sequencer=True)
            b = await start_node(nursery, tmp_path, "b", static=[a.addr])  # b keeps re-dialling a

            async def connected() -> bool:
                return b.peer_id in await a.connected_peers()

            await wait_for(connected, 15)
            await a.call("opp2p_blockPeer", b.peer_id)
            assert await a.call("opp2p_listBlockedPeers") == [b.peer_id]

            async def disconnected() -> bool:
                return b.peer_id not in await a.connected_peers()

            await wait_for(disconnected, 10)
            with pytest.raises(RpcClientError):
                await a.call("opp2p_connectPeer", b.addr)  # our own dial is gated too
            # b's static-peer dialer keeps trying; a must keep refusing for a while
            for _ in range(6):
                await trio.sleep(0.5)
                assert b.peer_id not in await a.connected_peers()
            await a.call("opp2p_unblockPeer", b.peer_id)
            await a.call("opp2p_connectPeer", b.addr)
            await wait_for(connected, 15)
            await a.stop()
            await b.stop()
            nursery.cancel_scope.cancel()


async def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    with trio.fail_after(30):
        proc = await trio.run_process(
            [
                sys.executable,
                "-m",
                "baton",
                "p2p",
                "run",
                "--chain-id",
                "10",
                "--p2p.listen.tcp",
                "99999",
                "--p2p.priv.path",
                str(tmp_path / "k"),
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert proc.returncode == 2
        err = proc.stderr.decode().strip().splitlines()
        assert len(err) == 1 and "p2p.listen.tcp" in err[0]
        assert proc.stdout == b""
