"""p2p.payload: SSZ codec with op-node's strictness (spec §2.3), data model checks and the JSON form."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opalloy_vectors import GOSSIP_VECTORS
from payload_factory import make_payload

from p2p.payload import (
    FIXED_PART_SIZE,
    MAX_TRANSACTIONS,
    BlockVersion,
    ExecutionPayload,
    ExecutionPayloadEnvelope,
    PayloadDecodeError,
    Withdrawal,
    decode_envelope,
    decode_payload,
    encode_envelope,
    encode_payload,
    envelope_from_json,
    envelope_to_json,
    version_for_envelope,
)

V1, V2, V3, V4 = BlockVersion.V1, BlockVersion.V2, BlockVersion.V3, BlockVersion.V4
ALL = list(BlockVersion)
VECTORS = Path(__file__).resolve().parents[2] / "vectors"

# Byte positions of the offsets in the fixed part.
EXTRA_OFFSET_AT = 436
TX_OFFSET_AT = 504
WITHDRAWALS_OFFSET_AT = 508

W = Withdrawal(index=7, validator_index=9, address=b"\x11" * 20, amount=2**64 - 1)


def payload_of(version: BlockVersion, **kw: Any) -> ExecutionPayload:
    return make_payload(version, **kw).execution_payload


def put_u32(data: bytes, at: int, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into("<I", buf, at, value)
    return bytes(buf)


def decode_error(data: bytes, version: BlockVersion, match: str) -> None:
    with pytest.raises(PayloadDecodeError, match=match):
        decode_payload(data, version)


# ---------------------------------------------------------------------------------------------
# Upstream vectors
# ---------------------------------------------------------------------------------------------


def test_v4_envelope_vector_decodes_to_listed_fields_and_reencodes_identically() -> None:
    raw = bytes.fromhex((VECTORS / "ssz_envelope_v4.hex").read_text().strip())
    expected = json.loads((VECTORS / "ssz_envelope_v4.expected.json").read_text())
    env = decode_envelope(raw, V4)
    p = env.execution_payload
    fields = expected["fields"]
    assert env.parent_beacon_block_root == bytes.fromhex(expected["parent_beacon_block_root"][2:])
    for key, attr in [
        ("parentHash", "parent_hash"),
        ("feeRecipient", "fee_recipient"),
        ("stateRoot", "state_root"),
        ("receiptsRoot", "receipts_root"),
        ("prevRandao", "prev_randao"),
        ("blockHash", "block_hash"),
        ("withdrawalsRoot", "withdrawals_root"),
        ("extraData", "extra_data"),
    ]:
        assert getattr(p, attr) == bytes.fromhex(fields[key][2:]), key
    for key, attr in [
        ("blockNumber", "block_number"),
        ("gasLimit", "gas_limit"),
        ("gasUsed", "gas_used"),
        ("timestamp", "timestamp"),
        ("baseFeePerGas", "base_fee_per_gas"),
        ("blobGasUsed", "blob_gas_used"),
        ("excessBlobGas", "excess_blob_gas"),
    ]:
        assert getattr(p, attr) == fields[key], key
    assert p.transactions == tuple(bytes.fromhex(t[2:]) for t in fields["transactions"])
    assert p.withdrawals == ()
    assert p.logs_bloom.startswith(bytes.fromhex(expected["logsBloom_first_bytes"][2:]))
    # the offsets seen in the vector: extraData 560, transactions 562, withdrawals 568
    assert struct.unpack_from("<I", raw, 32 + EXTRA_OFFSET_AT)[0] == 560
    assert struct.unpack_from("<I", raw, 32 + TX_OFFSET_AT)[0] == 562
    assert struct.unpack_from("<I", raw, 32 + WITHDRAWALS_OFFSET_AT)[0] == 568
    assert encode_envelope(env, V4) == raw
    assert envelope_from_json(envelope_to_json(env)) == env


@pytest.mark.parametrize("index", sorted(GOSSIP_VECTORS))
def test_opalloy_gossip_vectors_decode_and_reencode(index: int) -> None:
    hex_data, timestamp, block_hash = GOSSIP_VECTORS[index]
    version = BlockVersion(index)
    data = bytes(cramjam.snappy.decompress_raw(bytes.fromhex(hex_data)))
    env = decode_envelope(memoryview(data)[65:], version)
    assert env.execution_payload.timestamp == timestamp
    assert env.execution_payload.block_hash.hex() == block_hash
    assert encode_envelope(env, version) == data[65:]
    assert version_for_envelope(env) == version
    if version >= V3:
        assert env.parent_beacon_block_root == (0x1234).to_bytes(32, "big")
    if version == V4:
        assert env.execution_payload.withdrawals_root == (0x9876).to_bytes(32, "big")


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
@pytest.mark.parametrize("n_txs", [0, 1, 2, 50])
def test_roundtrip_tx_counts(version: BlockVersion, n_txs: int) -> None:
    env = make_payload(version, n_txs=n_txs, tx_size=137)
    data = encode_envelope(env, version)
    assert decode_envelope(data, version) == env
    payload_bytes = encode_payload(env.execution_payload, version)
    assert (
        len(payload_bytes) == FIXED_PART_SIZE[version] + len(env.execution_payload.extra_data) + 141 * n_txs
    )
    assert decode_payload(payload_bytes, version) == env.execution_payload


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
@pytest.mark.parametrize("extra_len", [0, 1, 9, 17, 31, 32])
def test_roundtrip_extra_data_lengths(version: BlockVersion, extra_len: int) -> None:
    p = payload_of(version, n_txs=3, extra_data=bytes(range(extra_len)))
    assert decode_payload(encode_payload(p, version), version) == p


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
@pytest.mark.parametrize("base_fee", [0, 1, 2**64 - 1, 2**64, 2**200 + 12345, 2**256 - 1])
def test_roundtrip_base_fee_full_uint256(version: BlockVersion, base_fee: int) -> None:
    p = payload_of(version, base_fee_per_gas=base_fee)
    data = encode_payload(p, version)
    assert data[440:472] == base_fee.to_bytes(32, "little")
    assert decode_payload(data, version).base_fee_per_gas == base_fee


@pytest.mark.parametrize("version", [V2, V3, V4], ids=lambda v: v.name)
@pytest.mark.parametrize("count", [0, 1, 16])
def test_roundtrip_withdrawals_are_accepted_by_the_decoder(version: BlockVersion, count: int) -> None:
    ws = tuple(dataclasses.replace(W, index=i) for i in range(count))
    p = payload_of(version, n_txs=2, withdrawals=ws)
    data = encode_payload(p, version)
    assert decode_payload(data, version).withdrawals == ws


def test_zero_length_and_trailing_empty_transactions_are_accepted() -> None:
    txs = (b"", b"\x02abc", b"", b"")
    p = payload_of(V2, transactions=txs)
    data = encode_payload(p, V2)
    assert decode_payload(data, V2).transactions == txs
    # a single empty tx: area = one offset (4) whose value equals the area size
    p1 = payload_of(V1, transactions=(b"",))
    d1 = encode_payload(p1, V1)
    assert d1[-4:] == struct.pack("<I", 4)
    assert decode_payload(d1, V1).transactions == (b"",)


def test_decode_accepts_bytes_memoryview_and_bytearray() -> None:
    env = make_payload(V3, n_txs=5)
    data = encode_envelope(env, V3)
    framed = b"\x00" * 65 + data
    assert decode_envelope(memoryview(framed)[65:], V3) == env
    assert decode_envelope(bytearray(data), V3) == env  # type: ignore[arg-type]
    assert decode_envelope(data, V3) == env


def test_encode_layout_comes_from_version_not_fields() -> None:
    """A V4 payload encoded with the V2/V3 layouts leaves out what those layouts cannot hold."""
    p = payload_of(V4, n_txs=1)
    v3 = decode_payload(encode_payload(p, V3), V3)
    assert v3.withdrawals_root is None and v3.blob_gas_used == p.blob_gas_used
    v2 = decode_payload(encode_payload(p, V2), V2)
    assert v2.blob_gas_used is None and v2.withdrawals == ()
    v1 = decode_payload(encode_payload(p, V1), V1)
    assert v1.withdrawals is None
    assert len(encode_payload(p, V1)) == len(encode_payload(p, V4)) - 52
    # an envelope root has no place on V1/V2
    env = make_payload(V4)
    assert encode_envelope(env, V2) == encode_payload(env.execution_payload, V2)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_property_roundtrip(data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(ALL))
    txs = tuple(data.draw(st.lists(st.binary(max_size=64), max_size=12)))
    extra = data.draw(st.binary(max_size=32))
    base_fee = data.draw(st.integers(min_value=0, max_value=2**256 - 1))
    p = payload_of(version, transactions=txs, extra_data=extra, base_fee_per_gas=base_fee)
    encoded = encode_payload(p, version)
    decoded = decode_payload(encoded, version)
    assert dataclasses.replace(decoded, block_hash=p.block_hash) == p
    assert encode_payload(decoded, version) == encoded


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_property_mutated_bytes_either_fail_cleanly_or_reencode_identically(data: st.DataObject) -> None:
    """Decoding is canonical: whatever decodes re-encodes to the very same bytes."""
    version = data.draw(st.sampled_from(ALL))
    base = bytearray(encode_envelope(make_payload(version, n_txs=3, tx_size=20), version))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        pos = data.draw(st.integers(min_value=0, max_value=len(base) - 1))
        base[pos] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(base)))
    mutated = bytes(base[:cut]) if data.draw(st.booleans()) else bytes(base)
    try:
        env = decode_envelope(mutated, version)
    except PayloadDecodeError:
        return
    assert encode_envelope(env, version) == mutated


# ---------------------------------------------------------------------------------------------
# Decoder errors (each branch of op-node's UnmarshalSSZ)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
def test_scope_smaller_than_fixed_part(version: BlockVersion) -> None:
    data = encode_payload(payload_of(version), version)
    assert len(data) == FIXED_PART_SIZE[version] + len(payload_of(version).extra_data)
    decode_error(data[: FIXED_PART_SIZE[version] - 1], version, "scope too small")
    decode_error(b"", version, "scope too small")


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
def test_extra_data_offset_must_equal_fixed_size(version: BlockVersion) -> None:
    data = encode_payload(payload_of(version, n_txs=1), version)
    for bad in (0, FIXED_PART_SIZE[version] - 4, FIXED_PART_SIZE[version] + 1):
        decode_error(put_u32(data, EXTRA_OFFSET_AT, bad), version, "unexpected extraData offset")


@pytest.mark.parametrize(
    ("payload_version", "topic_version"), [(V2, V1), (V2, V3), (V1, V2), (V3, V4), (V4, V3)]
)
def test_payload_of_another_version_fails_to_decode(
    payload_version: BlockVersion, topic_version: BlockVersion
) -> None:
    data = encode_payload(payload_of(payload_version, n_txs=2), payload_version)
    with pytest.raises(PayloadDecodeError):
        decode_payload(data, topic_version)


def test_envelope_of_another_version_fails_to_decode() -> None:
    env = make_payload(V3, n_txs=1)
    with pytest.raises(PayloadDecodeError):
        decode_envelope(encode_envelope(env, V3), V2)
    with pytest.raises(PayloadDecodeError):
        decode_envelope(encode_envelope(env, V2), V3)


@pytest.mark.parametrize("version", [V3, V4], ids=lambda v: v.name)
def test_envelope_needs_32_bytes_for_the_beacon_root(version: BlockVersion) -> None:
    with pytest.raises(PayloadDecodeError, match="too small for the parentBeaconBlockRoot"):
        decode_envelope(b"\x00" * 31, version)
    with pytest.raises(PayloadDecodeError, match="scope too small"):
        decode_envelope(b"\x00" * 32, version)


def test_transactions_offset_before_extra_data_offset() -> None:
    data = encode_payload(payload_of(V1, n_txs=1), V1)
    decode_error(put_u32(data, TX_OFFSET_AT, 507), V1, "smaller than extraData offset")


def test_extra_data_longer_than_32_bytes() -> None:
    p = payload_of(V1, transactions=(b"\x01" * 40,))
    data = encode_payload(p, V1)
    decode_error(put_u32(data, TX_OFFSET_AT, 508 + 33), V1, "extraData too large: 33")
    # exactly 32 is fine (the 4-byte tx offset region is then read from tx bytes: 0x01010101)
    assert (
        len(decode_payload(encode_payload(payload_of(V1, extra_data=b"\x07" * 32), V1), V1).extra_data) == 32
    )


def test_transactions_offset_beyond_scope() -> None:
    data = encode_payload(payload_of(V1, extra_data=b"\x00" * 10), V1)
    assert len(data) == 518
    decode_error(put_u32(data, TX_OFFSET_AT, 519), V1, "transactions offset 519 is beyond the payload")
    # V2: the withdrawals offset check fires first when it lies between
    d2 = encode_payload(payload_of(V2, extra_data=b"\x00" * 10), V2)
    decode_error(put_u32(d2, TX_OFFSET_AT, len(d2) + 1), V2, "withdrawals offset")


def test_withdrawals_offset_before_transactions_offset() -> None:
    data = encode_payload(payload_of(V2, n_txs=2, tx_size=10), V2)
    tx_off = struct.unpack_from("<I", data, TX_OFFSET_AT)[0]
    decode_error(put_u32(data, WITHDRAWALS_OFFSET_AT, tx_off - 1), V2, "smaller than transactions offset")


def test_withdrawals_offset_beyond_scope() -> None:
    data = encode_payload(payload_of(V3, n_txs=2, tx_size=10), V3)
    decode_error(put_u32(data, WITHDRAWALS_OFFSET_AT, len(data) + 1), V3, "withdrawals offset .* beyond")


def test_withdrawals_offset_equal_to_scope_means_no_withdrawals() -> None:
    data = encode_payload(payload_of(V2, n_txs=2, tx_size=10), V2)
    assert struct.unpack_from("<I", data, WITHDRAWALS_OFFSET_AT)[0] == len(data)
    assert decode_payload(data, V2).withdrawals == ()


@pytest.mark.parametrize("extra", [1, 43, 45])
def test_withdrawals_area_not_a_multiple_of_44(extra: int) -> None:
    data = encode_payload(payload_of(V2, withdrawals=(W,)), V2) + b"\x00" * extra
    decode_error(data, V2, "not a multiple of 44")


def test_more_than_16_withdrawals() -> None:
    ws = tuple(dataclasses.replace(W, index=i) for i in range(16))
    data = encode_payload(payload_of(V4, withdrawals=ws), V4)
    decode_error(data + data[-44:], V4, "too many withdrawals: 17 > 16")


def tx_area_payload(area: bytes, version: BlockVersion = V1) -> bytes:
    """A payload whose transactions area is exactly ``area`` (V1: runs to the end)."""
    head = encode_payload(payload_of(version), version)
    assert len(head) == FIXED_PART_SIZE[version]
    return head + area


@pytest.mark.parametrize("size", [1, 2, 3])
def test_transactions_area_too_small_for_an_offset(size: int) -> None:
    decode_error(tx_area_payload(b"\x04" * size), V1, "too small for the first tx offset")


def test_first_tx_offset_not_a_multiple_of_4() -> None:
    decode_error(tx_area_payload(struct.pack("<I", 5) + b"\x00" * 8), V1, "not a multiple of 4")


def test_first_tx_offset_beyond_area() -> None:
    decode_error(tx_area_payload(struct.pack("<II", 12, 8)), V1, "first tx offset 12 is beyond")


def test_first_tx_offset_zero_with_non_empty_area() -> None:
    decode_error(tx_area_payload(struct.pack("<I", 0) + b"\x99"), V1, "first tx offset is 0")


def test_decreasing_tx_offsets() -> None:
    area = struct.pack("<III", 12, 16, 14) + b"\x00" * 8
    decode_error(tx_area_payload(area), V1, "tx 1 has bad next offset 14")


def test_tx_offset_beyond_area() -> None:
    area = struct.pack("<II", 8, 13) + b"\x00" * 4
    decode_error(tx_area_payload(area), V1, "tx 0 has bad next offset 13")


def test_tx_offset_equal_to_area_is_allowed() -> None:
    area = struct.pack("<II", 8, 10) + b"\xaa\xbb"
    assert decode_payload(tx_area_payload(area), V1).transactions == (b"\xaa\xbb", b"")


def test_tx_errors_inside_a_v4_payload_with_withdrawals_area() -> None:
    """The transactions area ends at the withdrawals offset, not at the end of the payload."""
    data = bytearray(encode_payload(payload_of(V4, transactions=(b"\x01\x02",), withdrawals=(W,)), V4))
    tx_start = struct.unpack_from("<I", data, TX_OFFSET_AT)[0]
    struct.pack_into("<I", data, tx_start, 8)  # first offset 8 > area of 6 bytes
    decode_error(bytes(data), V4, "first tx offset 8 is beyond the transactions area \\(6 bytes\\)")


def test_more_than_max_transactions() -> None:
    count = MAX_TRANSACTIONS + 1
    area = struct.pack("<I", 4 * count) + bytes(4 * count)
    decode_error(tx_area_payload(area), V1, f"too many transactions: {count}")


def test_max_transactions_of_zero_length_are_accepted() -> None:
    count = MAX_TRANSACTIONS
    area = struct.pack(f"<{count}I", *([4 * count] * count))
    assert len(decode_payload(tx_area_payload(area), V1).transactions) == count


# ---------------------------------------------------------------------------------------------
# Encoder and data-model errors
# ---------------------------------------------------------------------------------------------


def test_encode_requires_version_fields() -> None:
    p1 = payload_of(V1)
    with pytest.raises(ValueError, match="needs withdrawals"):
        encode_payload(p1, V2)
    with pytest.raises(ValueError, match="blob_gas_used and excess_blob_gas"):
        encode_payload(payload_of(V2), V3)
    with pytest.raises(ValueError, match="withdrawals_root"):
        encode_payload(payload_of(V3), V4)
    env = make_payload(V3)
    with pytest.raises(ValueError, match="parent_beacon_block_root"):
        encode_envelope(dataclasses.replace(env, parent_beacon_block_root=None), V3)
    ws = tuple(dataclasses.replace(W, index=i) for i in range(17))
    with pytest.raises(ValueError, match="too many withdrawals"):
        encode_payload(payload_of(V2, withdrawals=ws), V2)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("parent_hash", b"\x00" * 31, "parent_hash must be 32 bytes"),
        ("fee_recipient", b"\x00" * 32, "fee_recipient must be 20 bytes"),
        ("logs_bloom", b"\x00" * 255, "logs_bloom must be 256 bytes"),
        ("block_hash", "00" * 32, "block_hash must be 32 bytes"),
        ("block_number", -1, "block_number must be a uint64"),
        ("gas_limit", 2**64, "gas_limit must be a uint64"),
        ("timestamp", True, "timestamp must be a uint64"),
        ("base_fee_per_gas", 2**256, "base_fee_per_gas must be a uint256"),
        ("extra_data", b"\x00" * 33, "extra_data must be at most 32 bytes"),
        ("transactions", [b"\x01"], "transactions must be a tuple"),
        ("withdrawals", [], "withdrawals must be a tuple"),
        ("blob_gas_used", -5, "blob_gas_used must be a uint64"),
        ("withdrawals_root", b"\x01", "withdrawals_root must be 32 bytes"),
    ],
)
def test_payload_field_validation(field: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(payload_of(V4), **{field: value})


def test_withdrawal_and_envelope_validation() -> None:
    with pytest.raises(ValueError, match="address must be 20 bytes"):
        Withdrawal(index=0, validator_index=0, address=b"\x00", amount=0)
    with pytest.raises(ValueError, match="amount must be a uint64"):
        Withdrawal(index=0, validator_index=0, address=b"\x00" * 20, amount=2**64)
    with pytest.raises(ValueError, match="parent_beacon_block_root must be 32 bytes"):
        ExecutionPayloadEnvelope(payload_of(V1), parent_beacon_block_root=b"\x00")


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
def test_version_for_envelope(version: BlockVersion) -> None:
    assert version_for_envelope(make_payload(version)) == version


def test_block_version_values_are_topic_indices() -> None:
    assert [v.value for v in BlockVersion] == [0, 1, 2, 3]
    assert FIXED_PART_SIZE == {V1: 508, V2: 512, V3: 528, V4: 560}
    assert [v.has_withdrawals for v in ALL] == [False, True, True, True]
    assert [v.has_blob_gas for v in ALL] == [False, False, True, True]
    assert [v.has_parent_beacon_block_root for v in ALL] == [False, False, True, True]
    assert [v.has_withdrawals_root for v in ALL] == [False, False, False, True]


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
def test_json_roundtrip_and_keys(version: BlockVersion) -> None:
    ws = (W,) if version.has_withdrawals else None
    env = make_payload(version, n_txs=3, tx_size=5, withdrawals=ws, base_fee_per_gas=2**70)
    obj = envelope_to_json(env)
    assert envelope_from_json(json.loads(json.dumps(obj))) == env
    p = obj["executionPayload"]
    base_keys = [
        "parentHash", "feeRecipient", "stateRoot", "receiptsRoot", "logsBloom", "prevRandao", "blockNumber",
        "gasLimit", "gasUsed", "timestamp", "extraData", "baseFeePerGas", "blockHash", "transactions",
    ]  # fmt: skip
    optional = [
        ("withdrawals", version >= V2),
        ("blobGasUsed", version >= V3),
        ("excessBlobGas", version >= V3),
        ("withdrawalsRoot", version >= V4),
    ]
    assert list(p) == base_keys + [k for k, present in optional if present]
    assert ("parentBeaconBlockRoot" in obj) == (version >= V3)
    assert p["blockNumber"] == "0x1"
    assert p["baseFeePerGas"] == hex(2**70)
    if version >= V2:
        assert p["withdrawals"] == [
            {
                "index": "0x7",
                "validatorIndex": "0x9",
                "address": "0x" + "11" * 20,
                "amount": "0xffffffffffffffff",
            }
        ]
    if version >= V3:
        assert p["blobGasUsed"] == "0x0"


def test_json_of_the_v4_vector() -> None:
    raw = bytes.fromhex((VECTORS / "ssz_envelope_v4.hex").read_text().strip())
    obj = envelope_to_json(decode_envelope(raw, V4))
    p = obj["executionPayload"]
    assert obj["parentBeaconBlockRoot"] == "0x" + "00" * 30 + "0123"
    assert p["feeRecipient"] == "0x" + "00" * 18 + "0456"
    assert (p["gasLimit"], p["extraData"], p["transactions"], p["withdrawals"]) == (
        "0x14d",
        "0x6666",
        ["0x9999"],
        [],
    )
    assert (p["blobGasUsed"], p["excessBlobGas"]) == ("0x0", "0x0")


def test_json_null_and_absent_optionals() -> None:
    obj = envelope_to_json(make_payload(V1, n_txs=1))
    p = obj["executionPayload"]
    p.update(withdrawals=None, blobGasUsed=None, excessBlobGas=None, withdrawalsRoot=None)
    obj["parentBeaconBlockRoot"] = None
    env = envelope_from_json(obj)
    assert env.parent_beacon_block_root is None and env.execution_payload.withdrawals is None
    p["transactions"] = None  # Go marshals a nil slice as null
    assert envelope_from_json(obj).execution_payload.transactions == ()


def good_json() -> dict[str, Any]:
    return envelope_to_json(make_payload(V4, n_txs=2, tx_size=4, withdrawals=(W,)))


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("parentHash",), "0x1234", "executionPayload.parentHash: expected 32 bytes, got 2"),
        (("feeRecipient",), "0x" + "00" * 32, "feeRecipient: expected 20 bytes"),
        (("logsBloom",), "0x" + "00" * 255, "logsBloom: expected 256 bytes"),
        (("stateRoot",), "00" * 32, "stateRoot: expected a 0x-prefixed hex string"),
        (("receiptsRoot",), "0x" + "zz" * 32, "receiptsRoot: invalid hex data"),
        (("prevRandao",), "0x" + "0" * 63, "prevRandao: invalid hex data"),
        # bytes.fromhex (the fast path) skips ASCII whitespace between bytes: it must still be refused
        (("extraData",), "0x00 11", "extraData: invalid hex data"),
        (("extraData",), "0x00  11", "extraData: invalid hex data"),
        (("extraData",), "0x 0011", "extraData: invalid hex data"),
        (("extraData",), "0x0011\n", "extraData: invalid hex data"),
        (("extraData",), "0x00\t1", "extraData: invalid hex data"),
        (("extraData",), "0x\u0663\u0663", "extraData: invalid hex data"),
        (("transactions",), ["0x02", "0x02 00"], r"transactions\[1\].*invalid hex data"),
        (("blockHash",), 5, "blockHash: expected a 0x-prefixed hex string"),
        (("blockNumber",), "0x01", "blockNumber: hex quantity with leading zero"),
        (("blockNumber",), "0x", "blockNumber: invalid hex quantity"),
        (("blockNumber",), 1, "blockNumber: expected a 0x-prefixed hex quantity"),
        (("gasLimit",), hex(2**64), "gasLimit: .* does not fit in 64 bits"),
        (("baseFeePerGas",), hex(2**256), "baseFeePerGas: .* does not fit in 256 bits"),
        (("extraData",), "0x" + "00" * 33, "extraData: at most 32 bytes"),
        (("transactions",), "0x00", "transactions: expected a list"),
        (("transactions",), ["0x02", "0x0g"], r"transactions\[1\]"),
        (("withdrawals",), {}, "withdrawals: expected a list or null"),
        (("withdrawals",), [5], r"withdrawals\[0\]: expected an object"),
        (("withdrawals",), [{"index": "0x1"}], r"withdrawals\[0\].validatorIndex: missing"),
        (("blobGasUsed",), "0x-1", "blobGasUsed: invalid hex quantity"),
        (("withdrawalsRoot",), "0x00", "withdrawalsRoot: expected 32 bytes"),
    ],
)
def test_json_bad_fields(path: tuple[str, ...], value: object, match: str) -> None:
    obj = good_json()
    obj["executionPayload"][path[0]] = value
    with pytest.raises(ValueError, match=match):
        envelope_from_json(obj)


@pytest.mark.parametrize("key", ["parentHash", "timestamp", "extraData", "baseFeePerGas", "blockHash"])
def test_json_missing_required_field(key: str) -> None:
    obj = good_json()
    del obj["executionPayload"][key]
    with pytest.raises(ValueError, match=f"executionPayload.{key}: missing"):
        envelope_from_json(obj)


def test_json_bad_envelope_shapes() -> None:
    with pytest.raises(ValueError, match="envelope: expected a JSON object"):
        envelope_from_json([])
    with pytest.raises(ValueError, match="executionPayload: expected a JSON object"):
        envelope_from_json({})
    obj = good_json()
    obj["parentBeaconBlockRoot"] = "0x12"
    with pytest.raises(ValueError, match="parentBeaconBlockRoot: expected 32 bytes"):
        envelope_from_json(obj)
