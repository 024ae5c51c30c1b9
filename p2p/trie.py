"""Keccak-256, minimal RLP encoding and the ordered Merkle-Patricia trie root (go-ethereum ``DeriveSha``).

The block-hash check of a gossiped payload (spec §5.3) needs the transactions root: the root of a
Merkle-Patricia trie whose keys are ``rlp(i)`` for ``i = 0 … n-1`` and whose values are the opaque
item bytes, exactly as go-ethereum's ``types.DeriveSha`` builds it with a ``StackTrie``.

Rather than inserting keys one by one into a general trie, :func:`ordered_trie_root` sorts the
(cached, per ``n``) nibble paths of the keys and builds the trie bottom-up in one recursive pass,
so the cost is roughly one keccak per node that is 32 bytes or longer (shorter nodes are inlined
into their parent, as geth does; the root is always hashed).

Empty items are left out of the trie: geth's ``StackTrie.Update`` refuses an empty value (an
empty value means deletion) and ``DeriveSha`` ignores that error, so a zero-length item does not
contribute to the root.

Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Final

from eth_hash.auto import keccak as _eth_hash_keccak

__all__ = [
    "EMPTY_TRIE_ROOT",
    "keccak256",
    "ordered_trie_root",
    "rlp_encode_bytes",
    "rlp_encode_list",
    "rlp_encode_uint",
    "trie_node_count",
]


# ---------------------------------------------------------------------------------------------
# Keccak-256
# ---------------------------------------------------------------------------------------------


_Buffer = bytes | bytearray | memoryview


def _make_fast_keccak() -> Callable[[_Buffer], bytes] | None:
    """A keccak256 calling pycryptodome's C core through cffi directly (~3x less call overhead
    than ``Crypto.Hash.keccak.new(...).digest()``); one reusable state per thread.

    Returns None when pycryptodome does not run on its cffi backend (then eth-hash is used).
    """
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib as lib  # type: ignore[attr-defined]
        from Crypto.Util import _raw_api as raw
    except ImportError:  # pragma: no cover - pycryptodome always present (eth-hash backend)
        return None
    if getattr(raw, "backend", None) != "cffi":  # pragma: no cover - depends on the install
        return None
    ffi = raw.ffi
    init, reset, absorb, digest = lib.keccak_init, lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest
    from_buffer = ffi.from_buffer

    class _State(threading.local):
        def __init__(self) -> None:
            holder = ffi.new("void **")
            if init(holder, 64, 24):  # capacity 512 bits = keccak-256, 24 rounds
                raise RuntimeError("keccak_init failed")
            self.state = holder[0]  # lives as long as the thread; never destroyed
            self.out = ffi.new("uint8_t[32]")
            self.view = ffi.buffer(self.out)

    local = _State()

    def keccak256(data: _Buffer) -> bytes:
        st = local.state
        reset(st)
        if type(data) is bytes:
            absorb(st, data, len(data))
        else:
            absorb(st, from_buffer(data), len(data))
        digest(st, local.out, 32, 1)  # padding byte 0x01 = original Keccak (not SHA-3)
        return local.view[:]  # type: ignore[no-any-return]

    # Self-test against eth-hash before trusting the private API.
    for probe in (b"", b"abc", b"\x00" * 200):
        if keccak256(probe) != _eth_hash_keccak(probe):  # pragma: no cover - sanity guard
            return None
    return keccak256


_fast_keccak = _make_fast_keccak()


def _slow_keccak(data: _Buffer) -> bytes:  # pragma: no cover - fallback only
    return bytes(_eth_hash_keccak(bytes(data)))


keccak256: Callable[[_Buffer], bytes] = _fast_keccak if _fast_keccak is not None else _slow_keccak
"""keccak256(data) -> 32-byte digest. Accepts bytes (fastest) or any contiguous buffer."""


# ---------------------------------------------------------------------------------------------
# RLP (encode only)
# ---------------------------------------------------------------------------------------------


def _length_prefix(length: int, short_base: int) -> bytes:
    if length < 56:
        return bytes((short_base + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((short_base + 55 + len(size),)) + size


def rlp_encode_bytes(data: bytes) -> bytes:
    """RLP of a byte string."""
    n = len(data)
    if n == 1 and data[0] < 0x80:
        return data
    if n < 56:
        return bytes((0x80 + n,)) + data
    return _length_prefix(n, 0x80) + data


def rlp_encode_uint(value: int) -> bytes:
    """RLP of a non-negative integer (big-endian, minimal; zero is the empty string 0x80)."""
    if value < 0:
        raise ValueError(f"RLP cannot encode negative integer {value}")
    if value == 0:
        return b"\x80"
    if value < 0x80:
        return bytes((value,))
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes((0x80 + len(raw),)) + raw if len(raw) < 56 else _length_prefix(len(raw), 0x80) + raw


def rlp_encode_list(payload: bytes) -> bytes:
    """RLP list header + payload, where payload is the concatenation of already-encoded items."""
    return _length_prefix(len(payload), 0xC0) + payload


# ---------------------------------------------------------------------------------------------
# Ordered trie
# ---------------------------------------------------------------------------------------------

EMPTY_TRIE_ROOT: Final[bytes] = keccak256(b"\x80")
"""Root of the empty trie, keccak256(rlp(b"")) = 0x56e81f17…b421."""


def _nibbles_of_index_key(i: int) -> bytes:
    """Nibble path (one nibble per byte) of the trie key rlp(i)."""
    key = rlp_encode_uint(i)
    return bytes(b for byte in key for b in (byte >> 4, byte & 0x0F))


@functools.lru_cache(maxsize=32)
def _sorted_keys(n: int) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    """Nibble paths of rlp(0..n-1) in trie (byte-lexicographic) order, and the item index of each."""
    pairs = sorted((_nibbles_of_index_key(i), i) for i in range(n))
    return tuple(p for p, _ in pairs), tuple(i for _, i in pairs)


def _hex_prefix(nibbles: bytes, leaf: bool) -> bytes:
    """Compact (hex-prefix) encoding of a nibble path, with the leaf flag."""
    flag = 0x20 if leaf else 0x00
    n = len(nibbles)
    if n & 1:
        head = bytes((flag | 0x10 | nibbles[0],))
        start = 1
    else:
        head = bytes((flag,))
        start = 0
    if start >= n:
        return head
    return head + bytes(nibbles[j] << 4 | nibbles[j + 1] for j in range(start, n, 2))


# A "plan" is the shape of the trie for n non-empty items, which depends on n only: a node is
# either an int (position of a leaf in sorted-key order) or (extension key or None, 16 children),
# where a child is None, a leaf position or a nested node. Leaves carry their RLP'd hex-prefix key.
_Plan = tuple[bytes | None, tuple["int | _Plan | None", ...]]


def _plan_node(paths: tuple[bytes, ...], lo: int, hi: int, depth: int, leaf_keys: list[bytes]) -> int | _Plan:
    if hi - lo == 1:
        leaf_keys[lo] = rlp_encode_bytes(_hex_prefix(paths[lo][depth:], True))
        return lo
    first, last = paths[lo], paths[hi - 1]
    end = depth
    while first[end] == last[end]:  # keys are prefix-free, so this stops before either ends
        end += 1
    ext = rlp_encode_bytes(_hex_prefix(first[depth:end], False)) if end > depth else None
    children: list[int | _Plan | None] = [None] * 16
    start = lo
    nibble = first[end]
    for j in range(lo + 1, hi):
        nj = paths[j][end]
        if nj != nibble:
            children[nibble] = _plan_node(paths, start, j, end + 1, leaf_keys)
            start, nibble = j, nj
    children[nibble] = _plan_node(paths, start, hi, end + 1, leaf_keys)
    return ext, tuple(children)


@functools.lru_cache(maxsize=32)
def _plan(n: int) -> tuple[int | _Plan, tuple[bytes, ...], tuple[int, ...]]:
    """(root plan, RLP'd leaf key per sorted position, item index per sorted position) for n items."""
    paths, order = _sorted_keys(n)
    leaf_keys = [b""] * n
    root = _plan_node(paths, 0, n, 0, leaf_keys)
    return root, tuple(leaf_keys), order


def _evaluate(
    root_plan: int | _Plan, leaf_keys: Sequence[bytes], values: Sequence[bytes]
) -> tuple[bytes, int]:
    """Root hash and number of keccak calls for a plan and its values in sorted-key order: leaves in
    one flat loop, then the (few) branch/extension nodes recursively. Nodes < 32 bytes are inlined."""
    k256 = keccak256
    if type(root_plan) is int:  # a single item: the root is that leaf, hashed even if < 32 bytes
        return k256(rlp_encode_list(leaf_keys[0] + rlp_encode_bytes(values[0]))), 1
    hashed = 0
    refs: list[bytes] = []
    append = refs.append
    for key, v in zip(leaf_keys, values, strict=True):
        # RLP prefixes inlined (a helper call per leaf costs as much as the rest of the loop).
        lv = len(v)
        if lv < 56:
            vpre = b"" if lv == 1 and v[0] < 0x80 else bytes((0x80 + lv,))
        elif lv < 0x100:
            vpre = bytes((0xB8, lv))
        elif lv < 0x10000:
            vpre = bytes((0xB9, lv >> 8, lv & 0xFF))
        else:
            vpre = _length_prefix(lv, 0x80)
        size = len(key) + len(vpre) + lv
        if size < 56:
            lpre = bytes((0xC0 + size,))
        elif size < 0x100:
            lpre = bytes((0xF8, size))
        elif size < 0x10000:
            lpre = bytes((0xF9, size >> 8, size & 0xFF))
        else:
            lpre = _length_prefix(size, 0xC0)
        enc = b"".join((lpre, key, vpre, v))
        if len(enc) < 32:
            append(enc)
        else:
            hashed += 1
            append(b"\xa0" + k256(enc))

    def encode(node: _Plan) -> bytes:
        nonlocal hashed
        ext, children = node
        slots: list[bytes] = []
        for c in children:
            if c is None:
                slots.append(b"\x80")
            elif type(c) is int:
                slots.append(refs[c])
            else:
                enc = encode(c)  # type: ignore[arg-type]
                if len(enc) < 32:
                    slots.append(enc)
                else:
                    hashed += 1
                    slots.append(b"\xa0" + k256(enc))
        slots.append(b"\x80")  # value slot: always empty, keys are prefix-free
        enc = rlp_encode_list(b"".join(slots))
        if ext is None:
            return enc
        if len(enc) >= 32:
            hashed += 1
            enc = b"\xa0" + k256(enc)
        return rlp_encode_list(ext + enc)

    return k256(encode(root_plan)), hashed + 1  # type: ignore[arg-type]


def _build(items: Sequence[bytes]) -> tuple[bytes, int]:
    if all(items):  # common case: the trie shape for n items is cached
        root_plan, leaf_keys, order = _plan(len(items))
        return _evaluate(root_plan, leaf_keys, [items[i] for i in order])
    # geth skips empty values (StackTrie refuses them as deletions; DeriveSha ignores the error).
    paths, order = _sorted_keys(len(items))
    kept = [(p, items[i]) for p, i in zip(paths, order, strict=True) if items[i]]
    if not kept:
        return EMPTY_TRIE_ROOT, 0
    kept_keys = [b""] * len(kept)
    plan = _plan_node(tuple(p for p, _ in kept), 0, len(kept), 0, kept_keys)
    return _evaluate(plan, kept_keys, [v for _, v in kept])


def ordered_trie_root(items: Sequence[bytes]) -> bytes:
    """go-ethereum ``DeriveSha`` over opaque items: MPT root with key rlp(i) and value items[i]."""
    if not items:
        return EMPTY_TRIE_ROOT
    return _build(items)[0]


def trie_node_count(items: Sequence[bytes]) -> int:
    """Number of keccak computations :func:`ordered_trie_root` does for these items (hashed nodes
    plus the root), i.e. the "one keccak per trie node" part of a benchmark's primitive floor."""
    if not items:
        return 1
    return _build(items)[1]
