"""Block-hash recomputation of a gossiped payload: the only "execution" check gossip does (spec §5.3).

Rebuilds the go-ethereum header of the payload (op-node ``ExecutionPayloadEnvelope.CheckBlockHash``),
RLP-encodes it and hashes it with keccak-256. The header has 16 fields on V1, 17 on V2 (+
withdrawalsRoot), 20 on V3 (+ blobGasUsed, excessBlobGas, parentBeaconBlockRoot) and 21 on V4 (+
requestsHash = sha256("")); on V4 the withdrawalsRoot is the payload's own (Isthmus: the
L2ToL1MessagePasser storage root), on V2/V3 it is the trie root of the withdrawals list (the empty
root on OP). The transactions root is :func:`p2p.trie.ordered_trie_root` over the opaque txs.

Which fields go into the header is decided by ``version`` (the gossip topic); a field the version
needs but the envelope lacks raises ValueError (a decoded envelope always has them).

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Final

from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, Withdrawal
from p2p.trie import (
    EMPTY_TRIE_ROOT,
    keccak256,
    ordered_trie_root,
    rlp_encode_bytes,
    rlp_encode_list,
    rlp_encode_uint,
)

__all__ = [
    "EMPTY_OMMERS_HASH",
    "EMPTY_REQUESTS_HASH",
    "compute_block_hash",
    "header_rlp",
    "withdrawals_root",
]

EMPTY_OMMERS_HASH: Final[bytes] = keccak256(b"\xc0")
"""keccak256(rlp([])) = 0x1dcc4de8…9347, the ommers hash of every post-merge header."""

EMPTY_REQUESTS_HASH: Final[bytes] = hashlib.sha256(b"").digest()
"""sha256("") = 0xe3b0c442…b855, the Isthmus requestsHash (no execution-layer requests on OP)."""

_HASH: Final = b"\xa0"  # RLP prefix of a 32-byte string
_ZERO_DIFFICULTY: Final = b"\x80"
_ZERO_NONCE: Final = b"\x88" + bytes(8)
_BLOOM_PREFIX: Final = b"\xb9\x01\x00"  # RLP prefix of a 256-byte string
_ADDRESS_PREFIX: Final = b"\x94"  # RLP prefix of a 20-byte string


def _withdrawal_rlp(w: Withdrawal) -> bytes:
    return rlp_encode_list(
        rlp_encode_uint(w.index)
        + rlp_encode_uint(w.validator_index)
        + _ADDRESS_PREFIX
        + w.address
        + rlp_encode_uint(w.amount)
    )


def withdrawals_root(withdrawals: tuple[Withdrawal, ...]) -> bytes:
    """Trie root of a withdrawals list (geth ``DeriveSha`` over rlp([index, validator, address, amount]))."""
    if not withdrawals:
        return EMPTY_TRIE_ROOT
    return ordered_trie_root([_withdrawal_rlp(w) for w in withdrawals])


def header_rlp(
    env: ExecutionPayloadEnvelope, version: BlockVersion, *, transactions_root: bytes | None = None
) -> bytes:
    """RLP of the go-ethereum header that the payload of ``env`` describes, for topic ``version``.

    ``transactions_root`` overrides the root computed from the payload's transactions (for checking
    the header layout against real headers whose raw transactions are not at hand)."""
    version = BlockVersion(version)
    p = env.execution_payload
    tx_root = ordered_trie_root(p.transactions) if transactions_root is None else transactions_root
    parts = [
        _HASH + p.parent_hash,
        _HASH + EMPTY_OMMERS_HASH,
        _ADDRESS_PREFIX + p.fee_recipient,
        _HASH + p.state_root,
        _HASH + tx_root,
        _HASH + p.receipts_root,
        _BLOOM_PREFIX + p.logs_bloom,
        _ZERO_DIFFICULTY,
        rlp_encode_uint(p.block_number),
        rlp_encode_uint(p.gas_limit),
        rlp_encode_uint(p.gas_used),
        rlp_encode_uint(p.timestamp),
        rlp_encode_bytes(p.extra_data),
        _HASH + p.prev_randao,
        _ZERO_NONCE,
        rlp_encode_uint(p.base_fee_per_gas),
    ]
    if version.has_withdrawals_root:
        if p.withdrawals_root is None:
            raise ValueError(f"a {version.name} header needs the payload's withdrawals_root")
        parts.append(_HASH + p.withdrawals_root)
    elif version.has_withdrawals:
        if p.withdrawals is None:
            raise ValueError(f"a {version.name} header needs the payload's withdrawals (use () for none)")
        parts.append(_HASH + withdrawals_root(p.withdrawals))
    if version.has_blob_gas:
        if p.blob_gas_used is None or p.excess_blob_gas is None:
            raise ValueError(f"a {version.name} header needs blob_gas_used and excess_blob_gas")
        if env.parent_beacon_block_root is None:
            raise ValueError(f"a {version.name} header needs the envelope's parent_beacon_block_root")
        parts += (
            rlp_encode_uint(p.blob_gas_used),
            rlp_encode_uint(p.excess_blob_gas),
            _HASH + env.parent_beacon_block_root,
        )
    if version.has_withdrawals_root:
        parts.append(_HASH + EMPTY_REQUESTS_HASH)
    return rlp_encode_list(b"".join(parts))


def compute_block_hash(env: ExecutionPayloadEnvelope, version: BlockVersion) -> bytes:
    """keccak256 of :func:`header_rlp`: must equal the payload's ``block_hash`` for a valid block."""
    return keccak256(header_rlp(env, version))
