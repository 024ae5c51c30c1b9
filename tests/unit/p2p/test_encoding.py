"""Snappy bounds, go-compatible length header parsing and op-node's message-id."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cramjam
import pytest

from p2p.encoding import (
    MAX_GOSSIP_SIZE,
    MIN_GOSSIP_SIZE,
    SnappyError,
    compress,
    decoded_len,
    decompress_gossip,
    inspect,
    message_id,
    message_id_from_parts,
    uvarint,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "message_ids.json"


def _load_vectors() -> list[dict[str, str]]:
    vectors: list[dict[str, str]] = json.loads(VECTORS.read_text())
    return vectors


@pytest.mark.parametrize("case", _load_vectors(), ids=lambda c: f"{c['topic'] or 'empty'}-{c['data'][:8]}")
def test_message_id_vectors(case: dict[str, str]) -> None:
    data = bytes.fromhex(case["data"][2:])
    assert "0x" + message_id(case["topic"], data).hex() == case["op_node_msg_id"]


def test_message_id_v4_example_from_spec_shape() -> None:
    # Valid snappy uses domain 1 and the decompressed data; topic length is u64 little-endian.
    body = os.urandom(700)
    data = compress(body)
    topic = "/optimism/10/3/blocks"
    expected = hashlib.sha256(
        b"\x01\x00\x00\x00" + len(topic).to_bytes(8, "little") + topic.encode() + body
    ).digest()[:20]
    assert message_id(topic, data) == expected


def test_message_id_invalid_snappy_hashes_raw_data() -> None:
    data = b"\xff" * 12  # corrupt varint header
    topic = "t"
    expected = hashlib.sha256(b"\x00\x00\x00\x00" + (1).to_bytes(8, "little") + b"t" + data).digest()[:20]
    assert message_id(topic, data) == expected


def test_message_id_depends_on_topic() -> None:
    data = compress(b"x" * 100)
    assert message_id("/optimism/10/2/blocks", data) != message_id("/optimism/10/3/blocks", data)


def test_message_id_over_10mib_header_is_invalid_domain() -> None:
    # Header announces more than 10 MiB: never decompressed, raw data hashed with domain 0.
    data = uvarint(MAX_GOSSIP_SIZE + 1) + b"\x00" * 10
    msg = inspect(data)
    assert msg.decompressed is None
    assert message_id("t", data) == message_id_from_parts("t", data, None)


def test_message_id_from_parts_matches_message_id() -> None:
    body = os.urandom(300)
    data = compress(body)
    assert message_id_from_parts("x", data, body) == message_id("x", data)
    assert inspect(data).message_id("x") == message_id("x", data)


def test_message_id_counts_topic_bytes_not_characters() -> None:
    data = b"\xff"
    topic = "é"  # 2 UTF-8 bytes
    expected = hashlib.sha256(b"\x00" * 4 + (2).to_bytes(8, "little") + topic.encode() + data).digest()[:20]
    assert message_id(topic, data) == expected


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, MAX_GOSSIP_SIZE, 2**32 - 1])
def test_decoded_len_readsuvarint(n: int) -> None:
    assert decoded_len(uvarint(n) + b"rest") == n


def test_decoded_len_matches_cramjam_on_real_data() -> None:
    body = os.urandom(5000)
    data = compress(body)
    assert decoded_len(data) == cramjam.snappy.decompress_raw_len(data) == 5000


@pytest.mark.parametrize(
    "header",
    [
        b"",  # empty
        b"\x80",  # unterminated
        b"\xff" * 10 + b"\x01",  # 11 bytes: overflow
        b"\xff" * 9 + b"\x02",  # 10th byte > 1: overflow
        uvarint(2**32),  # > uint32
        uvarint(2**63),
    ],
)
def test_decoded_len_rejects_corrupt_headers(header: bytes) -> None:
    assert decoded_len(header) is None


def test_decoded_len_accepts_non_minimal_varint_like_go() -> None:
    assert decoded_len(b"\x85\x00") == 5


def test_decompress_gossip_round_trip() -> None:
    body = os.urandom(MIN_GOSSIP_SIZE)
    assert decompress_gossip(compress(body)) == body


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff", "snappy_invalid_length"),
        (uvarint(MAX_GOSSIP_SIZE + 1) + b"\x00", "too_large"),
        (compress(b"a" * (MIN_GOSSIP_SIZE - 1)), "too_small"),
        (uvarint(100) + b"\x00\x01", "snappy_decode_failed"),
    ],
)
def test_decompress_gossip_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(SnappyError) as exc:
        decompress_gossip(data)
    assert exc.value.reason == reason
    with pytest.raises(SnappyError) as exc2:
        inspect(data).gossip_payload()
    assert exc2.value.reason == reason


def test_exactly_10_mib_is_allowed() -> None:
    body = bytes(MAX_GOSSIP_SIZE)
    data = compress(body)
    assert decoded_len(data) == MAX_GOSSIP_SIZE
    assert decompress_gossip(data) == body


def test_inspect_keeps_short_decompression_for_message_id() -> None:
    data = compress(b"abc")
    msg = inspect(data)
    assert msg.decompressed == b"abc"
    with pytest.raises(SnappyError):
        msg.gossip_payload()


def test_compress_is_snappy_raw_block_format() -> None:
    body = b"hello world " * 20
    assert bytes(cramjam.snappy.decompress_raw(compress(body))) == body
