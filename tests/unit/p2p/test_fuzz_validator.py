"""Fuzz the gossip validator: hostile bytes always get a Verdict, never an exception.

A seeded loop throws 12,000 messages of ten kinds at one long-lived validator (random bytes, bit
flips / truncations / splices of valid compressed messages, random snappy, huge decoded-length
headers, corrupted decompressed messages, and — to reach the SSZ decoder and block-hash stages —
corrupted payloads that are *re-signed* by the real sequencer key); a smaller hypothesis part adds
arbitrary bytes and structured mutations. Properties checked on every message:

* ``validate`` returns a Verdict with a known result and a snake_case reason, never raises, and
  never reports ``internal_error``;
* the SSZ decoder fails only with PayloadDecodeError;
* whenever a verdict carries a decoded envelope, re-encoding it gives back the exact signed bytes;
* a message whose signed bytes were changed and *not* re-signed is never accepted.
"""

from __future__ import annotations

import random
import re
import struct
from collections import Counter
from collections.abc import Callable

from gossip_factory import (
    CHAIN_ID,
    NOW,
    SEQUENCER_ADDRESS,
    SEQUENCER_KEY,
    GossipMessage,
    make_gossip,
    raw_gossip,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p.encoding import MAX_GOSSIP_SIZE, compress, uvarint
from p2p.payload import BlockVersion, PayloadDecodeError, decode_envelope, encode_envelope
from p2p.topics import block_topic, parse_block_topic
from p2p.validator import GossipValidator, Result, SignerSet, Verdict

REASON_RE = re.compile(r"[a-z][a-z0-9_]*")
SEEDED_ITERATIONS = 12_000
HYPOTHESIS_EXAMPLES = 400


def _corpus() -> list[GossipMessage]:
    msgs = []
    for version in BlockVersion:
        for n_txs in (0, 1, 4):
            msgs.append(make_gossip(version, n_txs=n_txs, tx_size=120, number=1000 + n_txs, seed=n_txs))
    return msgs


CORPUS = _corpus()


def _flip_bits(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _splice(rng: random.Random, a: bytes, b: bytes) -> bytes:
    return a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1) :]


def _corrupt_u32(rng: random.Random, data: bytes, base: int) -> bytes:
    """Overwrite one of the SSZ offsets (extraData/transactions/withdrawals) or a random u32."""
    buf = bytearray(data)
    candidates = [base + 436, base + 504, base + 508]  # extraData, transactions, withdrawals offsets
    pos = rng.choice(candidates) if rng.random() < 0.7 else rng.randrange(max(1, len(buf) - 3))
    if pos + 4 <= len(buf):
        value = rng.choice(
            [0, 1, 3, 4, 508, 512, 528, 560, len(buf), len(buf) + 1, 2**32 - 1, rng.randrange(2**32)]
        )
        struct.pack_into("<I", buf, pos, value)
    return bytes(buf)


def _insert_delete(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        return data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i:]
    return data[:i] + data[i + rng.randint(1, 8) :]


class Checker:
    """Runs messages through one validator and checks the per-message properties."""

    def __init__(self) -> None:
        self.validator = GossipValidator(CHAIN_ID, SignerSet(SEQUENCER_ADDRESS), jovian_time=NOW)
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def run(
        self, topic: str, data: bytes, *, signed_bytes: bytes | None = None, forged: bool = False
    ) -> Verdict:
        verdict = self.validator.validate(topic, data, NOW)
        self.count += 1
        assert isinstance(verdict, Verdict)
        assert verdict.result in (Result.ACCEPT, Result.IGNORE, Result.REJECT)
        assert REASON_RE.fullmatch(verdict.reason), verdict.reason
        assert verdict.reason != "internal_error", verdict.detail
        self.reasons[verdict.reason] += 1
        if forged:
            assert verdict.result is not Result.ACCEPT
        parsed = parse_block_topic(topic)
        if verdict.envelope is not None and signed_bytes is not None and parsed is not None:
            assert encode_envelope(verdict.envelope, parsed[1]) == signed_bytes
        return verdict

    def run_resigned(self, version: BlockVersion, signed_bytes: bytes) -> Verdict:
        """Deep path: corrupted payload with a valid signature; the decoder must fail cleanly."""
        try:
            decode_envelope(signed_bytes, version)
        except PayloadDecodeError:
            pass
        data, _ = raw_gossip(signed_bytes, key=SEQUENCER_KEY)
        return self.run(block_topic(CHAIN_ID, version), data, signed_bytes=signed_bytes)


def _signers() -> object:
    from gossip_factory import SEQUENCER_ADDRESS

    from p2p.validator import SignerSet

    return SignerSet(SEQUENCER_ADDRESS)


def _topic(rng: random.Random, msg: GossipMessage) -> str:
    roll = rng.random()
    if roll < 0.7:
        return msg.topic
    if roll < 0.95:
        return block_topic(CHAIN_ID, rng.choice(list(BlockVersion)))
    return rng.choice(["/optimism/11/3/blocks", "", "/optimism/10/9/blocks", "garbage"])


def test_seeded_fuzz_never_raises() -> None:
    rng = random.Random(0xBA7011)
    checker = Checker()
    kinds: list[Callable[[GossipMessage], None]] = []

    def random_bytes(msg: GossipMessage) -> None:
        checker.run(_topic(rng, msg), rng.randbytes(rng.randint(0, 2000)))

    def flipped_compressed(msg: GossipMessage) -> None:
        checker.run(_topic(rng, msg), _flip_bits(rng, msg.data))

    def truncated_compressed(msg: GossipMessage) -> None:
        checker.run(_topic(rng, msg), _truncate(rng, msg.data))

    def spliced_compressed(msg: GossipMessage) -> None:
        checker.run(_topic(rng, msg), _splice(rng, msg.data, rng.choice(CORPUS).data))

    def random_snappy(msg: GossipMessage) -> None:
        checker.run(_topic(rng, msg), compress(rng.randbytes(rng.randint(0, 3000))))

    def huge_header(msg: GossipMessage) -> None:
        n = rng.choice([MAX_GOSSIP_SIZE + 1, 2**32 - 1, rng.randrange(MAX_GOSSIP_SIZE, 2**32)])
        checker.run(_topic(rng, msg), uvarint(n) + rng.randbytes(rng.randint(0, 64)))

    def corrupted_decompressed(msg: GossipMessage) -> None:
        # signature kept, signed bytes changed, not re-signed: must never be accepted
        body = msg.decompressed
        mutated = body[:65] + _flip_bits(rng, body[65:])
        if mutated != body:
            checker.run(msg.topic, compress(mutated), forged=True)

    def resigned_bitflip(msg: GossipMessage) -> None:
        checker.run_resigned(msg.version, _flip_bits(rng, msg.signed_bytes))

    def resigned_offsets(msg: GossipMessage) -> None:
        base = 32 if msg.version >= BlockVersion.V3 else 0
        checker.run_resigned(msg.version, _corrupt_u32(rng, msg.signed_bytes, base))

    def resigned_truncate_insert(msg: GossipMessage) -> None:
        mutated = (
            _insert_delete(rng, msg.signed_bytes) if rng.random() < 0.5 else _truncate(rng, msg.signed_bytes)
        )
        checker.run_resigned(rng.choice(list(BlockVersion)), mutated)

    kinds = [
        random_bytes,
        flipped_compressed,
        truncated_compressed,
        spliced_compressed,
        random_snappy,
        huge_header,
        corrupted_decompressed,
        resigned_bitflip,
        resigned_offsets,
        resigned_truncate_insert,
    ]
    for i in range(SEEDED_ITERATIONS):
        kinds[i % len(kinds)](rng.choice(CORPUS))

    assert checker.count >= 10_000
    # The fuzzing reached every stage of the pipeline, not just the snappy checks.
    for reason in ("snappy_decode_failed", "too_large", "wrong_signer", "invalid_encoding", "unknown_topic"):
        assert checker.reasons[reason] > 0, (reason, checker.reasons)
    deep = {"block_hash_mismatch", "timestamp_too_old", "timestamp_too_new", "valid", "duplicate"}
    assert sum(checker.reasons[r] for r in deep) > 0, checker.reasons


_HYPO_CHECKER = Checker()


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    topic_index=st.integers(0, 4),
    data=st.binary(max_size=4096),
)
def test_hypothesis_arbitrary_bytes(topic_index: int, data: bytes) -> None:
    topic = block_topic(CHAIN_ID, BlockVersion(topic_index)) if topic_index < 4 else "/optimism/1/0/blocks"
    _HYPO_CHECKER.run(topic, data)
    _HYPO_CHECKER.run(topic, compress(data))


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True)
@given(
    which=st.integers(0, len(CORPUS) - 1),
    position=st.integers(0, 10_000),
    replacement=st.binary(min_size=1, max_size=16),
    resign=st.booleans(),
)
def test_hypothesis_structured_mutation(which: int, position: int, replacement: bytes, resign: bool) -> None:
    msg = CORPUS[which]
    body = msg.signed_bytes
    pos = position % (len(body) + 1)
    mutated = body[:pos] + replacement + body[pos + len(replacement) :]
    if resign:
        _HYPO_CHECKER.run_resigned(msg.version, mutated)
    elif mutated != body:
        _HYPO_CHECKER.run(msg.topic, compress(msg.signature + mutated), forged=True)
