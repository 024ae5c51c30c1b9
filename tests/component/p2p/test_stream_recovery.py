"""Regression tests: a slow or failed outbound pubsub stream must never leave a silently dead link.

py-libp2p 0.8.1's per-peer writer died when yamux's send window stayed shut for 5 s (a receiver busy for
5 s); the stream was then re-opened with the peer's subscriptions forgotten, so nothing was ever sent to
that peer again (bench: 2,751 of 4,125 blocks lost in the step after an overload step). ``p2p.compat``
now applies backpressure, re-opens a failed stream keeping the router state, and closes the connection
of a peer whose stream is stuck.
"""

from __future__ import annotations

from typing import Any

import trio

from p2p.node import GossipNode

from .test_node import V4_TOPIC, block, line, make_node, wait_until

BIG = {"n_txs": 5, "tx_size": 100_000}  # ~500 KB per block: 40 of them overflow a 16 MiB yamux window


def pause_reader_once(node: GossipNode, seconds: float) -> trio.Event:
    """Make ``node``'s pubsub reader stop for ``seconds`` at the first message it handles."""
    inner = node.pubsub.push_msg
    paused = trio.Event()

    async def slow(forwarder: Any, msg: Any) -> None:
        if not paused.is_set():
            paused.set()
            await trio.sleep(seconds)
        await inner(forwarder, msg)

    node.pubsub.push_msg = slow  # type: ignore[method-assign,assignment]
    return paused


def numbers(node: GossipNode) -> set[int]:
    return {r["number"] for r in node.recent_blocks(10_000)}


def events(node: GossipNode, name: str) -> float:
    return node.metrics.total("baton_p2p_pubsub_events", event=name)


async def test_receiver_busy_longer_than_yamux_write_timeout_loses_nothing() -> None:
    """The writer waits for the window (backpressure) instead of dying after yamux's 5 s timeout."""
    with trio.fail_after(90):
        async with line(make_node(sequencer=True), make_node()) as (a, b):
            pause_reader_once(b, 6.5)
            for i in range(80):
                await a.publish(block(1000 + i, **BIG))
            await wait_until(lambda: numbers(b) >= set(range(1000, 1080)), timeout=40)
            # the link still works afterwards, in both routing-state and delivery terms
            assert b.peer_id in a.pubsub.peer_topics.get(V4_TOPIC, set())
            for i in range(10):
                await a.publish(block(2000 + i))
            await wait_until(lambda: numbers(b) >= set(range(2000, 2010)), timeout=10)
            assert events(a, "outbound_stream_failed") == 0
            assert a.metrics.total("baton_p2p_outbound_messages_dropped") == 0


async def test_failed_outbound_stream_is_reopened_keeping_subscriptions() -> None:
    with trio.fail_after(60):
        async with line(make_node(sequencer=True), make_node()) as (a, b):
            await a.publish(block(1))
            await wait_until(lambda: 1 in numbers(b))
            old = a.pubsub.peers[b.peer_id]
            await old.reset()  # e.g. the peer reset the stream, or a muxer error
            for i in range(2, 12):
                await a.publish(block(i))
            await wait_until(lambda: numbers(b) >= set(range(1, 12)), timeout=10)
            assert events(a, "outbound_stream_failed") == 1
            assert events(a, "outbound_stream_reopened") == 1
            assert a.pubsub.peers[b.peer_id] is not old
            assert b.peer_id in a.pubsub.peer_topics.get(V4_TOPIC, set())
            assert b.peer_id in a.router.mesh.get(V4_TOPIC, set())


async def test_stuck_outbound_stream_closes_the_connection() -> None:
    """No window progress for ``write_stall_timeout``: the connection is closed (visible, re-dialled)."""
    with trio.fail_after(60):
        async with line(make_node(sequencer=True), make_node()) as (a, b):
            a.pubsub.write_stall_timeout = 1.0
            stuck = a.pubsub.peers[b.peer_id]
            conns = list(a.host.get_network().connections[b.peer_id])
            pause_reader_once(b, 4.0)
            for i in range(80):
                await a.publish(block(3000 + i, **BIG))
            await wait_until(lambda: events(a, "outbound_stream_stalled") == 1, timeout=10)
            await wait_until(lambda: all(c.muxed_conn.is_closed for c in conns), timeout=10)
            await wait_until(lambda: a.pubsub.peers.get(b.peer_id) is not stuck, timeout=10)
            assert events(a, "outbound_stream_reopened") == 0
