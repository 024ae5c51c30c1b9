"""Deterministic, realistic-looking L2 blocks for demos, tests and benchmarks.

:func:`build_envelope` makes an :class:`~p2p.payload.ExecutionPayloadEnvelope` of any topic version
with a *correct* block hash: an L1-attributes deposit transaction first (``0x7E``), then EIP-1559
transactions (``0x02``) padded with calldata to roughly ``tx_size`` bytes each, random-but-seeded
roots, and the per-version fields a real sequencer sets (empty withdrawals on V2+, zero blob gas on
V3+, a parent beacon block root on V3+, a withdrawals root on V4). Nothing here signs or touches the
network; see :func:`p2p.signing.encode_gossip` for that.
"""

from __future__ import annotations

import dataclasses
import random

import rlp

from p2p.blockhash import compute_block_hash
from p2p.payload import BlockVersion, ExecutionPayload, ExecutionPayloadEnvelope, Withdrawal

__all__ = ["DEFAULT_TIMESTAMP", "build_envelope", "deposit_tx", "eip1559_tx", "with_block_hash"]

DEFAULT_TIMESTAMP = 1_750_000_000
_DEPOSIT_TX_TYPE = 0x7E
_EIP1559_TX_TYPE = 0x02
_L1_BLOCK_ADDRESS = bytes.fromhex("4200000000000000000000000000000000000015")
_DEPOSITOR_ACCOUNT = bytes.fromhex("deaddeaddeaddeaddeaddeaddeaddeaddead0001")


def deposit_tx(rng: random.Random) -> bytes:
    """An L1-attributes deposit transaction (Ecotone-style 164-byte calldata)."""
    calldata = bytes.fromhex("440a5e20") + rng.randbytes(160)
    fields: list[object] = [
        rng.randbytes(32),  # sourceHash
        _DEPOSITOR_ACCOUNT,
        _L1_BLOCK_ADDRESS,
        0,  # mint
        0,  # value
        1_000_000,  # gas
        b"",  # isSystemTx = false
        calldata,
    ]
    encoded: bytes = rlp.encode(fields)
    return bytes((_DEPOSIT_TX_TYPE,)) + encoded


def eip1559_tx(rng: random.Random, chain_id: int, nonce: int, size: int) -> bytes:
    """An EIP-1559 transaction of about ``size`` bytes (calldata pads it; signature is random)."""
    overhead = 150
    data = rng.randbytes(max(0, size - overhead))
    fields: list[object] = [
        chain_id,
        nonce,
        1_000_000,  # maxPriorityFeePerGas
        2_000_000_000,  # maxFeePerGas
        21_000 + 16 * len(data),
        rng.randbytes(20),  # to
        rng.randrange(10**18),  # value
        data,
        [],  # accessList
        rng.randrange(2),  # yParity
        rng.randbytes(32),  # r
        rng.randbytes(32),  # s
    ]
    encoded: bytes = rlp.encode(fields)
    return bytes((_EIP1559_TX_TYPE,)) + encoded


def with_block_hash(envelope: ExecutionPayloadEnvelope, version: BlockVersion) -> ExecutionPayloadEnvelope:
    """Return ``envelope`` with its ``blockHash`` set to the hash its fields imply."""
    block_hash = compute_block_hash(envelope, version)
    payload = dataclasses.replace(envelope.execution_payload, block_hash=block_hash)
    return dataclasses.replace(envelope, execution_payload=payload)


def build_envelope(
    version: BlockVersion,
    *,
    number: int = 1,
    timestamp: int = DEFAULT_TIMESTAMP,
    n_txs: int = 1,
    tx_size: int = 500,
    seed: int = 0,
    chain_id: int = 10,
    parent_hash: bytes | None = None,
    extra_data: bytes = b"",
    gas_limit: int = 30_000_000,
    base_fee_per_gas: int = 1_000_000,
    withdrawals: tuple[Withdrawal, ...] | None = None,
    blob_gas_used: int | None = None,
    excess_blob_gas: int | None = None,
    parent_beacon_block_root: bytes | None = None,
    withdrawals_root: bytes | None = None,
    transactions: tuple[bytes, ...] | None = None,
    correct_hash: bool = True,
) -> ExecutionPayloadEnvelope:
    """Build a block of topic ``version``; identical arguments give identical blocks.

    ``n_txs`` counts all transactions (the first is the deposit); ``transactions`` overrides them.
    Version-dependent fields default to what a valid block of that version carries; pass explicit
    values to build invalid blocks. ``correct_hash=False`` leaves ``blockHash`` zero.
    """
    version = BlockVersion(version)
    rng = random.Random(f"{seed}/{number}/{int(version)}/{timestamp}")
    if transactions is None:
        txs: list[bytes] = []
        if n_txs > 0:
            txs.append(deposit_tx(rng))
        txs.extend(eip1559_tx(rng, chain_id, nonce, tx_size) for nonce in range(n_txs - 1))
        transactions = tuple(txs)
    if version >= BlockVersion.V2 and withdrawals is None:
        withdrawals = ()
    if version >= BlockVersion.V3:
        blob_gas_used = 0 if blob_gas_used is None else blob_gas_used
        excess_blob_gas = 0 if excess_blob_gas is None else excess_blob_gas
        if parent_beacon_block_root is None:
            parent_beacon_block_root = rng.randbytes(32)
    if version >= BlockVersion.V4 and withdrawals_root is None:
        withdrawals_root = rng.randbytes(32)
    gas_used = min(gas_limit, 21_000 * len(transactions) + 16 * sum(len(t) for t in transactions))
    payload = ExecutionPayload(
        parent_hash=parent_hash if parent_hash is not None else rng.randbytes(32),
        fee_recipient=bytes.fromhex("4200000000000000000000000000000000000011"),
        state_root=rng.randbytes(32),
        receipts_root=rng.randbytes(32),
        logs_bloom=bytes(256),
        prev_randao=rng.randbytes(32),
        block_number=number,
        gas_limit=gas_limit,
        gas_used=gas_used,
        timestamp=timestamp,
        extra_data=extra_data,
        base_fee_per_gas=base_fee_per_gas,
        block_hash=bytes(32),
        transactions=transactions,
        withdrawals=withdrawals,
        blob_gas_used=blob_gas_used,
        excess_blob_gas=excess_blob_gas,
        withdrawals_root=withdrawals_root,
    )
    envelope = ExecutionPayloadEnvelope(payload, parent_beacon_block_root)
    return with_block_hash(envelope, version) if correct_hash else envelope
