"""Helpers for ``test_gossip_bars.py``: an in-process injector node, /metrics scraping, score reads and
hand-crafted (mis)signed gossip messages.

The injector is a :class:`p2p.node.GossipNode` running in the test's own trio loop; it dials a
``baton p2p run`` process and uses :meth:`GossipNode.publish_unchecked` to put messages on the wire
that its own validator would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from p2p.config import GossipConfig
from p2p.encoding import compress, decompress_gossip, message_id
from p2p.keys import generate_secret, keypair_from_secret
from p2p.node import GossipNode
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope
from p2p.signing import encode_gossip
from p2p.topics import block_topic

from .gossip_helpers import CHAIN_ID, SEQ_KEY_HEX, NodeProc, make_block, start_node, wait_for

__all__ = [
    "OTHER_KEY",
    "SECP256K1_N",
    "SEQ_KEY",
    "V4_TOPIC",
    "Metrics",
    "block",
    "make_injector",
    "malleate_signature",
    "mid_hex",
    "peer_entry",
    "scrape",
    "signed",
    "start_bar_node",
    "wait_mesh_links",
    "with_signature_v",
]

SEQ_KEY = bytes.fromhex(SEQ_KEY_HEX)
OTHER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
V4_TOPIC = block_topic(CHAIN_ID, BlockVersion.V4)
_MESSAGES = "baton_p2p_gossip_messages_total"


# -- processes ------------------------------------------------------------------------------------


async def start_bar_node(
    nursery: trio.Nursery,
    workdir: Path,
    name: str,
    *,
    static: Sequence[str] = (),
    sequencer: bool = False,
) -> NodeProc:
    """``start_node`` with its own on-disk peerstore directory (key file is ``<workdir>/<name>.key``)."""
    store = workdir / f"{name}.peerstore"
    return await start_node(
        nursery,
        workdir,
        name,
        static=static,
        sequencer=sequencer,
        extra=["--p2p.peerstore.path", str(store)],  # later flag wins over start_node's "memory"
    )


def make_injector() -> GossipNode:
    """An in-process node with the sequencer key (valid publishes) and no ban/peerstore side effects."""
    cfg = GossipConfig(
        chain_id=CHAIN_ID,
        listen_ip="127.0.0.1",
        listen_port=0,
        sequencer_key=SEQ_KEY,
        ban_peers=False,
    )
    return GossipNode(cfg, key_pair=keypair_from_secret(generate_secret()))


# -- blocks and messages --------------------------------------------------------------------------


def block(number: int, *, seed: int = 0) -> ExecutionPayloadEnvelope:
    return make_block(number, tx_size=500, seed=seed)


def signed(envelope: ExecutionPayloadEnvelope, key: bytes = SEQ_KEY) -> bytes:
    """Compressed V4 gossip data of ``envelope`` signed with ``key``."""
    return encode_gossip(envelope, BlockVersion.V4, key, CHAIN_ID)


def _replace_signature(data: bytes, signature: bytes) -> bytes:
    raw = decompress_gossip(data)
    assert len(signature) == 65
    return compress(signature + raw[65:])


def malleate_signature(data: bytes) -> bytes:
    """The same block with the other valid signature ``(r, n − s, v ^ 1)``: same signer, new message id."""
    sig = decompress_gossip(data)[:65]
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    return _replace_signature(data, r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([v ^ 1]))


def with_signature_v(data: bytes, v: int) -> bytes:
    """The signature's recovery byte replaced (27/28 is the classic corruption op-node refuses)."""
    sig = decompress_gossip(data)[:65]
    return _replace_signature(data, sig[:64] + bytes([v]))


def mid_hex(data: bytes, topic: str = V4_TOPIC) -> str:
    return "0x" + message_id(topic, data).hex()


# -- observing process nodes ----------------------------------------------------------------------


class Metrics:
    """One ``GET /metrics`` scrape of a node."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples.append((sample.name, dict(sample.labels), float(sample.value)))

    def value(self, name: str, **labels: str) -> float:
        return sum(
            v for n, lab, v in self.samples if n == name and all(lab.get(k) == x for k, x in labels.items())
        )

    def messages(self, version: str) -> dict[tuple[str, str], float]:
        """``{(result, reason): count}`` of the gossip message counter for one topic version (non-zero)."""
        out: dict[tuple[str, str], float] = {}
        for n, lab, v in self.samples:
            if n == _MESSAGES and lab.get("version") == version and v:
                key = (lab["result"], lab["reason"])
                out[key] = out.get(key, 0.0) + v
        return out


async def scrape(node: NodeProc) -> Metrics:
    with trio.fail_after(10):
        async with httpx.AsyncClient(timeout=None) as client:
            resp = await client.get(node.rpc_url.rstrip("/") + "/metrics")
    assert resp.status_code == 200, resp.status_code
    return Metrics(resp.text)


async def peer_entry(node: NodeProc, peer_id: str) -> dict[str, Any] | None:
    """op-node's ``PeerInfo`` of ``peer_id`` from ``opp2p_peers(true)``, or None if not connected."""
    dump = await node.call("opp2p_peers", True)
    entry: dict[str, Any] | None = dump["peers"].get(peer_id)
    return entry


async def wait_mesh_links(links: Sequence[tuple[NodeProc, str]], timeout: float) -> None:  # noqa: ASYNC109
    """Wait until each ``node`` has ``peer`` in a block-topic mesh.

    Observed through ``opp2p_peers``' ``timeInMesh``: py-libp2p's scorer bumps it when the peer joins
    our mesh (our subscription-driven GRAFT, or the peer's GRAFT we accepted), so ``> 0`` means "in our
    mesh for at least one block topic" (the four topics are grafted together).
    """

    async def all_linked() -> bool:
        for node, peer in links:
            entry = await peer_entry(node, peer)
            if entry is None or entry["scores"]["gossip"]["blocks"]["timeInMesh"] <= 0:
                return False
        return True

    await wait_for(all_linked, timeout)
