"""Interop: op-baton's ``baton p2p run`` against independent js-libp2p peers configured like op-node.

Topology (the js peers are *not* connected to each other)::

    js A (yamux only) ──dials──▶ baton p2p run (sequencer mode) ──static peer──▶ js B (mplex only)

So every message between A and B must be validated and relayed by our node. The js peers
(``js/peer.mjs``: js-libp2p 2.10 + @chainsafe/libp2p-gossipsub 14.1.2, StrictNoSign, op-node's
message id, op-node router parameters) run their own topic validator (snappy, size, signature →
expected signer via @noble/secp256k1, SSZ extraData offset), i.e. they check our node's output
independently of any Python code.

What the main test shows, in order:
  1. a block published by js A is accepted by our node and relayed to js B; the message id is
     identical on A, on our node, on B and in Python's own computation (also for V1–V3 topics);
  2. a block published by our node (``baton_publishPayload``, signed with ``--p2p.sequencer.key``)
     reaches both js peers, which recover the sequencer address from the signature and see the
     same message id and the same decompressed bytes;
  3. duplicates are suppressed: A re-sends an already delivered block twice (bypassing its own
     seen cache); our node neither re-accepts nor forwards it, B got it exactly once;
  4. invalid blocks (signed by the wrong key; corrupt signature) published by A are rejected by
     our node and never reach B;
  5. no protocol errors or penalties: neither js peer saw a pubsub-level rejection (e.g.
     ``seqno_present``) or a validator rejection or logged any js-libp2p error, both js peers score
     our node ≥ 0 and stay connected, and our node scores B ≥ 0; our node's verdict log holds
     exactly the three REJECTs of step 4 (nothing valid refused).

Along the way it also covers a ~3 MB block (above py-libp2p's 1 MiB defaults) relayed A → B and
bursts (30 blocks from A, 20 from our node) delivered completely, each exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cramjam
import pytest
import trio

from p2p.encoding import message_id
from p2p.payload import BlockVersion

from .batonnode import BatonNode, open_baton_node
from .blocks import CHAIN_ID, OTHER_KEY, SEQUENCER_KEY, Block, make_block, resign, signer_hex
from .jspeer import JsPeer, open_js_peer

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("js_peer_ready")]

SIGNER = signer_hex(SEQUENCER_KEY)
TEST_TIMEOUT = 75  # seconds, whole test; typical runtime is far lower


def _is_msg(msg_id: str) -> Any:
    return lambda e: e.get("event") == "message" and e.get("msgId") == msg_id


def _decompress(hex_data: str) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(bytes.fromhex(hex_data.removeprefix("0x"))))


async def _wait_mesh(peer: JsPeer, other_id: str, topic: str, within: float = 15.0) -> None:
    """Wait until ``peer`` has ``other_id`` in its gossipsub mesh for ``topic``."""
    with trio.fail_after(within):
        while True:
            for info in await peer.peers():
                if info["peerId"] == other_id and topic in info["mesh"]:
                    return
            await trio.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# js ↔ js: the reference peer itself (no Python node involved)


async def test_js_peers_exchange_python_built_blocks(tmp_path: Path) -> None:
    """Two js peers exchange a Python-signed block and reject a badly signed one (sanity of the harness)."""
    with trio.fail_after(40):
        async with (
            trio.open_nursery() as nursery,
            open_js_peer(nursery, "c", chain_id=CHAIN_ID, signer=SIGNER, log_dir=tmp_path) as c,
            open_js_peer(nursery, "d", chain_id=CHAIN_ID, signer=SIGNER, log_dir=tmp_path) as d,
        ):
            await c.dial(d.addr)
            good = make_block(1)
            await _wait_mesh(c, d.peer_id, good.topic)
            res = await c.publish(good.topic, good.data)
            assert res["msgId"] == good.msg_id
            got = await d.wait_for(_is_msg(good.msg_id), what="good block at d")
            assert got["signer"] == SIGNER
            assert got["blockNumber"] == good.number and got["blockHash"] == good.block_hash
            bad = resign(make_block(2), OTHER_KEY)
            await c.publish(bad.topic, bad.data)
            rej = await d.wait_for(lambda e: e.get("event") == "reject", what="reject at d")
            assert rej["stage"] == "validator" and rej["reason"].startswith("wrong_signer")
            assert rej["msgId"] == bad.msg_id
            assert not any(m["msgId"] == bad.msg_id for m in d.messages)


# ------------------------------------------------------------------------------------------------
# js A ↔ baton p2p run ↔ js B


async def _recent_blocks(node: BatonNode, limit: int = 100) -> list[dict[str, Any]]:
    result = await node.call("baton_recentBlocks", limit)
    blocks = result.get("blocks", result) if isinstance(result, dict) else result
    assert isinstance(blocks, list), result
    return blocks


async def _wait_node_accepted(node: BatonNode, block: Block, within: float = 10.0) -> dict[str, Any]:
    """Poll ``baton_recentBlocks`` until ``block`` (by message id) shows up."""
    with trio.fail_after(within):
        while True:
            for entry in await _recent_blocks(node):
                if entry.get("messageId") == block.msg_id:
                    return entry
            await trio.sleep(0.05)


def _corrupt_signature(block: Block, *, v: int | None = None) -> Block:
    """``block`` with a broken signature: r's first byte flipped, or ``v`` replaced."""
    decompressed = bytearray(cramjam.snappy.decompress_raw(block.data))
    if v is None:
        decompressed[0] ^= 0xFF
    else:
        decompressed[64] = v
    data = bytes(cramjam.snappy.compress_raw(bytes(decompressed)))
    return Block(block.topic, data, block.signed_bytes, block.envelope, block.version, block.chain_id)


def _node_args(tmp_path: Path, *, static: str) -> list[str]:
    """``baton p2p run`` flags: sequencer mode, loopback, ephemeral ports, ``static`` as static peer."""
    flags = {
        "--chain-id": str(CHAIN_ID),
        "--p2p.unsafe-block-signer": SIGNER,
        "--p2p.sequencer.key": SEQUENCER_KEY.hex(),
        "--p2p.listen.ip": "127.0.0.1",
        "--p2p.listen.tcp": "0",
        "--p2p.priv.path": str(tmp_path / "opnode_p2p_priv.txt"),
        "--p2p.peerstore.path": str(tmp_path / "peerstore"),
        "--p2p.static": static,  # our node dials B (outbound); A dials our node (inbound)
        "--rpc.addr": "127.0.0.1",
        "--rpc.port": "0",
    }
    return [item for pair in flags.items() for item in pair]


def _node_refusals(node: BatonNode) -> list[dict[str, Any]]:
    """REJECT/IGNORE verdicts our node logged (JSON log lines carrying a ``result`` field)."""
    refusals = []
    for line in node.log_tail(limit=10_000_000).splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("result") in ("REJECT", "IGNORE"):
            refusals.append(entry)
    return refusals


def _scores_by_peer(peers_dump: dict[str, Any]) -> dict[str, float]:
    return {pid: float(info["scores"]["gossip"]["total"]) for pid, info in peers_dump["peers"].items()}


async def test_baton_node_relays_between_js_peers(tmp_path: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            # js A speaks only yamux, js B only mplex: our node must serve both muxers.
            js_args: dict[str, Any] = {"chain_id": CHAIN_ID, "signer": SIGNER, "log_dir": tmp_path}
            async with (
                open_js_peer(nursery, "A", extra_args=["--muxer", "yamux"], **js_args) as js_a,
                open_js_peer(nursery, "B", extra_args=["--muxer", "mplex"], **js_args) as js_b,
                open_baton_node(nursery, _node_args(tmp_path, static=js_b.addr), log_dir=tmp_path) as node,
            ):
                try:
                    await _run_scenario(js_a, js_b, node)
                except BaseException:
                    # Make the evidence visible in the pytest report.
                    print("---- baton node log (tail) ----\n" + node.log_tail())
                    print("---- js A stderr ----\n" + js_a.stderr_tail())
                    print("---- js B stderr ----\n" + js_b.stderr_tail())
                    print("---- js A events ----\n" + "\n".join(json.dumps(e)[:300] for e in js_a.events))
                    print("---- js B events ----\n" + "\n".join(json.dumps(e)[:300] for e in js_b.events))
                    raise
            nursery.cancel_scope.cancel()


async def _run_scenario(js_a: JsPeer, js_b: JsPeer, node: BatonNode) -> None:
    node_id = node.peer_id
    topic = make_block(0).topic  # /optimism/901/3/blocks (V4)
    expected_at_b: list[str] = []  # message ids B must receive, each exactly once
    expected_at_a: list[str] = []

    # … and A dials our node (inbound). Both js peers must mesh with our node; never with each other.
    await js_a.dial(node.addr)
    await _wait_mesh(js_a, node_id, topic)
    await _wait_mesh(js_b, node_id, topic)
    peers_a, peers_b = await js_a.peers(), await js_b.peers()
    assert [p["peerId"] for p in peers_a] == [node_id] and [p["peerId"] for p in peers_b] == [node_id]
    assert peers_a[0]["muxers"] == ["/yamux/1.0.0"] and peers_b[0]["muxers"] == ["/mplex/6.7.0"]
    assert peers_a[0]["encryption"] == ["/noise"] and peers_b[0]["encryption"] == ["/noise"]

    # (1) js A publishes → our node validates and relays → js B; one message id everywhere.
    block1 = make_block(1)
    published = await js_a.publish(block1.topic, block1.data)
    assert published["msgId"] == block1.msg_id  # js computation == Python computation
    assert published["recipients"] == [node_id]
    got_b = await js_b.wait_for(_is_msg(block1.msg_id), what="block 1 at B")
    assert got_b["from"] == node_id and got_b["data"] == "0x" + block1.data.hex()
    assert got_b["signer"] == SIGNER and got_b["blockHash"] == block1.block_hash
    accepted = await _wait_node_accepted(node, block1)
    assert accepted["hash"] == block1.block_hash and accepted["fromPeer"] == js_a.peer_id
    expected_at_b.append(block1.msg_id)

    # (1a) one block on each older topic version (V1..V3: different SSZ layouts and topics).
    for version in (BlockVersion.V1, BlockVersion.V2, BlockVersion.V3):
        old = make_block(10 + int(version), seed=10 + int(version), version=version)
        await js_a.publish(old.topic, old.data)
        got_old = await js_b.wait_for(_is_msg(old.msg_id), what=f"{version.name} block at B")
        assert got_old["topic"] == old.topic and got_old["blockHash"] == old.block_hash
        expected_at_b.append(old.msg_id)

    # (1b) a large block (~3 MB of incompressible transactions: above py-libp2p's 1 MiB defaults).
    big = make_block(2, seed=2, n_txs=2, tx_size=3_000_000)
    assert len(big.data) > 3_000_000
    await js_a.publish(big.topic, big.data)
    got_big = await js_b.wait_for(_is_msg(big.msg_id), within=15, what="large block at B")
    assert got_big["size"] == len(big.data) and got_big["blockHash"] == big.block_hash
    expected_at_b.append(big.msg_id)

    # (2) our node publishes (sequencer key) → both js peers; they recover the sequencer address.
    block3 = make_block(3, seed=3)
    res = await node.call("baton_publishPayload", block3.envelope_json())
    node_msg_id = res["messageId"]
    assert res["topic"] == block3.topic
    for peer in (js_a, js_b):
        got = await peer.wait_for(_is_msg(node_msg_id), what=f"node block at {peer.name}")
        assert got["from"] == node_id and got["topic"] == block3.topic
        assert got["signer"] == SIGNER and got["blockHash"] == block3.block_hash
        assert "0x" + message_id(block3.topic, bytes.fromhex(got["data"][2:])).hex() == node_msg_id
        assert _decompress(got["data"])[65:] == block3.signed_bytes  # the very bytes we asked to sign
    seen = await _recent_blocks(node)
    assert any(e["messageId"] == node_msg_id and e["hash"] == block3.block_hash for e in seen), seen
    expected_at_a.append(node_msg_id)
    expected_at_b.append(node_msg_id)

    # (2b) bursts (py-libp2p drops beyond 10 msg/s/topic and a 32-deep queue unless fixed):
    # 30 blocks from A as fast as the js peer publishes them, then 20 from our node via RPC.
    burst_a = [make_block(100 + i, seed=100 + i) for i in range(30)]
    for blk in burst_a:
        await js_a.publish(blk.topic, blk.data)
    burst_node = []
    for i in range(20):
        blk = make_block(200 + i, seed=200 + i)
        burst_node.append((await node.call("baton_publishPayload", blk.envelope_json()))["messageId"])
    want_b = [b.msg_id for b in burst_a] + burst_node
    with trio.fail_after(15):
        for mid in want_b:
            await js_b.wait_for(_is_msg(mid), within=15, what=f"burst message {mid} at B")
        for mid in burst_node:
            await js_a.wait_for(_is_msg(mid), within=15, what=f"burst message {mid} at A")
    expected_at_b += want_b
    expected_at_a += burst_node

    # (3) duplicates: A re-sends block 1 twice, B re-sends it once, bypassing their own seen caches.
    for _ in range(2):
        assert (await js_a.command("resend", topic=block1.topic, data="0x" + block1.data.hex()))["recipients"]
    assert (await js_b.command("resend", topic=block1.topic, data="0x" + block1.data.hex()))["recipients"]

    # (4) invalid blocks from A: wrong signer, corrupted r, v = 27. Our node must REJECT, not relay.
    bad = [
        resign(make_block(4, seed=4), OTHER_KEY),
        _corrupt_signature(make_block(5, seed=5)),
        _corrupt_signature(make_block(6, seed=6), v=27),
    ]
    for blk in bad:
        await js_a.publish(blk.topic, blk.data)

    # Sentinel: a valid block sent after all of the above on the same A → node → B path. Once B has
    # it, anything the node was going to relay earlier has been relayed; wait two more heartbeats
    # for gossip (IHAVE/IWANT) to be sure.
    block7 = make_block(7, seed=7)
    await js_a.publish(block7.topic, block7.data)
    await js_b.wait_for(_is_msg(block7.msg_id), what="sentinel block 7 at B")
    expected_at_b.append(block7.msg_id)
    await trio.sleep(1.2)

    # Each expected message exactly once at B (no duplicates, nothing invalid); block 1, the big
    # block, A's burst and block 7 never bounced back to A.
    got_at_b = [m["msgId"] for m in js_b.messages]
    assert sorted(got_at_b) == sorted(expected_at_b), (len(got_at_b), len(expected_at_b))
    assert sorted(m["msgId"] for m in js_a.messages) == sorted(expected_at_a)
    recent = await _recent_blocks(node, 1000)
    recent_ids = [e["messageId"] for e in recent]
    for mid in expected_at_b:
        assert recent_ids.count(mid) == 1, (mid, recent_ids)
    assert not {b.msg_id for b in bad} & set(recent_ids)
    assert not {b.number for b in bad} & {e["number"] for e in recent}

    # Our node's own verdict log: exactly the three invalid blocks were REJECTed, all from A, for
    # signature reasons (a flipped r byte either fails recovery or recovers a random address);
    # nothing valid was refused (duplicates stop at the seen cache, before validation).
    refused = _node_refusals(node)
    assert len(refused) == 3, refused
    assert all(r["result"] == "REJECT" and r["peer"] == js_a.peer_id for r in refused), refused
    assert {r["reason"] for r in refused} <= {"wrong_signer", "bad_signature"}, refused

    # (5) no protocol errors or penalties on either side.
    for peer in (js_a, js_b):
        stats = await peer.stats()
        assert stats["rejects"] == [], f"{peer.name} saw rejections: {stats['rejects']}"
        assert stats["errors"] == [] and stats["publishErrors"] == 0, stats
        assert stats["scores"][node_id] >= 0, stats["scores"]
        assert [p["peerId"] for p in await peer.peers()] == [node_id]  # still connected
        # js-libp2p logged no error of any component (DEBUG=*:error goes to this log).
        errors = [line for line in peer.stderr_tail(1_000_000).splitlines() if ":error" in line]
        assert errors == [], f"{peer.name} logged errors:\n" + "\n".join(errors[:20])
    b_stats = await js_b.stats()
    assert sum(b_stats["received"].values()) == len(expected_at_b)
    dump = await node.call("opp2p_peers", True)
    scores = _scores_by_peer(dump)
    assert set(scores) >= {js_a.peer_id, js_b.peer_id}, dump
    assert scores[js_b.peer_id] >= 0, scores
    # A sent 3 invalid blocks. op-node charges nothing for a REJECT (no topic params); our "light"
    # profile deliberately keeps a mild P4 of −10 per REJECT (p2p/compat.py light_score_params).
    # Anything below −30 would mean a penalty for something else (duplicates, protocol misbehaviour).
    assert scores[js_a.peer_id] >= -30.0, scores
    a_score_of_node = (await js_a.stats())["scores"][node_id]
    print(
        f"node-side scores: A={scores[js_a.peer_id]} B={scores[js_b.peer_id]}; "
        f"js-side scores of our node: A={a_score_of_node} B={b_stats['scores'][node_id]}; "
        f"B received {len(got_at_b)} messages"
    )
