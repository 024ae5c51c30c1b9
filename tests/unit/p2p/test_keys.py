"""p2p.keys: op-node key file format, generation (0600), stable go-style peer ids."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import base58
import coincurve
import pytest
from libp2p.crypto.secp256k1 import Secp256k1PublicKey

from p2p.keys import (
    KeyFileError,
    keypair_from_hex,
    load_or_create_keypair,
    parse_private_key_hex,
    peer_id_of,
    secret_of,
)

SECRET_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"

# Public vector (fetch.ai AEA docs, "bootstrap_peer"): compressed secp256k1 pubkey → libp2p peer id.
VECTOR_PUBKEY = "02d9383bc6e37e4d6b56cecb93c1e2796407c07decaa3ae598b6f762946a464353"
VECTOR_PEER_ID = "16Uiu2HAmA3cBbvMtLjqnkmoLBFuzmsVYnGfNLvr5Ws3Ey7JeRFAa"


def go_style_peer_id(secret: bytes) -> str:
    """Independent derivation: identity multihash of protobuf PublicKey{Type: Secp256k1, Data: 33 bytes}."""
    compressed = coincurve.PublicKey.from_secret(secret).format(compressed=True)
    proto = b"\x08\x02" + b"\x12" + bytes([len(compressed)]) + compressed  # field 1 varint 2, field 2 bytes
    return base58.b58encode(b"\x00" + bytes([len(proto)]) + proto).decode()


def test_known_public_vector() -> None:
    pub = Secp256k1PublicKey.from_bytes(bytes.fromhex(VECTOR_PUBKEY))
    assert peer_id_of(pub).to_base58() == VECTOR_PEER_ID


def test_peer_id_matches_go_derivation() -> None:
    kp = keypair_from_hex(SECRET_HEX)
    pid = peer_id_of(kp).to_base58()
    assert pid == go_style_peer_id(bytes.fromhex(SECRET_HEX))
    assert pid.startswith("16Uiu2")


@pytest.mark.parametrize(
    "text",
    [
        SECRET_HEX,
        "0x" + SECRET_HEX,
        "  0X" + SECRET_HEX.upper() + "\n",
        SECRET_HEX[:30] + "\n" + SECRET_HEX[30:],
    ],
)
def test_parse_tolerates_prefix_case_and_whitespace(text: str) -> None:
    assert parse_private_key_hex(text) == bytes.fromhex(SECRET_HEX)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("0x", "empty"),
        (SECRET_HEX[:-2], "64 characters"),
        (SECRET_HEX + "00", "64 characters"),
        ("zz" + SECRET_HEX[2:], "not valid hex"),
        ("00" * 32, "out of range"),
        ("ff" * 32, "out of range"),
    ],
)
def test_parse_rejects_bad_keys(text: str, problem: str) -> None:
    with pytest.raises(KeyFileError, match=problem):
        parse_private_key_hex(text)


def test_generate_write_and_reload_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "opnode_p2p_priv.txt"
    first = load_or_create_keypair(path)
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert len(text) == 64 and bytes.fromhex(text) == secret_of(first)  # op-node format: bare hex
    second = load_or_create_keypair(path)
    assert peer_id_of(second) == peer_id_of(first)
    assert path.read_text() == text  # not rewritten


def test_existing_op_node_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("0x" + SECRET_HEX + "\n")
    kp = load_or_create_keypair(path)
    assert secret_of(kp).hex() == SECRET_HEX
    assert peer_id_of(kp).to_base58() == go_style_peer_id(bytes.fromhex(SECRET_HEX))


def test_bad_file_is_an_error_not_regenerated(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("not a key")
    with pytest.raises(KeyFileError, match=str(path)):
        load_or_create_keypair(path)
    assert path.read_text() == "not a key"


def test_missing_without_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_or_create_keypair(tmp_path / "nope.txt", create=False)


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory"):
        load_or_create_keypair(tmp_path)


def test_error_never_leaks_key_material(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text(SECRET_HEX + "0")
    with pytest.raises(KeyFileError) as info:
        load_or_create_keypair(path)
    assert SECRET_HEX[:16] not in str(info.value)
