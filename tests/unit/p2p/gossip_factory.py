"""Test helpers: build signed, snappy-compressed block-gossip messages (valid or deliberately broken).

Used by the validator, CLI, fuzz and gossip-node tests. Blocks come from :mod:`p2p.blockbuilder`
(correct block hashes); signing uses fixed test keys so results are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.blockbuilder import DEFAULT_TIMESTAMP, build_envelope
from p2p.encoding import compress
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, encode_envelope
from p2p.signing import address_of, sign
from p2p.topics import block_topic
from p2p.validator import GossipValidator, SignerSet

__all__ = [
    "CHAIN_ID",
    "NOW",
    "OTHER_KEY",
    "SEQUENCER_ADDRESS",
    "SEQUENCER_KEY",
    "THIRD_KEY",
    "GossipMessage",
    "make_gossip",
    "make_validator",
    "message_from_envelope",
    "raw_gossip",
]

CHAIN_ID = 10
NOW = DEFAULT_TIMESTAMP
SEQUENCER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
OTHER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
THIRD_KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
SEQUENCER_ADDRESS = address_of(SEQUENCER_KEY)


@dataclass(frozen=True, slots=True)
class GossipMessage:
    """One gossip message and what went into it."""

    topic: str
    data: bytes  # snappy-compressed, as on the wire
    decompressed: bytes  # signature ‖ signed bytes
    envelope: ExecutionPayloadEnvelope
    version: BlockVersion

    @property
    def block_hash(self) -> bytes:
        return self.envelope.execution_payload.block_hash

    @property
    def signed_bytes(self) -> bytes:
        return self.decompressed[65:]

    @property
    def signature(self) -> bytes:
        return self.decompressed[:65]


def raw_gossip(
    signed_bytes: bytes,
    *,
    key: bytes = SEQUENCER_KEY,
    chain_id: int = CHAIN_ID,
    signature: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Sign arbitrary signed bytes; return ``(compressed, decompressed)``. ``signature`` overrides."""
    sig = signature if signature is not None else sign(key, chain_id, signed_bytes)
    decompressed = sig + signed_bytes
    return compress(decompressed), decompressed


def message_from_envelope(
    envelope: ExecutionPayloadEnvelope,
    version: BlockVersion,
    *,
    key: bytes = SEQUENCER_KEY,
    chain_id: int = CHAIN_ID,
    topic_version: BlockVersion | None = None,
    encode_version: BlockVersion | None = None,
    signature: bytes | None = None,
) -> GossipMessage:
    """Encode ``envelope`` (with ``encode_version``, default ``version``), sign and compress it."""
    body = encode_envelope(envelope, encode_version if encode_version is not None else version)
    data, decompressed = raw_gossip(body, key=key, chain_id=chain_id, signature=signature)
    topic = block_topic(chain_id, topic_version if topic_version is not None else version)
    return GossipMessage(topic, data, decompressed, envelope, version)


def make_gossip(
    version: BlockVersion = BlockVersion.V4,
    *,
    key: bytes = SEQUENCER_KEY,
    chain_id: int = CHAIN_ID,
    number: int = 1,
    timestamp: int = NOW,
    n_txs: int = 1,
    tx_size: int = 200,
    seed: int = 0,
    **build_kwargs: object,
) -> GossipMessage:
    """A signed gossip message for a fresh block of ``version`` (valid unless ``build_kwargs`` say not)."""
    envelope = build_envelope(
        version,
        number=number,
        timestamp=timestamp,
        n_txs=n_txs,
        tx_size=tx_size,
        seed=seed,
        chain_id=chain_id,
        **build_kwargs,  # type: ignore[arg-type]
    )
    return message_from_envelope(envelope, version, key=key, chain_id=chain_id)


def make_validator(
    *,
    chain_id: int = CHAIN_ID,
    signer: bytes | None = SEQUENCER_ADDRESS,
    jovian_time: int | None = None,
    timestamp_threshold: int = 60,
) -> GossipValidator:
    """A GossipValidator trusting ``signer`` (the sequencer test key by default)."""
    return GossipValidator(
        chain_id,
        SignerSet(signer),
        None,
        jovian_time=jovian_time,
        timestamp_threshold=timestamp_threshold,
    )
