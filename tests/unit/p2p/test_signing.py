"""Signing hash, sign/recover round trips, key and address parsing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from coincurve import PrivateKey, PublicKey

from p2p.signing import (
    InvalidKeyError,
    address_of,
    generate_private_key,
    keccak256,
    load_private_key,
    parse_address,
    recover_signer,
    sign,
    sign_digest,
    signing_hash,
    signing_hash_from_payload_hash,
    signing_hash_prefix,
)

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
# Well-known address of that key (the first hardhat/anvil dev account).
ADDRESS = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_signing_hash_vector_from_op_alloy() -> None:
    payload_hash = keccak256(b"\x99" * 32)
    got = signing_hash_from_payload_hash(10, payload_hash)
    assert got.hex() == "44a0e2b1aba1aae1771eddae1dcd2ad18a8cdac8891517153f03253e49d3f206"


def test_signing_hash_of_bytes_hashes_them_first() -> None:
    data = b"some signed bytes"
    assert signing_hash(10, data) == signing_hash_from_payload_hash(10, keccak256(data))
    assert signing_hash(10, memoryview(data)) == signing_hash(10, data)


def test_signing_hash_prefix() -> None:
    assert signing_hash_prefix(10) == bytes(32) + (10).to_bytes(32, "big")
    with pytest.raises(ValueError):
        signing_hash_prefix(-1)


def test_signing_hash_binds_chain_id() -> None:
    assert signing_hash(10, b"x") != signing_hash(11, b"x")


def test_signing_hash_layout() -> None:
    ph = keccak256(b"p")
    assert signing_hash_from_payload_hash(420, ph) == keccak256(bytes(32) + (420).to_bytes(32, "big") + ph)


def test_keccak_known_value() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_address_of_known_key() -> None:
    assert address_of(KEY) == ADDRESS


def test_sign_recover_round_trip_v_is_parity() -> None:
    data = b"\x01" * 100
    sig = sign(KEY, 10, data)
    assert len(sig) == 65
    assert sig[64] in (0, 1)
    assert recover_signer(sig, signing_hash(10, data)) == ADDRESS


def test_sign_is_deterministic_rfc6979_and_low_s() -> None:
    digest = keccak256(b"d")
    sig = sign_digest(KEY, digest)
    assert sig == sign_digest(KEY, digest)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2


def test_sign_matches_coincurve_reference() -> None:
    digest = keccak256(b"ref")
    assert sign_digest(KEY, digest) == PrivateKey(KEY).sign_recoverable(digest, hasher=None)


def test_recover_wrong_digest_gives_other_address() -> None:
    sig = sign_digest(KEY, keccak256(b"a"))
    assert recover_signer(sig, keccak256(b"b")) not in (None, ADDRESS)


@pytest.mark.parametrize("v", [27, 28, 2, 3, 255])
def test_recover_refuses_v_other_than_0_1(v: int) -> None:
    digest = keccak256(b"v")
    sig = sign_digest(KEY, digest)
    assert recover_signer(sig[:64] + bytes((v,)), digest) is None


def test_recover_all_zero_signature_is_none() -> None:
    assert recover_signer(bytes(65), keccak256(b"z")) is None


def test_recover_r_or_s_out_of_range_is_none() -> None:
    digest = keccak256(b"r")
    sig = sign_digest(KEY, digest)
    n = SECP256K1_N.to_bytes(32, "big")
    assert recover_signer(n + sig[32:], digest) is None
    assert recover_signer(sig[:32] + n + sig[64:], digest) is None


@pytest.mark.parametrize("length", [0, 64, 66])
def test_recover_wrong_length_is_none(length: int) -> None:
    assert recover_signer(b"\x01" * length, keccak256(b"l")) is None


def test_recover_agrees_with_coincurve_public_api() -> None:
    # recover_signer talks to libsecp256k1 directly; it must agree with coincurve's own API,
    # including on signatures that do not recover.
    rng = random.Random(7)
    for i in range(200):
        digest = keccak256(i.to_bytes(4, "big"))
        sig = sign_digest(KEY, digest) if i % 2 else rng.randbytes(64) + bytes((rng.randrange(2),))
        try:
            pub = PublicKey.from_signature_and_message(sig, digest, hasher=None)
            expected: bytes | None = keccak256(pub.format(compressed=False)[1:])[12:]
        except ValueError:
            expected = None
        assert recover_signer(sig, digest) == expected
        if i % 2:
            assert expected == ADDRESS


def test_recover_rejects_wrong_digest_length() -> None:
    assert recover_signer(sign_digest(KEY, keccak256(b"x")), b"\x01" * 31) is None


def test_recover_accepts_high_s_like_go() -> None:
    # Recovery does not enforce low-s: (r, n-s, v^1) recovers the same key.
    digest = keccak256(b"m")
    sig = sign_digest(KEY, digest)
    s = int.from_bytes(sig[32:64], "big")
    malleated = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((sig[64] ^ 1,))
    assert recover_signer(malleated, digest) == ADDRESS


def test_load_private_key_hex_variants(tmp_path: Path) -> None:
    h = KEY.hex()
    assert load_private_key(h) == KEY
    assert load_private_key("0x" + h) == KEY
    assert load_private_key(" 0x" + h.upper() + "\n") == KEY
    f = tmp_path / "key.txt"
    f.write_text("0x" + h + "\n")
    assert load_private_key(str(f)) == KEY


@pytest.mark.parametrize("bad", ["", "0x1234", "zz" * 32, "00" * 32, "ff" * 32, "/nonexistent/key"])
def test_load_private_key_rejects(bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        load_private_key(bad)


def test_load_private_key_bad_file_content(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_text("not a key")
    with pytest.raises(InvalidKeyError):
        load_private_key(str(f))


def test_generate_private_key_is_usable() -> None:
    key = generate_private_key()
    assert len(key) == 32
    assert len(address_of(key)) == 20
    assert generate_private_key() != key


def test_parse_address() -> None:
    assert parse_address("0x" + ADDRESS.hex()) == ADDRESS
    assert parse_address(ADDRESS.hex().upper()) == ADDRESS
    # 40 characters with embedded spaces: bytes.fromhex would skip them and yield 19 bytes
    spaced = "0x" + ADDRESS.hex()[:18] + "  " + ADDRESS.hex()[20:]
    for bad in ("0x12", "0x" + "zz" * 20, spaced):
        with pytest.raises(InvalidKeyError):
            parse_address(bad)
