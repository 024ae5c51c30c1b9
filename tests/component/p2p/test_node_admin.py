"""GossipNode's admin-facing peer operations against py-libp2p quirks (real hosts on 127.0.0.1).

* ``connect_peer`` (``opp2p_connectPeer``) must work right after a failed dial (py-libp2p refuses to re-dial
  a peer for 60 s) and despite stale peerstore addresses (py-libp2p dials one TCP address per peer);
* ``gater_relaxed`` (``opp2p_unblockPeer``) re-dials an unblocked static peer at once;
* inbound connections refused at the handshake are counted in ``HostGate.refused_connections``.
"""

from __future__ import annotations

import socket

import pytest
import trio
from multiaddr import Multiaddr

from p2p.node import GossipNode

from .test_node import make_node, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_connected(a: GossipNode, b: GossipNode) -> bool:
    return b.peer_id in a.connected_peers()


async def test_connect_peer_after_failed_dial_and_with_stale_addresses() -> None:
    with trio.fail_after(30):
        a, b = make_node(), make_node()
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            dead = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{b.peer_id.to_base58()}"
            with pytest.raises(Exception):  # noqa: B017 - py-libp2p raises its own dial error types
                await a.connect_peer(dead)  # nothing listens there: py-libp2p caches the failure
            # a stale address stays in the peerstore (e.g. learned before b moved to another port)
            a.host.get_peerstore().add_addrs(b.peer_id, [Multiaddr(dead.split("/p2p/")[0])], 3600)
            await a.connect_peer(b.listen_addrs()[0])  # must dial now, and the given address
            assert is_connected(a, b)
            assert dead.split("/p2p/")[0] not in {str(x) for x in a.host.get_peerstore().addrs(b.peer_id)}
            nursery.cancel_scope.cancel()


async def test_unblocked_static_peer_is_redialled_at_once() -> None:
    with trio.fail_after(30):
        b = make_node()
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run)
            a = make_node(static_peers=(b.listen_addrs()[0],))
            a.gater.block_peer(b.peer_id)
            await nursery.start(a.run)
            await trio.sleep(1.0)
            assert not is_connected(a, b)
            assert a.static_peers is not None
            a.static_peers.poll_interval = 120.0  # a blocked peer is now re-checked only every 120 s…
            a.static_peers.wake(b.peer_id)  # …from its next check on
            await trio.sleep(0.5)
            a.gater.unblock_peer(b.peer_id)
            a.gater_relaxed(b.peer_id.to_base58())  # what opp2p_unblockPeer calls
            await wait_until(lambda: is_connected(a, b), timeout=15)
            nursery.cancel_scope.cancel()


async def test_inbound_refused_at_handshake_is_counted() -> None:
    with trio.fail_after(30):
        a, b = make_node(), make_node()
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            b.gater.block_peer(a.peer_id)
            assert b.host_gate is not None
            with pytest.raises(Exception):  # noqa: B017
                await a.connect(b.listen_addrs()[0])
            await wait_until(lambda: b.host_gate is not None and b.host_gate.refused_connections >= 1)
            assert not is_connected(b, a)
            nursery.cancel_scope.cancel()
