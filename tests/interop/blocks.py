"""Signed block-gossip messages for the interop tests, built with the project's own codecs.

Blocks get correct block hashes (:mod:`p2p.blockbuilder`) and a current timestamp, so a full
op-node-style validator (our node) accepts them; the js peer checks them independently (snappy,
size, signature → expected signer, SSZ extraData offset of the topic version).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from p2p.blockbuilder import build_envelope
from p2p.encoding import compress, message_id
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, encode_envelope, envelope_to_json
from p2p.signing import address_of, signed_message
from p2p.topics import block_topic

__all__ = ["CHAIN_ID", "OTHER_KEY", "SEQUENCER_KEY", "Block", "make_block", "resign", "signer_hex"]

CHAIN_ID = 901
# Well-known dev keys (anvil accounts 0 and 1): never used for anything real.
SEQUENCER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
OTHER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")


def signer_hex(key: bytes) -> str:
    """The 0x-prefixed lower-case address of ``key``."""
    return "0x" + address_of(key).hex()


@dataclass(frozen=True, slots=True)
class Block:
    """One gossip message plus what the test checks it against."""

    topic: str
    data: bytes  # snappy-compressed, as on the wire
    signed_bytes: bytes  # what the signature covers
    envelope: ExecutionPayloadEnvelope
    version: BlockVersion
    chain_id: int

    @property
    def msg_id(self) -> str:
        """op-node message id, 0x-hex (the js peer reports ids in this form)."""
        return "0x" + message_id(self.topic, self.data).hex()

    @property
    def number(self) -> int:
        return self.envelope.execution_payload.block_number

    @property
    def block_hash(self) -> str:
        return "0x" + self.envelope.execution_payload.block_hash.hex()

    def envelope_json(self) -> dict[str, Any]:
        return envelope_to_json(self.envelope)


def make_block(
    number: int,
    *,
    key: bytes = SEQUENCER_KEY,
    chain_id: int = CHAIN_ID,
    version: BlockVersion = BlockVersion.V4,
    seed: int = 0,
    n_txs: int = 3,
    tx_size: int = 300,
) -> Block:
    """A valid block ``number`` of ``version`` with the current timestamp, signed by ``key``."""
    envelope = build_envelope(
        version,
        number=number,
        timestamp=int(time.time()),
        n_txs=n_txs,
        tx_size=tx_size,
        seed=seed,
        chain_id=chain_id,
    )
    signed_bytes = encode_envelope(envelope, version)
    data = compress(signed_message(key, chain_id, signed_bytes))
    return Block(block_topic(chain_id, version), data, signed_bytes, envelope, version, chain_id)


def resign(block: Block, key: bytes) -> Block:
    """The same block signed by another ``key`` (a different message id; invalid for the real signer)."""
    data = compress(signed_message(key, block.chain_id, block.signed_bytes))
    return Block(block.topic, data, block.signed_bytes, block.envelope, block.version, block.chain_id)
