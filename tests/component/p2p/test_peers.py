"""Static peers + connection gater on real py-libp2p hosts (TCP on 127.0.0.1, Noise, yamux)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from p2p.gater import ConnectionGater, install_gater
from p2p.host import build_host, listen_port_of
from p2p.peers import StaticPeerConfigError, StaticPeerDialer, parse_static_peers

KEY_A = create_new_key_pair(b"\x0a" * 32)
KEY_B = create_new_key_pair(b"\x0b" * 32)


@asynccontextmanager
async def running_host(key: Any, port: int = 0) -> AsyncIterator[Any]:
    host = build_host(key)
    async with host.run([Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")]):
        yield host


def addr_of(host: Any) -> str:
    return f"/ip4/127.0.0.1/tcp/{listen_port_of(host)}/p2p/{host.get_id().to_base58()}"


def connected(host: Any, other: Any) -> bool:
    conns = host.get_network().connections.get(other.get_id()) or []
    return any(not c.is_closed for c in conns)


async def wait_until(pred: Callable[[], bool], limit: float = 10.0, step: float = 0.05) -> None:
    """Poll ``pred`` (state of py-libp2p hosts, which offer no event to wait on) for up to ``limit`` s."""
    with trio.fail_after(limit):
        while not pred():  # noqa: ASYNC110
            await trio.sleep(step)


async def stays(pred: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    """True if ``pred`` holds at every sample for ``seconds``."""
    end = trio.current_time() + seconds
    while trio.current_time() < end:
        if not pred():
            return False
        await trio.sleep(step)
    return True


def test_parse_static_peers_rejects_bad_entries() -> None:
    b = create_new_key_pair(b"\x0b" * 32)
    from p2p.keys import peer_id_of

    pid = peer_id_of(b).to_base58()
    own = peer_id_of(KEY_A)
    good = f"/ip4/10.0.0.1/tcp/9222/p2p/{pid}"
    peers = parse_static_peers([good + f", /ip4/10.0.0.2/tcp/1/p2p/{own.to_base58()},{good}"], self_id=own)
    assert [(str(p.addr), p.peer_id.to_base58()) for p in peers] == [("/ip4/10.0.0.1/tcp/9222", pid)]
    for bad in ["/ip4/10.0.0.1/tcp/9222", "nonsense", f"/p2p/{pid}", "/ip4/10.0.0.1/tcp/1/p2p/notapeer"]:
        with pytest.raises(StaticPeerConfigError):
            parse_static_peers([bad])


async def test_static_peer_is_redialled_after_restart_on_same_port_and_key() -> None:
    with trio.fail_after(60):
        async with running_host(KEY_A) as a, trio.open_nursery() as nursery:
            async with running_host(KEY_B) as b:
                port = listen_port_of(b)
                dialer = StaticPeerDialer(a, [addr_of(b)], min_backoff=0.1, max_backoff=1.0)
                assert dialer.is_protected(b.get_id()) and dialer.is_static(b.get_id().to_base58())
                await nursery.start(dialer.run)
                await wait_until(lambda: connected(a, b))
            # b stopped; restart it at once on the same port (a port freed for long may be taken by others)
            attempts = dialer.dial_attempts[b.get_id()]
            assert attempts >= 1
            async with running_host(KEY_B, port) as b2:
                assert b2.get_transport_addrs(), f"port {port} was taken meanwhile"
                await wait_until(lambda: dialer.dial_attempts[b2.get_id()] > attempts, limit=20)
                await wait_until(lambda: connected(a, b2), limit=20)
                # connected for real: streams work
                assert connected(b2, a)
            nursery.cancel_scope.cancel()


async def test_blocked_static_peer_is_not_dialled_until_unblocked() -> None:
    gater = ConnectionGater()
    with trio.fail_after(30):
        async with running_host(KEY_A) as a, running_host(KEY_B) as b, trio.open_nursery() as nursery:
            install_gater(a, gater)
            gater.block_peer(b.get_id())
            dialer = StaticPeerDialer(a, [addr_of(b)], gater, min_backoff=0.1, max_backoff=0.5)
            await nursery.start(dialer.run)
            await trio.sleep(0.8)
            assert dialer.dial_attempts[b.get_id()] == 0
            assert not connected(a, b)
            gater.unblock_peer(b.get_id())
            dialer.wake(b.get_id())
            await wait_until(lambda: connected(a, b))
            nursery.cancel_scope.cancel()


async def test_blocked_peer_cannot_connect_until_unblocked_and_block_survives_restart(tmp_path: Path) -> None:
    store = tmp_path / "peerstore"
    with trio.fail_after(60):
        async with running_host(KEY_A) as a, trio.open_nursery() as nursery:
            async with running_host(KEY_B) as b:
                port = listen_port_of(b)
                gate = install_gater(b, ConnectionGater.open(store))
                # a is connected, then b blocks it: the existing connection is closed
                await a.connect(PeerInfo(b.get_id(), [Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")]))
                await wait_until(lambda: connected(b, a))
                await gate.block_peer(a.get_id())
                await wait_until(lambda: not connected(b, a) and not connected(a, b))

            # b restarts with the persisted gater: a's static-peer dialling never gets a lasting connection
            async with running_host(KEY_B) as b2:
                gate2 = install_gater(b2, ConnectionGater.open(store))
                assert gate2.gater.list_blocked_peers() == [a.get_id().to_base58()]
                dialer = StaticPeerDialer(a, [addr_of(b2)], min_backoff=0.1, max_backoff=0.3, stable_after=60)
                await nursery.start(dialer.run)
                await wait_until(lambda: dialer.dial_attempts[b2.get_id()] >= 3, limit=20)
                assert not await stays(lambda: connected(b2, a), 1.0)  # never holds a connection
                assert gate2.refused_connections >= 2  # the dials reached b2 and were refused there
                # unblock on b2: a's dialer gets in and stays
                gate2.gater.unblock_peer(a.get_id())
                await wait_until(lambda: connected(b2, a), limit=20)
                assert await stays(lambda: connected(b2, a), 1.0)
            nursery.cancel_scope.cancel()


async def test_ip_block_refuses_inbound_and_ip_ban_closes_existing() -> None:
    with trio.fail_after(30):
        async with running_host(KEY_A) as a, running_host(KEY_B) as b:
            gate = install_gater(b, ConnectionGater())
            info = PeerInfo(b.get_id(), [Multiaddr(f"/ip4/127.0.0.1/tcp/{listen_port_of(b)}")])
            await a.connect(info)
            await wait_until(lambda: connected(b, a))
            closed = await gate.ban_addr("127.0.0.1", time.time() + 3600)
            assert closed >= 1
            await wait_until(lambda: not connected(b, a))
            a.get_network().unblock_peer(b.get_id())  # py-libp2p's own 60 s negative dial cache
            with pytest.raises(Exception):  # noqa: B017 - py-libp2p raises its own dial error types
                await a.connect(info)
            assert not connected(b, a)
            assert gate.refused_addresses >= 1 and gate.refused_connections == 0  # refused at accept
            gate.gater.ban_addr("127.0.0.1", 0)
            a.get_network().unblock_peer(b.get_id())
            await a.connect(info)
            await wait_until(lambda: connected(b, a))


async def test_api_protection_set() -> None:
    async with running_host(KEY_A) as a:
        dialer = StaticPeerDialer(a, [])
        pid = create_new_key_pair(b"\x0c" * 32)
        from p2p.keys import peer_id_of

        p = peer_id_of(pid).to_base58()
        assert not dialer.is_protected(p)
        dialer.protect(p)
        assert dialer.is_protected(p) and dialer.protected_peers() == {p}
        dialer.unprotect(p)
        assert not dialer.is_protected(p)
