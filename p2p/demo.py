"""A walk-through of block-gossip validation: build, sign and judge good and bad blocks.

``main()`` creates a throw-away sequencer key, builds V1–V4 blocks with :mod:`p2p.blockbuilder`,
signs and snappy-compresses them exactly as a sequencer would publish them, runs them through one
:class:`~p2p.validator.GossipValidator`, and prints a table of what happened and why. It checks each
outcome against the expected one and returns 1 if any differs, so it doubles as a smoke test.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from p2p.blockbuilder import DEFAULT_TIMESTAMP, build_envelope
from p2p.encoding import MAX_GOSSIP_SIZE, compress, message_id, uvarint
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, encode_envelope
from p2p.signing import address_of, encode_gossip, generate_private_key
from p2p.topics import block_topic
from p2p.validator import GossipValidator, Result, SignerSet, Verdict

__all__ = ["DemoCase", "main", "run_cases"]

CHAIN_ID = 10
NOW = DEFAULT_TIMESTAMP


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One message fed to the validator and the outcome we expect."""

    name: str
    topic: str
    data: bytes
    expect: Result
    expect_reason: str


def _message(
    env: ExecutionPayloadEnvelope,
    version: BlockVersion,
    key: bytes,
    topic_version: BlockVersion | None = None,
) -> tuple[str, bytes]:
    data = encode_gossip(env, version, key, CHAIN_ID)
    return block_topic(CHAIN_ID, topic_version if topic_version is not None else version), data


def build_cases(sequencer_key: bytes, stranger_key: bytes) -> list[DemoCase]:
    """The demo's messages, in the order they are validated (order matters: duplicates, limits)."""
    cases: list[DemoCase] = []

    def add(name: str, topic_data: tuple[str, bytes], expect: Result, reason: str) -> None:
        cases.append(DemoCase(name, topic_data[0], topic_data[1], expect, reason))

    for version in BlockVersion:
        env = build_envelope(version, number=100 + int(version), timestamp=NOW, n_txs=20, seed=1)
        add(
            f"valid {version.name} block (20 txs)",
            _message(env, version, sequencer_key),
            Result.ACCEPT,
            "valid",
        )
    v4 = build_envelope(BlockVersion.V4, number=103, timestamp=NOW, n_txs=20, seed=1)
    add("same V4 block again", _message(v4, BlockVersion.V4, sequencer_key), Result.IGNORE, "duplicate")

    other = build_envelope(BlockVersion.V4, number=200, timestamp=NOW, seed=2)
    add("signed by a stranger", _message(other, BlockVersion.V4, stranger_key), Result.REJECT, "wrong_signer")
    topic, data = _message(other, BlockVersion.V4, sequencer_key)
    zeroed = compress(bytes(65) + encode_envelope(other, BlockVersion.V4))
    add("all-zero signature", (topic, zeroed), Result.REJECT, "bad_signature")

    stale = build_envelope(BlockVersion.V4, number=201, timestamp=NOW - 120, seed=3)
    add(
        "timestamp 120 s old",
        _message(stale, BlockVersion.V4, sequencer_key),
        Result.REJECT,
        "timestamp_too_old",
    )
    future = build_envelope(BlockVersion.V4, number=202, timestamp=NOW + 30, seed=3)
    add(
        "timestamp 30 s ahead",
        _message(future, BlockVersion.V4, sequencer_key),
        Result.REJECT,
        "timestamp_too_new",
    )

    good = build_envelope(BlockVersion.V4, number=203, timestamp=NOW, n_txs=5, seed=4)
    tampered = dataclasses.replace(good.execution_payload, gas_used=good.execution_payload.gas_used + 1)
    add(
        "gasUsed changed after hashing",
        _message(dataclasses.replace(good, execution_payload=tampered), BlockVersion.V4, sequencer_key),
        Result.REJECT,
        "block_hash_mismatch",
    )
    add(
        "V4 block on the V3 topic",
        _message(good, BlockVersion.V4, sequencer_key, topic_version=BlockVersion.V3),
        Result.REJECT,
        "invalid_encoding",
    )
    blob = build_envelope(BlockVersion.V4, number=204, timestamp=NOW, seed=5, blob_gas_used=1000)
    add(
        "blobGasUsed ≠ 0 before Jovian",
        _message(blob, BlockVersion.V4, sequencer_key),
        Result.REJECT,
        "blob_gas_used_nonzero",
    )

    for i in range(7):
        env = build_envelope(BlockVersion.V4, number=300, timestamp=NOW, seed=10 + i)
        expect, reason = (Result.ACCEPT, "valid") if i < 6 else (Result.REJECT, "too_many_blocks")
        add(f"block #{i + 1} at height 300", _message(env, BlockVersion.V4, sequencer_key), expect, reason)

    add(
        "snappy header claims 11 MiB",
        (block_topic(CHAIN_ID, BlockVersion.V4), uvarint(MAX_GOSSIP_SIZE + 2**20) + b"\x00" * 8),
        Result.REJECT,
        "too_large",
    )
    add("topic of another chain", ("/optimism/11/3/blocks", data), Result.REJECT, "unknown_topic")
    return cases


def run_cases(
    validator: GossipValidator, cases: list[DemoCase], now: int
) -> list[tuple[DemoCase, Verdict, bytes]]:
    """Validate the cases in order; return each with its verdict and message-id."""
    results = []
    for case in cases:
        verdict = validator.validate(case.topic, case.data, now)
        results.append((case, verdict, message_id(case.topic, case.data)))
    return results


def _print_table(rows: list[tuple[DemoCase, Verdict, bytes]], out: TextIO) -> int:
    width = max(len(c.name) for c, _, _ in rows)
    header = f"{'case':<{width}}  {'topic':<22} {'bytes':>6}  {'result':<6}  {'reason':<22} {'block':<12} ok"
    out.write(header + "\n" + "-" * len(header) + "\n")
    mismatches = 0
    for case, verdict, _mid in rows:
        ok = verdict.result is case.expect and verdict.reason == case.expect_reason
        mismatches += not ok
        block = f"#{verdict.block_number}" if verdict.block_number is not None else "-"
        out.write(
            f"{case.name:<{width}}  {case.topic:<22} {len(case.data):>6}  {verdict.result.value:<6}  "
            f"{verdict.reason:<22} {block:<12} {'✓' if ok else '✗ expected ' + case.expect_reason}\n"
        )
    return mismatches


def main(out: TextIO | None = None, key_source: Callable[[], bytes] = generate_private_key) -> int:
    """Run the demo, print the table; 0 if every outcome matched expectations, else 1."""
    out = out if out is not None else sys.stdout
    sequencer_key, stranger_key = key_source(), key_source()
    sequencer = address_of(sequencer_key)
    out.write(f"chain {CHAIN_ID}, sequencer 0x{sequencer.hex()}, validating at t={NOW}\n\n")
    validator = GossipValidator(CHAIN_ID, SignerSet(sequencer))
    rows = run_cases(validator, build_cases(sequencer_key, stranger_key), NOW)
    mismatches = _print_table(rows, out)
    counts = {r: sum(1 for _, v, _ in rows if v.result is r) for r in Result}
    out.write(
        f"\n{len(rows)} messages: {counts[Result.ACCEPT]} ACCEPT, {counts[Result.IGNORE]} IGNORE, "
        f"{counts[Result.REJECT]} REJECT; {mismatches} unexpected\n"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
