"""Raft TCP transport: exchange, reconnect, authentication, malformed input, queue bound."""

from __future__ import annotations

import struct
from functools import partial

import pytest
import trio

from conductor.raft.messages import AppendEntries, Heartbeat, Message
from conductor.raft.transport import RaftTransport, TransportConfig, check_reachable
from conductor.raft.types import Entry, EntryKind

FAST = TransportConfig(
    connect_timeout=1.0, write_timeout=1.0, io_timeout=1.0, backoff_min=0.01, backoff_max=0.1
)


def hb(src: str, dst: str, ctx: int = 0) -> Heartbeat:
    return Heartbeat(src=src, dst=dst, term=1, commit=0, ctx=ctx)


async def start(nursery: trio.Nursery, sid: str, secret: bytes | None = None, port: int = 0) -> RaftTransport:
    t = RaftTransport(sid, "127.0.0.1", port, secret=secret, config=FAST)
    await nursery.start(t.run)
    return t


def link(*ts: RaftTransport) -> None:
    addrs = {t.id: f"127.0.0.1:{t.port}" for t in ts}
    for t in ts:
        t.set_peers(addrs)


async def recv(t: RaftTransport) -> Message:
    return await t.inbound.receive()


async def recv_hb(t: RaftTransport) -> Heartbeat:
    msg = await t.inbound.receive()
    assert isinstance(msg, Heartbeat)
    return msg


async def test_two_transports_exchange() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a")
            b = await start(n, "b")
            link(a, b)
            a.send(hb("a", "b", 1))
            assert await recv(b) == hb("a", "b", 1)
            b.send(hb("b", "a", 2))
            assert await recv(a) == hb("b", "a", 2)
            big = AppendEntries("a", "b", 2, 0, 0, (Entry(2, 1, EntryKind.NORMAL, b"x" * 2_000_000),), 0)
            for i in range(5):
                a.send(hb("a", "b", 10 + i))
            a.send(big)
            got = [await recv(b) for _ in range(6)]
            assert got[:5] == [hb("a", "b", 10 + i) for i in range(5)]
            assert got[5] == big
            assert a.stats.sent == 7 and b.stats.received == 7
            n.cancel_scope.cancel()


async def test_secret_handshake_ok() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a", secret=b"s3cret")
            b = await start(n, "b", secret=b"s3cret")
            link(a, b)
            a.send(hb("a", "b"))
            b.send(hb("b", "a"))
            assert (await recv(b)).src == "a"
            assert (await recv(a)).src == "b"
            n.cancel_scope.cancel()


@pytest.mark.parametrize(("sa", "sb"), [(b"one", b"two"), (None, b"two"), (b"one", None)])
async def test_wrong_or_missing_secret_refused(sa: bytes | None, sb: bytes | None) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a", secret=sa)
            b = await start(n, "b", secret=sb)
            link(a, b)
            for _ in range(5):
                a.send(hb("a", "b"))
                await trio.sleep(0.05)
            got: list[Message] = []
            with trio.move_on_after(0.3):
                got.append(await recv(b))
            assert got == [], "message accepted from unauthenticated peer"
            assert b.stats.received == 0
            assert a.stats.dropped_unreachable > 0
            assert a.stats.auth_failures + b.stats.auth_failures > 0
            n.cancel_scope.cancel()


async def test_reconnect_after_peer_restart() -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            a = await start(n, "a")
            async with trio.open_nursery() as bn:
                b = await start(bn, "b")
                link(a, b)
                a.send(hb("a", "b", 1))
                assert (await recv_hb(b)).ctx == 1
                bn.cancel_scope.cancel()
            port = b.port
            # peer down: messages are dropped, the sender keeps retrying
            for i in range(3):
                a.send(hb("a", "b", 100 + i))
                await trio.sleep(0.05)
            async with trio.open_nursery() as bn2:
                b2 = await start(bn2, "b", port=port)
                # keep sending until one arrives on the new incarnation
                got: Message | None = None
                for i in range(200):
                    a.send(hb("a", "b", 1000 + i))
                    with trio.move_on_after(0.05):
                        got = await recv(b2)
                        break
                assert got is not None and isinstance(got, Heartbeat) and got.ctx >= 1000
                bn2.cancel_scope.cancel()
            n.cancel_scope.cancel()


async def _raw_connect_and_send(port: int, data: bytes) -> bytes:
    """Send raw bytes; return whatever the server sends back before closing."""
    s = await trio.open_tcp_stream("127.0.0.1", port)
    out = b""
    async with s:
        try:
            await s.send_all(data)
            while True:
                chunk = await s.receive_some(65536)
                if not chunk:
                    break
                out += chunk
        except trio.BrokenResourceError:
            pass
    return out


def _hello(sid: str) -> bytes:
    body = b"RFT1" + b"\x00" + struct.pack(">H", len(sid)) + sid.encode() + b"\x00\x00" + b"n" * 32
    return struct.pack(">I", len(body)) + body


async def test_garbage_and_oversized_frames_close_connection_only() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a")
            b = await start(n, "b")
            # not a handshake at all
            await _raw_connect_and_send(b.port, b"GET / HTTP/1.1\r\n\r\n")
            # oversized frame after a valid handshake
            await _raw_connect_and_send(b.port, _hello("x") + struct.pack(">I", 2**31))
            # a well-framed but undecodable message
            await _raw_connect_and_send(b.port, _hello("x") + struct.pack(">I", 5) + b"\x01\x99abc")
            # a message whose src is not the handshake id
            from conductor.raft.messages import encode_message

            spoof = encode_message(hb("mallory", "b"))
            await _raw_connect_and_send(b.port, _hello("x") + struct.pack(">I", len(spoof)) + spoof)
            assert b.stats.malformed_frames == 1
            assert b.stats.refused_connections >= 3
            # the server still works
            link(a, b)
            a.send(hb("a", "b", 7))
            assert (await recv_hb(b)).ctx == 7
            n.cancel_scope.cancel()


async def test_queue_bound_drops_oldest() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            cfg = TransportConfig(queue_messages=10, backoff_min=0.01)
            a = RaftTransport("a", "127.0.0.1", 0, config=cfg)
            await n.start(a.run)
            a.set_peers({"b": "127.0.0.1:1"})  # nobody listens there
            for i in range(25):
                a.send(hb("a", "b", i))
            assert a.queued("b") == 10
            assert a.stats.dropped_queue_full == 15
            a.send(hb("a", "zzz"))  # unknown peer
            assert a.stats.dropped_no_address == 1
            n.cancel_scope.cancel()


async def test_check_reachable() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a")
            await check_reachable(f"127.0.0.1:{a.port}", dial_timeout=1)
            n.cancel_scope.cancel()
        with pytest.raises(OSError):
            await check_reachable("127.0.0.1:1", dial_timeout=1)


async def test_reply_to_unconfigured_peer_via_advertised_address() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a = await start(n, "a")
            b = await start(n, "b")
            a.set_peers({"b": f"127.0.0.1:{b.port}"})  # b knows nobody (a new, empty server)
            a.send(hb("a", "b", 1))
            assert (await recv_hb(b)).ctx == 1
            assert b.address_of("a") == f"127.0.0.1:{a.port}"
            b.send(hb("b", "a", 2))
            assert (await recv_hb(a)).ctx == 2
            n.cancel_scope.cancel()


async def test_write_timeout_to_stalled_peer_reconnects_without_crashing() -> None:
    """A peer that completes the handshake but never reads: the write times out, the
    connection is dropped and reported unreachable, and the transport keeps working."""
    stalled: list[trio.SocketStream] = []

    async def stalled_server(stream: trio.SocketStream) -> None:
        hello = b""
        while len(hello) < 4 or len(hello) < 4 + struct.unpack(">I", hello[:4])[0]:
            hello += await stream.receive_some(1024)
        sid = b"slow"
        body = b"RFT1\x00" + struct.pack(">H", len(sid)) + sid + b"\x00\x00" + b"n" * 32
        await stream.send_all(struct.pack(">I", len(body)) + body)
        stalled.append(stream)
        await trio.sleep_forever()  # never read again

    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            listeners = await n.start(partial(trio.serve_tcp, stalled_server, 0, host="127.0.0.1"))
            slow_port = listeners[0].socket.getsockname()[1]
            reported: list[str] = []
            a = RaftTransport("a", "127.0.0.1", 0, config=FAST, on_unreachable=reported.append)
            await n.start(a.run)
            b = await start(n, "b")
            a.set_peers({"slow": f"127.0.0.1:{slow_port}", "b": f"127.0.0.1:{b.port}"})
            big = (Entry(2, 1, EntryKind.NORMAL, b"x" * 4_000_000),)
            for _ in range(10):
                a.send(AppendEntries("a", "slow", 2, 0, 0, big, 0))
            while "slow" not in reported:  # noqa: ASYNC110 (a plain callback list)
                await trio.sleep(0.05)
            a.send(hb("a", "b", 5))
            assert (await recv_hb(b)).ctx == 5
            assert stalled
            n.cancel_scope.cancel()


async def test_lost_connection_is_reported_and_redialled_without_anything_queued() -> None:
    """A peer that dies is reported at once (its FIN), then again when the immediate redial
    fails, although nothing is queued for it: a follower uses this to detect a dead leader."""
    reported: list[tuple[str, float]] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as n:

            def on_unreachable(peer: str) -> None:
                reported.append((peer, trio.current_time()))

            a = RaftTransport("a", "127.0.0.1", 0, config=FAST, on_unreachable=on_unreachable)
            await n.start(a.run)
            async with trio.open_nursery() as bn:
                b = await start(bn, "b")
                link(a, b)
                a.send(hb("a", "b", 1))
                assert (await recv_hb(b)).ctx == 1
                await trio.sleep(0.05)
                assert reported == []
                t_down = trio.current_time()
                bn.cancel_scope.cancel()  # closes b's listener and connections
            with trio.move_on_after(1.0):
                while len(reported) < 2:  # noqa: ASYNC110
                    await trio.sleep(0.005)
            assert [p for p, _ in reported[:2]] == ["b", "b"]
            assert reported[1][1] - t_down < 0.5  # the redial did not wait for a message
            assert a.queued("b") == 0
            n.cancel_scope.cancel()
