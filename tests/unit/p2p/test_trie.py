"""p2p.trie: keccak, RLP helpers and the ordered trie root against py-trie's HexaryTrie."""

from __future__ import annotations

import random
import threading

import pytest
import rlp
from eth_hash.auto import keccak as reference_keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from p2p.trie import (
    EMPTY_TRIE_ROOT,
    keccak256,
    ordered_trie_root,
    rlp_encode_bytes,
    rlp_encode_list,
    rlp_encode_uint,
    trie_node_count,
)


def reference_root(items: list[bytes]) -> bytes:
    """go-ethereum DeriveSha semantics on py-trie: key rlp(i); an empty value is not stored."""
    t = HexaryTrie({})
    with t.squash_changes() as batch:
        for i, item in enumerate(items):
            if item:
                batch[rlp.encode(i)] = item
    root: bytes = t.root_hash
    return root


def random_items(rng: random.Random, n: int, kind: str) -> list[bytes]:
    def size() -> int:
        if kind == "tiny":
            return rng.randint(1, 4)
        if kind == "small":
            return rng.randint(1, 40)
        if kind == "large":
            return rng.randint(30, 1200)
        return rng.choice((rng.randint(1, 4), rng.randint(5, 40), rng.randint(30, 700)))

    return [rng.randbytes(size()) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# keccak / RLP
# ---------------------------------------------------------------------------------------------


def test_keccak_known_vectors() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@pytest.mark.parametrize("size", [0, 1, 31, 32, 135, 136, 137, 1000, 100_000])
def test_keccak_matches_eth_hash(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert keccak256(data) == reference_keccak(data)


def test_keccak_accepts_memoryview_and_bytearray() -> None:
    data = bytes(range(256)) * 4
    assert keccak256(memoryview(data)[10:900]) == reference_keccak(data[10:900])
    assert keccak256(bytearray(data)) == reference_keccak(data)


def test_keccak_is_thread_safe() -> None:
    inputs = [random.Random(i).randbytes(300 + i) for i in range(8)]
    expected = [reference_keccak(x) for x in inputs]
    failures: list[int] = []

    def worker(k: int) -> None:
        for _ in range(2000):
            if keccak256(inputs[k]) != expected[k]:
                failures.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("value", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**64 - 1, 2**64, 2**256 - 1])
def test_rlp_uint_matches_rlp_package(value: int) -> None:
    assert rlp_encode_uint(value) == rlp.encode(value)


def test_rlp_uint_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        rlp_encode_uint(-1)


@pytest.mark.parametrize("size", [0, 1, 2, 55, 56, 255, 256, 65535, 65536, 70000])
def test_rlp_bytes_and_list_match_rlp_package(size: int) -> None:
    for data in (bytes(size), b"\xff" * size):
        assert rlp_encode_bytes(data) == rlp.encode(data)
    assert rlp_encode_bytes(b"\x7f") == b"\x7f"
    assert rlp_encode_bytes(b"\x80") == b"\x81\x80"
    items = [b"\x01" * (size // 3), b"", b"\x05"]
    assert rlp_encode_list(b"".join(rlp.encode(x) for x in items)) == rlp.encode(items)


# ---------------------------------------------------------------------------------------------
# ordered trie root
# ---------------------------------------------------------------------------------------------


def test_empty_root_constant() -> None:
    assert EMPTY_TRIE_ROOT.hex() == "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    assert ordered_trie_root([]) == EMPTY_TRIE_ROOT
    assert ordered_trie_root(()) == EMPTY_TRIE_ROOT


@pytest.mark.parametrize(
    ("items", "root"),
    [
        # Pinned values (computed with py-trie's HexaryTrie; see reference_root).
        ([b"\x01"], "ac92bc8d02906a87a573c32c72bb427036f0e43d7a7375c5c491ebba064add15"),
        ([b"\x99\x99"], None),
        ([bytes(range(100))] * 3, None),
    ],
)
def test_fixed_roots(items: list[bytes], root: str | None) -> None:
    got = ordered_trie_root(items)
    assert got == reference_root(items)
    if root is not None:
        assert got.hex() == root


def test_every_n_from_0_to_300_matches_hexary_trie() -> None:
    rng = random.Random(20240601)
    for n in range(301):
        items = random_items(rng, n, "mixed")
        assert ordered_trie_root(items) == reference_root(items), n


@pytest.mark.parametrize("kind", ["tiny", "small", "large"])
@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 127, 128, 129, 130, 200, 255, 256, 257])
def test_item_size_regimes_match_hexary_trie(kind: str, n: int) -> None:
    """Tiny items make leaves (and whole branches) shorter than 32 bytes, so they get inlined."""
    items = random_items(random.Random(f"{kind}-{n}"), n, kind)
    assert ordered_trie_root(items) == reference_root(items)


def test_keys_of_two_and_three_bytes() -> None:
    """rlp(128..255) = 0x81xx, rlp(256..999) = 0x82xxxx."""
    rng = random.Random(7)
    items = [rng.randbytes(rng.randint(1, 8)) for _ in range(1000)]
    assert ordered_trie_root(items) == reference_root(items)


def test_empty_items_are_skipped_like_geth() -> None:
    rng = random.Random(3)
    for n in (1, 2, 5, 130):
        items = random_items(rng, n, "mixed")
        for k in range(0, n, 2):
            items[k] = b""
        assert ordered_trie_root(items) == reference_root(items)
    assert ordered_trie_root([b""]) == EMPTY_TRIE_ROOT
    assert ordered_trie_root([b"", b""]) == EMPTY_TRIE_ROOT
    assert ordered_trie_root([b"a", b""]) == ordered_trie_root([b"a"])


def test_root_changes_with_any_item() -> None:
    items = random_items(random.Random(11), 50, "large")
    base = ordered_trie_root(items)
    for k in (0, 1, 49):
        changed = list(items)
        changed[k] = changed[k] + b"\x00"
        assert ordered_trie_root(changed) != base


def test_accepts_tuple_and_list() -> None:
    items = random_items(random.Random(5), 20, "mixed")
    assert ordered_trie_root(tuple(items)) == ordered_trie_root(items)


@given(st.lists(st.binary(min_size=0, max_size=80), max_size=40))
@settings(max_examples=200, deadline=None)
def test_property_matches_hexary_trie(items: list[bytes]) -> None:
    assert ordered_trie_root(items) == reference_root(items)


# ---------------------------------------------------------------------------------------------
# node count (the benchmark's "one keccak per trie node" floor)
# ---------------------------------------------------------------------------------------------


def hashed_nodes_in_hexary_trie(items: list[bytes]) -> int:
    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    with t.squash_changes() as batch:
        for i, item in enumerate(items):
            batch[rlp.encode(i)] = item
    return len(db)


@pytest.mark.parametrize("n", [1, 2, 17, 128, 200, 300])
def test_node_count_equals_hashed_nodes_of_reference(n: int) -> None:
    items = random_items(random.Random(n), n, "large")  # large random items: no duplicate nodes
    assert trie_node_count(items) == hashed_nodes_in_hexary_trie(items)


def test_node_count_small_cases() -> None:
    assert trie_node_count([]) == 1
    assert trie_node_count([b"\x01"]) == 1  # the root only (always hashed)
    assert trie_node_count([b"\x01", b"\x02"]) == 1  # tiny leaves are inlined into the root
