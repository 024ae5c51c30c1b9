"""Test data only: op-alloy's snappy-compressed gossip messages (signature[65] ‖ [beacon root ‖] SSZ).

Source: alloy-rs/op-alloy, crates/rpc-types-engine/src/envelope.rs, tests ``decode_payload_v1`` …
``decode_payload_v4`` (hex literals; snapshot a93a08a0, see spec §8.1). Upstream asserts the
timestamps; the block hashes of v1–v3 equal the recomputed header hashes, v4's block hash is zero.
"""

from __future__ import annotations

GOSSIP_V1 = (
    "bd04f043128457c6ccf35128497167442bcc0f8cce78cda8b366e6a12e526d938d1e4c1046acffffbfc542a7e212bb7d80d3a4b2"
    "f84f7b196d935398a24eb84c519789b401000000fe0300fe0300fe0300fe0300fe0300fe0300a203000c4a8fd56621ad04fc0101"
    "067601008ce60be0005b220117c32c0f3b394b346c2aa42cfa8157cd41f891aa0bec485a62fc010000"
)
GOSSIP_V2 = (
    "c104f0433805080eb36c0b130a7cc1dc74c3f721af4e249aa6f61bb89d1557143e971bb738a3f3b98df7c457e74048e9d2d7e5cd"
    "82bb45e3760467e2270e9db86d1271a700000000fe0300fe0300fe0300fe0300fe0300fe0300a203000c6b89d46525ad00020506"
    "7201009cda69cb5b9b73fc4eb2458b37d37f04ff507fe6c9cd2ab704a05ea9dae3cd61760002000000020000"
)
GOSSIP_V3 = (
    "f104f0434442b9eb38b259f5b23826e6b623e829d2fb878dac70187a1aecf42a3f9bedfd29793d1fcb5822324be0d3e12340a958"
    "55553a65d64b83e5579dffb31470df5d010000006a03000412346a1d00fe0100fe0100fe0100fe0100fe0100fe01004201000cc5"
    "88d465219504100201067601007cfece77b89685f60e3663b6e0faf2de0734674eb91339700c4858c773a8ff921e014401043e01"
    "00"
)
GOSSIP_V4 = (
    "9105f043cee25401b6853202950d1d8a082f31a80c4fef5782c049a731f5d104b1b9b9aa7618605b420438ae98b44c8aaaebd482"
    "854473c2ae57c079286bb634bece5210000000006a03000412346a1d00fe0100fe0100fe0100fe0100fe0100fe01004201000c57"
    "66d26721950430020106f6010001440104b60100049876"
)

# version index (topic) → (compressed hex, payload timestamp, block hash carried in the payload)
GOSSIP_VECTORS: dict[int, tuple[str, int, str]] = {
    0: (GOSSIP_V1, 1725271882, "e60be0005b220117c32c0f3b394b346c2aa42cfa8157cd41f891aa0bec485a62"),
    1: (GOSSIP_V2, 1708427627, "da69cb5b9b73fc4eb2458b37d37f04ff507fe6c9cd2ab704a05ea9dae3cd6176"),
    2: (GOSSIP_V3, 1708427461, "fece77b89685f60e3663b6e0faf2de0734674eb91339700c4858c773a8ff921e"),
    3: (GOSSIP_V4, 1741842007, "00" * 32),
}
