"""The Raft wire codec: round trips of every message, configurations and entries;
malformed input only ever raises MessageDecodeError; large payloads are fast."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    MessageDecodeError,
    PreVoteRequest,
    PreVoteResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_configuration,
    decode_entry,
    decode_message,
    encode_configuration,
    encode_entry,
    encode_entry_parts,
    encode_message,
)
from conductor.raft.types import Configuration, Entry, EntryKind, Server, Snapshot, SnapshotMeta, Suffrage

CONF = Configuration(
    (Server("n1", "10.0.0.1:50050", Suffrage.VOTER), Server("ñ2", "h:1", Suffrage.NONVOTER)), 7
)
E1 = Entry(3, 9, EntryKind.NORMAL, b"\x00payload\xff")
E2 = Entry(3, 10, EntryKind.CONFIG, encode_configuration(CONF))

SAMPLES: list[Message] = [
    PreVoteRequest("a", "b", 5, 10, 4),
    PreVoteResponse("b", "a", 5, True),
    VoteRequest("a", "b", 5, 10, 4, True),
    VoteResponse("b", "a", 5, False),
    AppendEntries("a", "b", 5, 8, 3, (E1, E2), 9),
    AppendEntries("a", "b", 5, 8, 3, (), 9),
    AppendResponse("b", "a", 5, False, 8, 6, 2),
    Heartbeat("a", "b", 5, 9, 42),
    HeartbeatResponse("b", "a", 5, 42),
    InstallSnapshot("a", "b", 5, Snapshot(SnapshotMeta(100, 4, CONF), b"snapshot-bytes")),
    InstallSnapshotResponse("b", "a", 5, 100),
    TimeoutNow("a", "b", 5),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    buf = encode_message(msg)
    assert decode_message(buf) == msg
    assert decode_message(memoryview(buf)) == msg
    assert decode_message(bytearray(buf)) == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_truncation_and_extension_is_rejected(msg: Message) -> None:
    buf = encode_message(msg)
    for n in range(len(buf)):
        with pytest.raises(MessageDecodeError):
            decode_message(buf[:n])
    with pytest.raises(MessageDecodeError, match="trailing"):
        decode_message(buf + b"\x00")


def test_entry_and_configuration_round_trip() -> None:
    assert decode_entry(encode_entry(E1)) == E1
    assert decode_configuration(encode_configuration(CONF)) == CONF
    with pytest.raises(MessageDecodeError):
        decode_entry(encode_entry(E1)[:-1])
    bad_kind = bytearray(encode_entry(E1))
    bad_kind[16] = 9
    with pytest.raises(MessageDecodeError, match="kind"):
        decode_entry(bytes(bad_kind))
    dup = Configuration((Server("x", "a", Suffrage.VOTER), Server("x", "b", Suffrage.VOTER)), 1)
    with pytest.raises(MessageDecodeError, match="duplicate"):
        decode_configuration(encode_configuration(dup))


def test_bad_version_tag_bool_and_utf8() -> None:
    buf = bytearray(encode_message(PreVoteResponse("b", "a", 5, True)))
    for pos, val, what in ((0, 2, "version"), (1, 99, "tag"), (len(buf) - 1, 2, "boolean")):
        b = bytearray(buf)
        b[pos] = val
        with pytest.raises(MessageDecodeError, match=what):
            decode_message(bytes(b))
    b = bytearray(buf)
    b[4] = 0xFF  # inside the "b" of src
    with pytest.raises(MessageDecodeError, match="utf-8"):
        decode_message(bytes(b))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    for fn in (decode_message, decode_entry, decode_configuration):
        try:
            fn(data)
        except MessageDecodeError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(min_value=0, max_value=10_000), st.integers(0, 255))
def test_mutated_messages_raise_only_decode_errors(msg: Message, pos: int, val: int) -> None:
    buf = bytearray(encode_message(msg))
    buf[pos % len(buf)] = val
    try:
        decode_message(bytes(buf))
    except MessageDecodeError:
        pass


def test_two_megabyte_entry_is_fast() -> None:
    big = AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1, EntryKind.NORMAL, b"\x5a" * (2 << 20)),), 0)
    t = time.perf_counter()
    for _ in range(10):
        assert decode_message(encode_message(big)) == big
    per = (time.perf_counter() - t) / 10
    assert per < 0.02, f"{per * 1000:.1f} ms per encode+decode"


def test_encode_entry_parts_is_the_entry_encoding_without_copying_the_data() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    e = Entry(7, 42, EntryKind.NORMAL, data)
    parts = encode_entry_parts(e)
    assert b"".join(parts) == encode_entry(e)
    assert parts[-1] is data  # the payload is passed through, not copied
    assert decode_entry(b"".join(parts)) == e
    assert encode_entry_parts(Entry(1, 1, EntryKind.NOOP, b""))[-1] == b""
