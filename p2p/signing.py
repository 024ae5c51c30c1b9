"""Block-gossip signatures: the signing hash, signing, signer recovery and key loading.

OP Stack sequencers sign every gossiped block (spec §3):

    signing_hash = keccak256(domain[32] ‖ chain_id u256 BE ‖ keccak256(signed_bytes))

with ``domain`` = 32 zero bytes and ``signed_bytes`` = everything after the 65-byte signature in the
decompressed gossip message (V1/V2: the SSZ payload; V3/V4: ``parentBeaconBlockRoot ‖ SSZ payload``).
The signature is a plain secp256k1 recoverable ECDSA signature over that hash, ``r ‖ s ‖ v`` with
``v`` ∈ {0, 1} (go-ethereum ``crypto.Sign`` / ``SigToPub``). ``v`` = 27/28 is *not* accepted,
matching op-node.

Private keys use op-node's ``--p2p.sequencer.key`` format: 32 bytes as hex, ``0x`` optional; they can
be given inline or as the path of a file holding that hex string.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from coincurve import PrivateKey, PublicKey

from p2p.encoding import compress
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, encode_envelope
from p2p.trie import keccak256

__all__ = [
    "SIGNATURE_LENGTH",
    "SIGNING_DOMAIN_BLOCKS_V1",
    "InvalidKeyError",
    "address_of",
    "encode_gossip",
    "generate_private_key",
    "keccak256",
    "load_private_key",
    "parse_address",
    "payload_hash",
    "recover_signer",
    "sign",
    "sign_digest",
    "signed_message",
    "signing_hash",
    "signing_hash_from_payload_hash",
    "signing_hash_prefix",
]

SIGNATURE_LENGTH = 65
SIGNING_DOMAIN_BLOCKS_V1 = bytes(32)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class InvalidKeyError(ValueError):
    """A private key or address could not be parsed."""


def payload_hash(signed_bytes: bytes | bytearray | memoryview) -> bytes:
    """Return ``keccak256(signed_bytes)``: the payload hash that gets signed."""
    return keccak256(signed_bytes)


def signing_hash_prefix(chain_id: int) -> bytes:
    """The fixed first 64 bytes of every signing-hash preimage for ``chain_id``: domain ‖ chain id."""
    if chain_id < 0 or chain_id >= 1 << 256:
        raise ValueError("chain id out of uint256 range")
    return SIGNING_DOMAIN_BLOCKS_V1 + chain_id.to_bytes(32, "big")


def signing_hash_from_payload_hash(chain_id: int, payload_hash_: bytes) -> bytes:
    """Return the 32-byte signing hash for an already computed payload hash."""
    if len(payload_hash_) != 32:
        raise ValueError("payload hash must be 32 bytes")
    return keccak256(signing_hash_prefix(chain_id) + payload_hash_)


def signing_hash(chain_id: int, signed_bytes: bytes | bytearray | memoryview) -> bytes:
    """Return the signing hash of ``signed_bytes`` (the gossip data after the 65-byte signature)."""
    return signing_hash_from_payload_hash(chain_id, keccak256(signed_bytes))


def _check_private_key(priv_key: bytes) -> None:
    if len(priv_key) != 32:
        raise InvalidKeyError("private key must be 32 bytes")
    scalar = int.from_bytes(priv_key, "big")
    if not 0 < scalar < _SECP256K1_N:
        raise InvalidKeyError("private key is not a valid secp256k1 scalar")


def sign_digest(priv_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; return ``r ‖ s ‖ v`` (65 bytes, v ∈ {0,1}, RFC 6979 nonce, low s)."""
    _check_private_key(priv_key)
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    sig: bytes = PrivateKey(priv_key).sign_recoverable(digest, hasher=None)
    return sig


def sign(priv_key: bytes, chain_id: int, signed_bytes: bytes | bytearray | memoryview) -> bytes:
    """Sign gossip ``signed_bytes`` for ``chain_id``; return the 65-byte signature."""
    return sign_digest(priv_key, signing_hash(chain_id, signed_bytes))


def _make_fast_recover() -> Callable[[bytes, bytes], bytes | None] | None:
    """Signer recovery calling libsecp256k1 through coincurve's cffi handles directly.

    coincurve's ``PublicKey.from_signature_and_message`` + ``format`` add ~10 µs of Python around a
    ~40 µs C call; on the gossip reject path that overhead matters. Returns None if coincurve's
    internals are not as expected (then the public API is used).
    """
    try:
        from coincurve._libsecp256k1 import ffi, lib
        from coincurve.context import GLOBAL_CONTEXT
    except ImportError:  # pragma: no cover - depends on the coincurve build
        return None
    ctx = GLOBAL_CONTEXT.ctx
    parse = lib.secp256k1_ecdsa_recoverable_signature_parse_compact
    recover = lib.secp256k1_ecdsa_recover
    serialize = lib.secp256k1_ec_pubkey_serialize
    uncompressed = lib.SECP256K1_EC_UNCOMPRESSED
    new = ffi.new
    buffer = ffi.buffer

    def fast_recover(signature: bytes, digest: bytes) -> bytes | None:
        sig = new("secp256k1_ecdsa_recoverable_signature *")
        if not parse(ctx, sig, signature[:64], signature[64]):
            return None
        pubkey = new("secp256k1_pubkey *")
        if not recover(ctx, pubkey, sig, digest):
            return None
        out = new("unsigned char[65]")
        out_len = new("size_t *", 65)
        serialize(ctx, out, out_len, pubkey, uncompressed)
        return keccak256(buffer(out, 65)[1:])[12:]

    return fast_recover


def _slow_recover(signature: bytes, digest: bytes) -> bytes | None:  # pragma: no cover - fallback
    pub = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    return keccak256(pub.format(compressed=False)[1:])[12:]


_recover = _make_fast_recover() or _slow_recover


def recover_signer(signature: bytes | bytearray | memoryview, digest: bytes) -> bytes | None:
    """Recover the 20-byte address that produced ``signature`` over ``digest``, or None.

    None when the signature is not 65 bytes, ``v`` is not 0 or 1 (27/28 are refused, as in
    go-ethereum's ``SigToPub``), r or s is zero or not below the curve order, or recovery fails for
    any other reason. High-s signatures are accepted, as in go-ethereum.
    """
    try:
        if len(signature) != SIGNATURE_LENGTH or signature[64] > 1 or len(digest) != 32:
            return None
        return _recover(bytes(signature), bytes(digest))
    except Exception:
        return None


def address_of(priv_key: bytes) -> bytes:
    """Return the 20-byte Ethereum address of a private key."""
    _check_private_key(priv_key)
    return keccak256(PrivateKey(priv_key).public_key.format(compressed=False)[1:])[12:]


def generate_private_key() -> bytes:
    """Return a fresh random secp256k1 private key (32 bytes)."""
    while True:
        candidate = os.urandom(32)
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_N:
            return candidate


def _parse_key_hex(text: str) -> bytes:
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if len(text) != 64:
        raise InvalidKeyError("private key must be 32 bytes of hex (64 hex digits, 0x optional)")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InvalidKeyError("private key is not valid hex")
    _check_private_key(key)
    return key


def load_private_key(hex_or_path: str) -> bytes:
    """Load a private key given as hex (``0x`` optional) or as a path to a file holding that hex."""
    candidate = hex_or_path.strip()
    body = candidate[2:] if candidate[:2] in ("0x", "0X") else candidate
    if len(body) == 64 and all(c in "0123456789abcdefABCDEF" for c in body):
        return _parse_key_hex(candidate)
    path = Path(candidate)
    if not path.is_file():
        raise InvalidKeyError(f"not a 32-byte hex key and not a readable file: {candidate[:20]!r}")
    try:
        content = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidKeyError(f"cannot read key file {path}: {exc}")
    return _parse_key_hex(content)


def parse_address(text: str) -> bytes:
    """Parse a 20-byte address given as hex (``0x`` optional)."""
    body = text.strip()
    if body[:2] in ("0x", "0X"):
        body = body[2:]
    if len(body) != 40:
        raise InvalidKeyError(f"address must be 20 bytes of hex, got {text!r}")
    try:
        address = bytes.fromhex(body)
    except ValueError:
        raise InvalidKeyError(f"address is not valid hex: {text!r}")
    if len(address) != 20:  # bytes.fromhex skips embedded whitespace
        raise InvalidKeyError(f"address is not valid hex: {text!r}")
    return address


def signed_message(priv_key: bytes, chain_id: int, signed_bytes: bytes) -> bytes:
    """Return the decompressed gossip message ``signature ‖ signed_bytes``."""
    return sign(priv_key, chain_id, signed_bytes) + signed_bytes


def encode_gossip(
    envelope: ExecutionPayloadEnvelope, version: BlockVersion, priv_key: bytes, chain_id: int
) -> bytes:
    """Encode, sign and snappy-compress ``envelope`` for the ``version`` topic: the gossip ``data``."""
    return compress(signed_message(priv_key, chain_id, encode_envelope(envelope, version)))
