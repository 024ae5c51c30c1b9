"""p2p.blockhash: header RLP layout per version and block hashes of real blocks (spec §5.3)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import cramjam
import pytest
import rlp
from opalloy_vectors import GOSSIP_VECTORS
from payload_factory import make_payload, reseal
from trie.hexary import HexaryTrie

from p2p.blockhash import (
    EMPTY_OMMERS_HASH,
    EMPTY_REQUESTS_HASH,
    compute_block_hash,
    header_rlp,
    withdrawals_root,
)
from p2p.payload import (
    BlockVersion,
    ExecutionPayload,
    ExecutionPayloadEnvelope,
    Withdrawal,
    decode_envelope,
)
from p2p.trie import EMPTY_TRIE_ROOT, keccak256

V1, V2, V3, V4 = BlockVersion.V1, BlockVersion.V2, BlockVersion.V3, BlockVersion.V4
ALL = list(BlockVersion)


def h(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def reference_trie_root(items: list[bytes]) -> bytes:
    t = HexaryTrie({})
    for i, item in enumerate(items):
        t[rlp.encode(i)] = item
    root: bytes = t.root_hash
    return root


def reference_header(env: ExecutionPayloadEnvelope, version: BlockVersion) -> list[object]:
    """The header written independently with the `rlp` package and py-trie."""
    p = env.execution_payload
    fields: list[object] = [
        p.parent_hash,
        h("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"),
        p.fee_recipient,
        p.state_root,
        reference_trie_root(list(p.transactions)),
        p.receipts_root,
        p.logs_bloom,
        0,
        p.block_number,
        p.gas_limit,
        p.gas_used,
        p.timestamp,
        p.extra_data,
        p.prev_randao,
        b"\x00" * 8,
        p.base_fee_per_gas,
    ]
    if version == V4:
        fields.append(p.withdrawals_root)
    elif version >= V2:
        assert p.withdrawals is not None
        ws = [rlp.encode([w.index, w.validator_index, w.address, w.amount]) for w in p.withdrawals]
        fields.append(reference_trie_root(ws))
    if version >= V3:
        fields += [p.blob_gas_used, p.excess_blob_gas, env.parent_beacon_block_root]
    if version == V4:
        fields.append(hashlib.sha256(b"").digest())
    return fields


def test_constants() -> None:
    assert EMPTY_OMMERS_HASH.hex() == "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
    assert EMPTY_REQUESTS_HASH.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---------------------------------------------------------------------------------------------
# Real blocks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2])
def test_opalloy_v1_to_v3_block_hashes_are_reproduced(index: int) -> None:
    hex_data, _, block_hash = GOSSIP_VECTORS[index]
    version = BlockVersion(index)
    data = bytes(cramjam.snappy.decompress_raw(bytes.fromhex(hex_data)))
    env = decode_envelope(data[65:], version)
    assert compute_block_hash(env, version).hex() == block_hash


def test_opalloy_v4_vector_has_a_zero_hash_that_does_not_match() -> None:
    hex_data, _, block_hash = GOSSIP_VECTORS[3]
    data = bytes(cramjam.snappy.decompress_raw(bytes.fromhex(hex_data)))
    env = decode_envelope(data[65:], V4)
    assert block_hash == "00" * 32
    recomputed = compute_block_hash(env, V4)
    assert recomputed != bytes(32)
    assert recomputed == keccak256(rlp.encode(reference_header(env, V4)))


def test_v3_vector_needs_the_beacon_root_in_the_hash() -> None:
    hex_data, _, block_hash = GOSSIP_VECTORS[2]
    env = decode_envelope(bytes(cramjam.snappy.decompress_raw(bytes.fromhex(hex_data)))[65:], V3)
    other = dataclasses.replace(env, parent_beacon_block_root=bytes(32))
    assert compute_block_hash(other, V3).hex() != block_hash


def test_v4_header_layout_matches_a_real_prague_header() -> None:
    """Ethereum mainnet block 23094898 (0x1606672): a Prague header has exactly the 21 fields of an
    OP V4 header (…, withdrawalsRoot, blobGasUsed, excessBlobGas, parentBeaconBlockRoot, requestsHash
    = sha256("")). Its raw transactions are not at hand, so its transactionsRoot is passed in."""
    payload = ExecutionPayload(
        parent_hash=h("37b527c98c86436f292d4e19fac3aba6d8c7768684ea972f50adc305fd9a1475"),
        fee_recipient=h("4838b106fce9647bdf1e7877bf73ce8b0bad5f97"),
        state_root=h("5159c56472adff9a760275ac63524a71f5645ede822a5547dd9ad333586d5157"),
        receipts_root=h("2abab67c41b350435eb34f9dc0478dd7d262f35544cecf62a85af2da075bd38d"),
        logs_bloom=h(
            "bf7bf1afcf57ea95fbb5c6fd8db37db9dbffec27cfc6a39b3417e7786defd7e3d6fd577ecddd5676eee8bf79df8faddc"
            "efa7e169def77f7e7d6dbbfd1dfef9aebd9e707b4c4ed979fda2cdeeb96b3bfed5d5fabb68ff9e7f2dfb075eff643a93"
            "feebbc07877f0dff66fedf4ede0fbcfbf56f98a1626eaed77ed4e6be388f162f9b2deeff1eefa93bdacbf3fbbd7b6757"
            "cddb7ae5b3f9b7af9c3bbff7e7f6ddef9f2dff7f17997ea6867675c29fcbe6bf725efbffe1507589bfd47a3bf7b6f5dfd"
            "e50776fd94fe772d2c7b6b58baf554de55c176f27efa6fdcff7f17689bafa7f7c7bf4fd5fb9b05c2f4ed785f17ac9779"
            "feeaf1f5bbdadfc42ebad367fdcf7ad"
        ),
        prev_randao=h("7e53d2d6772895d024eb00da80213aec81fb4a15bec34a5a39403ad6162274af"),
        block_number=0x1606672,
        gas_limit=0x2ACA2C9,
        gas_used=0x1C06043,
        timestamp=0x6895A93F,
        extra_data=h("546974616e2028746974616e6275696c6465722e78797a29"),
        base_fee_per_gas=0x126F2347,
        block_hash=h("e6064637def8a5a9a90c8a666005975e4a6c46acf8af57e1f2adb20dfced133a"),
        transactions=(),
        withdrawals=(),
        blob_gas_used=0x100000,
        excess_blob_gas=0,
        withdrawals_root=h("531480435633d56a52433b33f41ac9322f51a2df3364c4c112236fc6ac583118"),
    )
    env = ExecutionPayloadEnvelope(
        payload,
        parent_beacon_block_root=h("d9ef51c8f4155f238ba66df0d35a4d0a6bb043c0dacb5c5dbd5a231bbd4c8a01"),
    )
    tx_root = h("fb0b9f5b28bc927db98d82e18070d2b17434c31bd2773c5dd699e96fa76a34cd")
    assert keccak256(header_rlp(env, V4, transactions_root=tx_root)) == payload.block_hash


# ---------------------------------------------------------------------------------------------
# Layout per version, against an independent construction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "count"), [(V1, 16), (V2, 17), (V3, 20), (V4, 21)])
def test_header_field_count(version: BlockVersion, count: int) -> None:
    fields = rlp.decode(header_rlp(make_payload(version, n_txs=2), version))
    assert len(fields) == count


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
@pytest.mark.parametrize("n_txs", [0, 1, 5, 130])
def test_header_matches_independent_rlp_construction(version: BlockVersion, n_txs: int) -> None:
    env = make_payload(version, n_txs=n_txs, tx_size=90, base_fee_per_gas=2**80 + 3)
    assert header_rlp(env, version) == rlp.encode(reference_header(env, version))
    assert compute_block_hash(env, version) == env.execution_payload.block_hash


@pytest.mark.parametrize("version", ALL, ids=lambda v: v.name)
def test_factory_payloads_carry_their_correct_hash(version: BlockVersion) -> None:
    env = make_payload(version, n_txs=200)
    assert compute_block_hash(env, version) == env.execution_payload.block_hash


@pytest.mark.parametrize("version", [V2, V3], ids=lambda v: v.name)
def test_v2_v3_withdrawals_root(version: BlockVersion) -> None:
    env = make_payload(version, n_txs=1)
    assert rlp.decode(header_rlp(env, version))[16] == EMPTY_TRIE_ROOT
    ws = tuple(
        Withdrawal(index=i, validator_index=2 * i, address=bytes([i]) * 20, amount=10**i) for i in range(3)
    )
    with_ws = reseal(
        dataclasses.replace(
            env, execution_payload=dataclasses.replace(env.execution_payload, withdrawals=ws)
        ),
        version,
    )
    assert header_rlp(with_ws, version) == rlp.encode(reference_header(with_ws, version))
    assert withdrawals_root(ws) == reference_trie_root(
        [rlp.encode([w.index, w.validator_index, w.address, w.amount]) for w in ws]
    )
    assert compute_block_hash(with_ws, version) != env.execution_payload.block_hash


def test_v4_uses_payload_withdrawals_root_verbatim() -> None:
    env = make_payload(V4, n_txs=1, withdrawals_root=b"\x42" * 32)
    fields = rlp.decode(header_rlp(env, V4))
    assert fields[16] == b"\x42" * 32
    assert fields[20] == EMPTY_REQUESTS_HASH
    # the (always empty on OP) withdrawals list does not enter a V4 header
    ws = (Withdrawal(index=1, validator_index=1, address=b"\x01" * 20, amount=1),)
    p = dataclasses.replace(env.execution_payload, withdrawals=ws)
    assert (
        compute_block_hash(dataclasses.replace(env, execution_payload=p), V4)
        == env.execution_payload.block_hash
    )


@pytest.mark.parametrize(
    "field",
    ["parent_hash", "state_root", "receipts_root", "prev_randao", "fee_recipient", "logs_bloom"],
)
def test_every_hashed_field_changes_the_hash(field: str) -> None:
    env = make_payload(V4, n_txs=2)
    p = env.execution_payload
    old: bytes = getattr(p, field)
    change: dict[str, Any] = {field: bytes(len(old))}
    changed = dataclasses.replace(env, execution_payload=dataclasses.replace(p, **change))
    assert compute_block_hash(changed, V4) != p.block_hash


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("block_number", 2),
        ("gas_limit", 1),
        ("gas_used", 1),
        ("timestamp", 5),
        ("extra_data", b"\x01"),
        ("base_fee_per_gas", 7),
        ("blob_gas_used", 1),
        ("excess_blob_gas", 1),
        ("transactions", (b"\x02\x03",)),
        ("withdrawals_root", b"\x00" * 32),
    ],
)
def test_every_hashed_scalar_changes_the_hash(field: str, value: Any) -> None:
    env = make_payload(V4, n_txs=2)
    changed = dataclasses.replace(
        env, execution_payload=dataclasses.replace(env.execution_payload, **{field: value})
    )
    assert compute_block_hash(changed, V4) != env.execution_payload.block_hash


def test_block_hash_field_itself_is_not_hashed() -> None:
    env = make_payload(V3, n_txs=1)
    changed = dataclasses.replace(
        env, execution_payload=dataclasses.replace(env.execution_payload, block_hash=bytes(32))
    )
    assert compute_block_hash(changed, V3) == env.execution_payload.block_hash


def test_missing_version_fields_raise() -> None:
    v1 = make_payload(V1)
    with pytest.raises(ValueError, match="needs the payload's withdrawals"):
        header_rlp(v1, V2)
    with pytest.raises(ValueError, match="blob_gas_used and excess_blob_gas"):
        header_rlp(make_payload(V2), V3)
    with pytest.raises(ValueError, match="parent_beacon_block_root"):
        header_rlp(dataclasses.replace(make_payload(V3), parent_beacon_block_root=None), V3)
    with pytest.raises(ValueError, match="withdrawals_root"):
        header_rlp(make_payload(V3), V4)
