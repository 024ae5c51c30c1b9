"""Regression tests for the py-libp2p per-message overheads and silent drops fixed in ``p2p.compat``.

Blocks were lost between processes at 37–56 blocks/s because py-libp2p 0.8.1 spent ~4 ms of CPU per
100 KB message per node on overhead (a signed peer record built and verified for every RPC, the length
prefix read one byte per stream read — each read sends a yamux WINDOW_UPDATE —, an IDONTWANT RPC per
mesh peer per message, our own publishes included), so the publisher's 256-deep outbound queue
overflowed and py-libp2p dropped RPCs with only a DEBUG log. These tests pin each mechanism
deterministically (counts, not timings), plus the drop counter that makes such losses visible.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import pytest
import trio
from libp2p.io.exceptions import MessageTooLarge
from libp2p.pubsub.pb import rpc_pb2
from libp2p.stream_muxer.yamux.yamux import TYPE_WINDOW_UPDATE, YAMUX_HEADER_FORMAT
from libp2p.utils.varint import encode_varint_prefixed

from p2p.compat import IDONTWANT_THRESHOLD, RpcReader
from p2p.node import GossipNode
from p2p.payload import BlockVersion
from p2p.signing import encode_gossip

from .test_node import CHAIN, SEQ_KEY, V4_TOPIC, block, line, make_node, wait_until

BIG_TX = 100_000


class _ChunkStream:
    """A stream returning the given chunks, one per read (then EOF as b"")."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


async def test_rpc_reader_frames_split_and_coalesced_rpcs() -> None:
    bodies = [b"a" * 5, b"", b"b" * 300, b"c" * 70_000]
    wire = b"".join(encode_varint_prefixed(b) for b in bodies)
    # arbitrary chunking: split inside prefixes and bodies, several RPCs per chunk
    cuts = [1, 2, 9, 310, 311, 40_000, len(wire)]
    chunks = [wire[a:b] for a, b in zip([0, *cuts], cuts, strict=False)]
    reader = RpcReader(_ChunkStream(chunks), limit=1 << 20)
    assert [await reader.read() for _ in bodies] == bodies


async def test_rpc_reader_reads_a_message_in_one_read_not_byte_by_byte() -> None:
    wire = b"".join(encode_varint_prefixed(b"x" * 100_000) for _ in range(10))
    stream = _ChunkStream([wire])
    reader = RpcReader(stream, limit=1 << 20)
    for _ in range(10):
        assert len(await reader.read()) == 100_000
    assert stream.reads == 1  # 0.8.1: 3 one-byte reads for the prefix + ≥1 for the body, per message


async def test_rpc_reader_refuses_oversized_before_reading_body() -> None:
    stream = _ChunkStream([encode_varint_prefixed(b"y" * 2000)[:4]])
    with pytest.raises(MessageTooLarge):
        await RpcReader(stream, limit=1000).read()
    assert stream.reads == 1


def _count_frames(node: GossipNode, peer: Any, counter: Counter[str]) -> None:
    """Count the yamux frames ``node`` writes on its connection to ``peer`` by type."""
    conn = node.host.get_network().connections[peer][0].muxed_conn
    inner = conn._write_frame

    async def counting(data: bytes) -> None:
        typ = struct.unpack(YAMUX_HEADER_FORMAT, data[:12])[1]
        counter["window_update" if typ == TYPE_WINDOW_UPDATE else f"type{typ}"] += 1
        await inner(data)

    conn._write_frame = counting


def _spy_rpcs(node: GossipNode, sent: list[Any]) -> None:
    inner = node.router.send_rpc

    def spy(peer_id: Any, rpc: Any, priority: bool = False) -> None:
        sent.append(rpc)
        inner(peer_id, rpc, priority)

    node.router.send_rpc = spy  # type: ignore[method-assign]


async def test_per_message_overhead_is_bounded_across_a_hop() -> None:
    """50 × 100 KB blocks a → b → c: every block arrives; no signed peer record rides on any RPC;
    the publisher sends no IDONTWANT for its own blocks; the relay sends ≤ 1 IDONTWANT per block (to
    c only, not back to a); the receivers send ≤ 3 WINDOW_UPDATE frames per block (0.8.1: ~36)."""
    n = 50
    with trio.fail_after(60):
        async with line(make_node(sequencer=True), make_node(), make_node()) as (a, b, c):
            frames_b: Counter[str] = Counter()
            _count_frames(b, a.peer_id, frames_b)
            sent_a: list[Any] = []
            sent_b: list[Any] = []
            _spy_rpcs(a, sent_a)
            _spy_rpcs(b, sent_b)
            datas = [
                encode_gossip(block(100 + i, n_txs=2, tx_size=BIG_TX), BlockVersion.V4, SEQ_KEY, CHAIN)
                for i in range(n)
            ]
            assert len(datas[0]) > IDONTWANT_THRESHOLD
            for data in datas:
                await a.publish_data(V4_TOPIC, data)
            await wait_until(lambda: len(c.recent_blocks(1000)) == n, timeout=30)
            assert len(b.recent_blocks(1000)) == n
            for node in (a, b, c):
                assert node.metrics.total("baton_p2p_outbound_rpc_dropped") == 0
                assert node.metrics.total("baton_p2p_pubsub_events", event="duplicate") == 0
            assert not any(r.senderRecord for r in sent_a + sent_b)
            assert not any(r.control.idontwant for r in sent_a)
            assert sum(1 for r in sent_b if r.control.idontwant) <= n
            assert sum(len(r.publish) for r in sent_a) == n and sum(len(r.publish) for r in sent_b) == n
            # one read per yamux DATA frame (2 per block); 0.8.1 reads the 3-byte prefix byte by byte, so
            # at least 4 reads — each answered by a WINDOW_UPDATE — per block
            assert frames_b["window_update"] < 3 * n, frames_b


async def test_outbound_queue_overflow_is_counted_not_silent() -> None:
    """A full per-peer queue drops RPCs (go does too) — every dropped block must show in the metrics."""
    n = 60
    with trio.fail_after(60):
        async with line(make_node(sequencer=True, outbound_queue_size=4), make_node()) as (a, b):
            datas = [
                encode_gossip(block(300 + i, n_txs=2, tx_size=BIG_TX), BlockVersion.V4, SEQ_KEY, CHAIN)
                for i in range(n)
            ]
            for data in datas:  # no checkpoint between publishes: the queue cannot drain
                msg = rpc_pb2.Message(data=data, topicIDs=[V4_TOPIC])
                a.pubsub.seen_messages.add(a.pubsub.get_message_id(msg))
                await a.router.publish(a.peer_id, msg)
            dropped = a.metrics.total("baton_p2p_outbound_messages_dropped", reason="queue_full")
            assert dropped >= n - 4
            rpcs = a.metrics.total("baton_p2p_outbound_rpc_dropped", reason="queue_full", kind="publish")
            assert rpcs == dropped
            await wait_until(lambda: len(b.recent_blocks(1000)) == n - dropped, timeout=20)
            await trio.sleep(0.5)
            assert len(b.recent_blocks(1000)) == n - dropped


def test_dlazy_is_honoured() -> None:
    """--p2p.gossip.mesh.dlazy sets how many non-mesh peers get IHAVE (0.8.1 hard-codes 6)."""
    from p2p.compat import op_gossipsub_router

    router = op_gossipsub_router(d_lazy=2)
    assert router._get_adaptive_gossip_peers_count("t", 4) == 2
    assert router._get_adaptive_gossip_peers_count("t", 40) == 10  # go: max(Dlazy, GossipFactor·n)
    assert op_gossipsub_router()._get_adaptive_gossip_peers_count("t", 4) == 6
    assert make_node(mesh_dlazy=3).router.dlazy == 3
