"""libp2p identity key: load/generate op-node's key file and derive the peer id.

op-node keeps its libp2p identity (secp256k1) in ``--p2p.priv.path`` (default ``opnode_p2p_priv.txt``): the
32-byte private key as hex, optional ``0x`` prefix, surrounding whitespace tolerated. If the file does not
exist a fresh key is generated and written (mode 0600), so the node keeps its peer id across restarts.
``--p2p.priv.raw`` supplies the same hex inline.

The peer id is derived exactly like go-libp2p: identity multihash (code 0x00) of the protobuf-encoded public
key ``{Type: Secp256k1(2), Data: <33-byte compressed point>}`` — py-libp2p's ``ID.from_pubkey`` does this
(inlining is enabled for keys ≤ 42 bytes; the protobuf is 37 bytes), giving ``16Uiu2…`` base58 ids.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

__all__ = [
    "DEFAULT_KEY_FILE",
    "KeyFileError",
    "generate_secret",
    "keypair_from_hex",
    "keypair_from_secret",
    "load_or_create_keypair",
    "parse_private_key_hex",
    "peer_id_of",
    "secret_of",
    "write_key_file",
]

DEFAULT_KEY_FILE = "opnode_p2p_priv.txt"

# secp256k1 group order: a private key must be in [1, n-1].
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class KeyFileError(ValueError):
    """The key file / raw key is malformed (message names the file and the problem, never the key)."""


def parse_private_key_hex(text: str, *, source: str = "private key") -> bytes:
    """Parse op-node's key text (64 hex chars, optional 0x, whitespace tolerated) into 32 bytes."""
    stripped = "".join(text.split())
    if stripped[:2] in ("0x", "0X"):
        stripped = stripped[2:]
    if not stripped:
        raise KeyFileError(f"{source}: empty")
    if not _HEX64.fullmatch(stripped):
        if len(stripped) != 64:
            raise KeyFileError(
                f"{source}: expected 32-byte hex (64 characters), got {len(stripped)} characters"
            )
        raise KeyFileError(f"{source}: not valid hex")
    secret = bytes.fromhex(stripped)
    value = int.from_bytes(secret, "big")
    if not 0 < value < _SECP256K1_N:
        raise KeyFileError(f"{source}: not a valid secp256k1 private key (out of range)")
    return secret


def generate_secret() -> bytes:
    """A fresh random, valid secp256k1 private key."""
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < _SECP256K1_N:
            return secret


def keypair_from_secret(secret: bytes) -> KeyPair:
    """py-libp2p secp256k1 ``KeyPair`` for a 32-byte private key."""
    if len(secret) != 32:
        raise KeyFileError(f"private key must be 32 bytes, got {len(secret)}")
    try:
        return create_new_key_pair(secret)
    except (ValueError, TypeError) as exc:  # coincurve rejects out-of-range secrets
        raise KeyFileError(f"not a valid secp256k1 private key: {exc}") from None


def keypair_from_hex(text: str) -> KeyPair:
    """``--p2p.priv.raw``: a KeyPair from inline hex."""
    return keypair_from_secret(parse_private_key_hex(text, source="--p2p.priv.raw"))


def secret_of(keypair: KeyPair) -> bytes:
    """The 32-byte private key of a secp256k1 KeyPair."""
    data: bytes = keypair.private_key.to_bytes()
    return data


def write_key_file(path: str | os.PathLike[str], secret: bytes) -> None:
    """Write ``secret`` as op-node-style hex (no 0x, no newline) with mode 0600, atomically.

    Refuses to overwrite an existing file (``O_EXCL``), so two racing starts cannot swap identities.
    """
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secret.hex().encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_keypair(path: str | os.PathLike[str], *, create: bool = True) -> KeyPair:
    """Load the identity from ``path``; if missing and ``create``, generate one and write it (0600).

    Raises :class:`KeyFileError` for an unreadable/malformed file (never generates over a bad file).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        if not create:
            raise KeyFileError(f"key file {p}: does not exist") from None
        secret = generate_secret()
        try:
            write_key_file(p, secret)
        except FileExistsError:  # created concurrently: use that one
            return load_or_create_keypair(p, create=False)
        except OSError as exc:
            raise KeyFileError(f"key file {p}: cannot write: {exc.strerror or exc}") from None
        return keypair_from_secret(secret)
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {p}: not valid hex") from None
    except IsADirectoryError:
        raise KeyFileError(f"key file {p}: is a directory") from None
    except OSError as exc:
        raise KeyFileError(f"key file {p}: cannot read: {exc.strerror or exc}") from None
    return keypair_from_secret(parse_private_key_hex(text, source=f"key file {p}"))


def peer_id_of(keypair: KeyPair | Any) -> ID:
    """The libp2p peer id (go-compatible identity multihash) of a KeyPair or public key."""
    public_key = keypair.public_key if isinstance(keypair, KeyPair) else keypair
    return ID.from_pubkey(public_key)
