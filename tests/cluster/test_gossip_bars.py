"""Issue #3's multi-process gossip bars that ``test_gossip_cluster.py`` does not cover.

* a badly signed block is dropped at the first hop and counted (injector → B → C);
* IGNORE does not lower a peer's score, REJECT does (injector → B, score read over ``opp2p_peers``);
* a 5-node line of ``baton p2p run`` processes: one block reaches every node exactly once, and a second
  block at the same height signed by the same key from another node is reported as an equivocation by
  every node.

The injector is an in-process :class:`p2p.node.GossipNode` in the test's trio loop; everything else is a
``baton p2p run`` child process on 127.0.0.1 with port 0, its own key file and on-disk peerstore.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from p2p.payload import envelope_to_json

from .gossip_bars_helpers import (
    OTHER_KEY,
    V4_TOPIC,
    block,
    make_injector,
    malleate_signature,
    mid_hex,
    peer_entry,
    scrape,
    signed,
    start_bar_node,
    wait_mesh_links,
    with_signature_v,
)
from .gossip_helpers import NodeProc, wait_for

pytestmark = pytest.mark.slow

ACCEPT_VALID = ("ACCEPT", "valid")


def _wire(data: bytes) -> rpc_pb2.Message:
    """A StrictNoSign gossip message: data and one topic, nothing else."""
    return rpc_pb2.Message(data=data, topicIDs=[V4_TOPIC])


async def _stop_all(nodes: list[NodeProc]) -> dict[str, int]:
    codes: dict[str, int] = {}

    async def stop(n: NodeProc) -> None:
        codes[n.name] = await n.stop()

    async with trio.open_nursery() as nursery:
        for n in nodes:
            nursery.start_soon(stop, n)
    return codes


async def test_badly_signed_block_dropped_at_first_hop_and_counted(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            b = await start_bar_node(nursery, tmp_path, "b")
            c = await start_bar_node(nursery, tmp_path, "c", static=[b.addr])
            inj = make_injector()
            await nursery.start(inj.run)
            inj_id = inj.peer_id.to_base58()
            await inj.connect(b.addr)
            with trio.fail_after(10):
                await inj.wait_for_mesh(ID.from_base58(b.peer_id))
            await wait_mesh_links([(b, c.peer_id), (c, b.peer_id), (b, inj_id)], 15)

            env = block(300)
            wrong_signer = signed(env, OTHER_KEY)  # well-formed signature by a key that is not the signer
            corrupt = with_signature_v(signed(block(301)), 27)  # v = 27: recovery refused
            bad_mids = {mid_hex(wrong_signer), mid_hex(corrupt)}
            for data in (wrong_signer, corrupt):
                await inj.publish_unchecked(_wire(data))

            async def b_counted_both() -> bool:
                m = (await scrape(b)).messages("v4")
                return (
                    m.get(("REJECT", "wrong_signer"), 0) >= 1 and m.get(("REJECT", "bad_signature"), 0) >= 1
                )

            await wait_for(b_counted_both, 10)
            assert (await scrape(b)).messages("v4") == {
                ("REJECT", "wrong_signer"): 1,
                ("REJECT", "bad_signature"): 1,
            }
            assert await b.recent() == []
            assert await c.recent() == []
            assert (await scrape(c)).messages("v4") == {}

            # The same block, correctly signed, sent afterwards on the same injector→B stream: B handles a
            # peer's messages in order and B→C is one ordered stream, so once it is at C anything B had
            # forwarded before it would already have been counted by C.
            valid_mid, topic = await inj.publish(env)
            assert topic == V4_TOPIC and valid_mid not in bad_mids

            async def c_has_valid() -> bool:
                return any(x["messageId"] == valid_mid for x in await c.recent())

            await wait_for(c_has_valid, 10)
            c_recent = await c.recent()
            assert [x["messageId"] for x in c_recent] == [valid_mid]
            assert c_recent[0]["fromPeer"] == b.peer_id
            assert (await scrape(c)).messages("v4") == {ACCEPT_VALID: 1}  # no REJECT ever reached C
            b_recent = await b.recent()
            assert [x["messageId"] for x in b_recent] == [valid_mid]
            assert b_recent[0]["fromPeer"] == inj_id
            assert (await scrape(b)).messages("v4") == {
                ("REJECT", "wrong_signer"): 1,
                ("REJECT", "bad_signature"): 1,
                ACCEPT_VALID: 1,
            }
            assert await _stop_all([b, c]) == {"b": 0, "c": 0}
            nursery.cancel_scope.cancel()


async def test_ignore_keeps_peer_score_reject_lowers_it(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            b = await start_bar_node(nursery, tmp_path, "b")
            inj = make_injector()
            await nursery.start(inj.run)
            inj_id = inj.peer_id.to_base58()
            await inj.connect(b.addr)
            with trio.fail_after(10):
                await inj.wait_for_mesh(ID.from_base58(b.peer_id))

            async def gossip_score() -> tuple[float, float]:
                """(scores.gossip.total, blocks.invalidMessageDeliveries) of the injector as B sees it."""
                entry = await peer_entry(b, inj_id)
                assert entry is not None, "injector not connected to B"
                gossip = entry["scores"]["gossip"]
                return float(gossip["total"]), float(gossip["blocks"]["invalidMessageDeliveries"])

            total0, invalid0 = await gossip_score()
            assert invalid0 == 0

            # IGNOREs: each block first validly, then its malleated twin (r, n−s, v^1): same signer, same
            # block, a different message id → B's validator says IGNORE·duplicate.
            n_ignores = 5
            for i in range(n_ignores):
                data = signed(block(400 + i))
                twin = malleate_signature(data)
                assert mid_hex(twin) != mid_hex(data)
                await inj.publish_data(V4_TOPIC, data)
                await inj.publish_unchecked(_wire(twin))

            async def b_ignored_all() -> bool:
                return (await scrape(b)).messages("v4").get(("IGNORE", "duplicate"), 0) >= n_ignores

            await wait_for(b_ignored_all, 10)
            assert (await scrape(b)).messages("v4") == {
                ACCEPT_VALID: n_ignores,
                ("IGNORE", "duplicate"): n_ignores,
            }
            # sample across several heartbeats (0.5 s) / decay steps: never below the starting score
            for _ in range(6):
                await trio.sleep(0.25)
                total, invalid = await gossip_score()
                assert total >= total0, (total, total0)
                assert invalid == 0
            total_after_ignores = total

            # one REJECT (wrong signer) → the invalid-message penalty shows in the score
            await inj.publish_unchecked(_wire(signed(block(500), OTHER_KEY)))

            async def score_dropped() -> bool:
                total, _ = await gossip_score()
                return total < total_after_ignores

            await wait_for(score_dropped, 10)
            assert (await scrape(b)).messages("v4").get(("REJECT", "wrong_signer")) == 1
            await trio.sleep(1.0)  # a couple of heartbeats of decay later it is still lower
            total, invalid = await gossip_score()
            assert total < total_after_ignores and total < total0
            assert invalid > 0
            assert b.peer_id in {p.to_base58() for p in inj.connected_peers()}  # one REJECT is no ban
            assert await _stop_all([b]) == {"b": 0}
            nursery.cancel_scope.cancel()


async def test_five_node_line_once_then_equivocation_everywhere(tmp_path: Path) -> None:
    with trio.fail_after(45):
        async with trio.open_nursery() as nursery:
            nodes = [await start_bar_node(nursery, tmp_path, "a", sequencer=True)]
            for name in "bcd":
                nodes.append(await start_bar_node(nursery, tmp_path, name, static=[nodes[-1].addr]))
            # E holds the same sequencer key: the double-sequencing a failover must never produce
            nodes.append(
                await start_bar_node(nursery, tmp_path, "e", static=[nodes[-1].addr], sequencer=True)
            )
            a, e = nodes[0], nodes[-1]
            links = [
                (x, y.peer_id)
                for i in range(4)
                for x, y in ((nodes[i], nodes[i + 1]), (nodes[i + 1], nodes[i]))
            ]
            await wait_mesh_links(links, 20)
            await trio.sleep(0.5)  # one more heartbeat for the remaining topics' grafts
            for n in nodes:
                assert await n.call("baton_equivocations") == [], n.name

            env1 = block(700, seed=1)
            h1 = "0x" + env1.execution_payload.block_hash.hex()
            res1 = await a.call("baton_publishPayload", envelope_to_json(env1))
            assert res1["topic"] == V4_TOPIC

            async def everywhere(block_hash: str) -> bool:
                for n in nodes:
                    if not any(x["hash"] == block_hash for x in await n.recent()):
                        return False
                return True

            await wait_for(lambda: everywhere(h1), 15)
            await trio.sleep(1.0)  # ≥ 2 heartbeats: IHAVE/IWANT could still deliver a second copy
            for i, n in enumerate(nodes):
                recent = await n.recent()
                assert [(x["hash"], x["messageId"]) for x in recent] == [(h1, res1["messageId"])], n.name
                # relayed hop by hop (A's own publish is recorded from itself)
                assert recent[0]["fromPeer"] == nodes[max(i - 1, 0)].peer_id, n.name
                m = await scrape(n)
                assert m.messages("v4") == {ACCEPT_VALID: 1}, n.name
                assert m.value("baton_p2p_equivocations_total") == 0, n.name
                assert await n.call("baton_equivocations") == [], n.name

            env2 = block(700, seed=2)  # same height, same key, different block
            h2 = "0x" + env2.execution_payload.block_hash.hex()
            assert h2 != h1
            res2 = await e.call("baton_publishPayload", envelope_to_json(env2))

            async def all_report() -> bool:
                for n in nodes:
                    recs = await n.call("baton_equivocations")
                    if not any(r["number"] == 700 and set(r["hashes"]) == {h1, h2} for r in recs):
                        return False
                return True

            await wait_for(all_report, 15)
            await trio.sleep(1.0)
            for i, n in enumerate(nodes):
                [rec] = await n.call("baton_equivocations")
                assert rec["number"] == 700 and rec["hashes"] == [h1, h2], (n.name, rec)
                recent = await n.recent()
                assert Counter(x["hash"] for x in recent) == Counter({h1: 1, h2: 1}), n.name
                second = next(x for x in recent if x["hash"] == h2)
                assert second["messageId"] == res2["messageId"]
                # relayed back along the line, hop by hop
                assert second["fromPeer"] == nodes[min(i + 1, 4)].peer_id, n.name
                m = await scrape(n)
                assert m.messages("v4") == {ACCEPT_VALID: 2}, n.name
                assert m.value("baton_p2p_equivocations_total") == 1, n.name
            assert await _stop_all(nodes) == dict.fromkeys("abcde", 0)
            nursery.cancel_scope.cancel()
