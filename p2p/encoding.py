"""Gossip wire encoding: snappy block format with op-node's size bounds, and the message-id.

Every block-gossip message is ``snappy_block(signature ‖ signed_bytes)`` (spec §2.2). op-node reads the
snappy header (a uvarint decoded length) *before* decompressing and rejects lengths above 10 MiB
(zip bomb) or below 66 bytes, then decodes. The header is parsed here exactly like go's
``snappy.DecodedLen`` (``binary.Uvarint`` rules, value ≤ 2^32−1), so the accept/reject boundary does
not depend on cramjam's own header handling.

The gossipsub message-id is op-node's topic-bound form (spec §4.1)::

    SHA256(domain[4] ‖ u64_le(len(topic)) ‖ topic ‖ d)[:20]

with ``d`` = the decompressed data and domain ``01000000`` when the data snappy-decodes with a decoded
length ≤ 10 MiB, else the raw data and domain ``00000000``. :func:`inspect` decompresses at most once;
its result serves both the message-id and the validator, so a message is never decoded twice.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import cramjam

__all__ = [
    "MAX_GOSSIP_SIZE",
    "MESSAGE_DOMAIN_INVALID_SNAPPY",
    "MESSAGE_DOMAIN_VALID_SNAPPY",
    "MIN_GOSSIP_SIZE",
    "SnappyError",
    "SnappyMessage",
    "compress",
    "decoded_len",
    "decompress_gossip",
    "inspect",
    "message_id",
    "message_id_from_parts",
]

MAX_GOSSIP_SIZE = 10 * (1 << 20)
MIN_GOSSIP_SIZE = 66
MESSAGE_DOMAIN_INVALID_SNAPPY = b"\x00\x00\x00\x00"
MESSAGE_DOMAIN_VALID_SNAPPY = b"\x01\x00\x00\x00"

_MAX_VARINT_LEN64 = 10
_U32_MAX = 0xFFFFFFFF
_snappy_compress_raw = cramjam.snappy.compress_raw
_snappy_decompress_raw = cramjam.snappy.decompress_raw
_pack_u64le = struct.Struct("<Q").pack


class SnappyError(ValueError):
    """A gossip message failed snappy decoding; ``reason`` is the stable validator reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decoded_len(data: bytes | bytearray | memoryview) -> int | None:
    """Return the decoded length from a snappy block header, or None if the header is corrupt.

    Mirrors go ``snappy.DecodedLen``: a ``binary.Uvarint`` that must terminate within 10 bytes
    (10th byte ≤ 1) and whose value fits in 32 bits. Non-minimal encodings are accepted, as in go.
    """
    value = 0
    shift = 0
    for i in range(min(len(data), _MAX_VARINT_LEN64)):
        byte = data[i]
        if byte < 0x80:
            if i == _MAX_VARINT_LEN64 - 1 and byte > 1:
                return None
            value |= byte << shift
            return value if value <= _U32_MAX else None
        value |= (byte & 0x7F) << shift
        shift += 7
    return None


def _decompress(data: bytes | bytearray | memoryview) -> bytes | None:
    try:
        return bytes(_snappy_decompress_raw(data))
    except Exception:
        return None


@dataclass(frozen=True, slots=True)
class SnappyMessage:
    """One received gossip message, snappy-inspected once.

    ``decoded_length`` is None when the header is corrupt. ``decompressed`` is None when the header is
    corrupt, announces more than 10 MiB, or the body fails to decode; otherwise it holds the full
    decompressed message (also when it is shorter than the 66-byte gossip minimum — the message-id
    rule has no minimum).
    """

    raw: bytes
    decoded_length: int | None
    decompressed: bytes | None

    def message_id(self, topic: str) -> bytes:
        """Return op-node's 20-byte message-id of this message on ``topic``."""
        return message_id_from_parts(topic, self.raw, self.decompressed)

    def gossip_payload(self) -> bytes:
        """Return the decompressed message if it passes op-node's steps 1–4, else raise SnappyError."""
        _check_gossip_length(self.decoded_length)
        if self.decompressed is None:
            raise SnappyError("snappy_decode_failed", "snappy body does not decode")
        return self.decompressed


def _check_gossip_length(length: int | None) -> None:
    """Steps 1–3: raise SnappyError unless the header is valid and announces 66 B … 10 MiB."""
    if length is None:
        raise SnappyError("snappy_invalid_length", "corrupt snappy length header")
    if length > MAX_GOSSIP_SIZE:
        raise SnappyError("too_large", f"decoded length {length} > {MAX_GOSSIP_SIZE}")
    if length < MIN_GOSSIP_SIZE:
        raise SnappyError("too_small", f"decoded length {length} < {MIN_GOSSIP_SIZE}")


def inspect(data: bytes) -> SnappyMessage:
    """Parse the snappy header and decompress ``data`` at most once (only if ≤ 10 MiB)."""
    length = decoded_len(data)
    decompressed = None
    if length is not None and length <= MAX_GOSSIP_SIZE:
        decompressed = _decompress(data)
    return SnappyMessage(bytes(data), length, decompressed)


def decompress_gossip(data: bytes) -> bytes:
    """Decompress a gossip message with op-node's bounds (steps 1–4 of spec §5.1).

    Raises SnappyError with reason ``snappy_invalid_length``, ``too_large``, ``too_small`` or
    ``snappy_decode_failed``. Nothing is decompressed unless the announced length is in bounds.
    """
    _check_gossip_length(decoded_len(data))
    out = _decompress(data)
    if out is None:
        raise SnappyError("snappy_decode_failed", "snappy body does not decode")
    return out


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Snappy block-format ("raw", unframed) compression of ``data``."""
    return bytes(_snappy_compress_raw(data))


def message_id_from_parts(topic: str, raw: bytes, decompressed: bytes | None) -> bytes:
    """Return the message-id given the raw data and its decompression (None if it did not decode).

    ``decompressed`` must follow the message-id rule: the decoded bytes when the header is valid,
    announces ≤ 10 MiB and the body decodes; None otherwise.
    """
    topic_bytes = topic.encode("utf-8")
    if decompressed is None:
        h = hashlib.sha256(MESSAGE_DOMAIN_INVALID_SNAPPY)
        body = raw
    else:
        h = hashlib.sha256(MESSAGE_DOMAIN_VALID_SNAPPY)
        body = decompressed
    h.update(_pack_u64le(len(topic_bytes)))
    h.update(topic_bytes)
    h.update(body)
    return h.digest()[:20]


def message_id(topic: str, data: bytes) -> bytes:
    """Return op-node's 20-byte gossipsub message-id of compressed ``data`` published on ``topic``."""
    return inspect(data).message_id(topic)


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 varint (the snappy length header's encoding); tests and tools build headers with it."""
    if n < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
