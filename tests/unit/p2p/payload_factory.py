"""Test helper: realistic, deterministic execution-payload envelopes with a correct block hash.

``make_payload(version, n_txs=200)`` gives a ~100 KB block shaped like a real OP block: a deposit
transaction first (type ``0x7E``), then typed (``0x02``) transactions of seeded random bytes, the
per-version fields a sequencer sets (empty withdrawals on V2+, zero blob gas and a beacon root on
V3+, a non-empty withdrawals root on V4) and ``block_hash`` = the recomputed hash. Used by the
payload/blockhash tests, the validator tests, the fuzz test and the benchmark.
Import as ``from payload_factory import make_payload`` (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import random

from p2p.blockbuilder import with_block_hash
from p2p.payload import BlockVersion, ExecutionPayload, ExecutionPayloadEnvelope, Withdrawal

__all__ = ["DEFAULT_TIMESTAMP", "make_payload", "make_transactions", "reseal"]

DEFAULT_TIMESTAMP = 1_750_000_000
_UNSET: object = object()


def make_transactions(n_txs: int, tx_size: int = 500, seed: int = 0) -> tuple[bytes, ...]:
    """n_txs opaque transactions of exactly tx_size bytes: a 0x7E deposit first, then 0x02 typed txs."""
    if tx_size < 1:
        raise ValueError("tx_size must be at least 1 (the type byte)")
    rng = random.Random(f"txs-{seed}")
    return tuple((b"\x7e" if i == 0 else b"\x02") + rng.randbytes(tx_size - 1) for i in range(n_txs))


def make_payload(
    version: BlockVersion,
    *,
    n_txs: int = 0,
    tx_size: int = 500,
    timestamp: int = DEFAULT_TIMESTAMP,
    number: int = 1,
    seed: int = 0,
    transactions: tuple[bytes, ...] | None = None,
    extra_data: bytes | None = None,
    base_fee_per_gas: int = 1_000_252,
    withdrawals: tuple[Withdrawal, ...] | object | None = _UNSET,
    blob_gas_used: int = 0,
    excess_blob_gas: int = 0,
    withdrawals_root: bytes | None = None,
    parent_beacon_block_root: bytes | None = None,
) -> ExecutionPayloadEnvelope:
    """A realistic envelope for ``version`` whose ``block_hash`` is correct for that version.

    Fields the version does not have stay None. ``transactions`` overrides the generated ones;
    ``withdrawals`` overrides the default (None on V1, () on V2+) — the hash stays consistent
    (V2/V3 hash the withdrawals trie; V4 uses ``withdrawals_root`` whatever the list holds).
    """
    version = BlockVersion(version)
    rng = random.Random(f"payload-{seed}-{number}-{version.value}")
    txs = make_transactions(n_txs, tx_size, seed) if transactions is None else transactions
    if extra_data is None:
        # Holocene-style (version 0 ‖ denominator u32 ‖ elasticity u32) from V3 on; empty before.
        extra_data = (
            b"" if version < BlockVersion.V3 else b"\x00" + (250).to_bytes(4, "big") + (6).to_bytes(4, "big")
        )
    if withdrawals is _UNSET:
        withdrawals = () if version.has_withdrawals else None
    assert withdrawals is None or isinstance(withdrawals, tuple)
    payload = ExecutionPayload(
        parent_hash=rng.randbytes(32),
        fee_recipient=bytes.fromhex("4200000000000000000000000000000000000011"),
        state_root=rng.randbytes(32),
        receipts_root=rng.randbytes(32),
        logs_bloom=rng.randbytes(256),
        prev_randao=rng.randbytes(32),
        block_number=number,
        gas_limit=30_000_000,
        gas_used=min(30_000_000, 21_000 * len(txs)),
        timestamp=timestamp,
        extra_data=extra_data,
        base_fee_per_gas=base_fee_per_gas,
        block_hash=bytes(32),
        transactions=txs,
        withdrawals=withdrawals,
        blob_gas_used=blob_gas_used if version.has_blob_gas else None,
        excess_blob_gas=excess_blob_gas if version.has_blob_gas else None,
        withdrawals_root=(
            (withdrawals_root if withdrawals_root is not None else rng.randbytes(32))
            if version.has_withdrawals_root
            else None
        ),
    )
    root = None
    if version.has_parent_beacon_block_root:
        root = parent_beacon_block_root if parent_beacon_block_root is not None else rng.randbytes(32)
    return reseal(ExecutionPayloadEnvelope(payload, parent_beacon_block_root=root), version)


# The same envelope with ``block_hash`` recomputed for ``version`` (after editing fields).
reseal = with_block_hash
