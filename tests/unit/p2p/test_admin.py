"""p2p.admin: every opp2p_* / baton_* method against a hand-written fake node facade."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from baton.jsonrpc import INVALID_PARAMS, SERVER_ERROR, Dispatcher, Request
from p2p.admin import Connectedness, PeerInfo, PeerScores, TopicScores, node_id_of, register_admin_api
from p2p.gater import ConnectionGater
from p2p.payload import ExecutionPayload, ExecutionPayloadEnvelope, envelope_to_json
from p2p.signing import keccak256


def key_and_id(n: int) -> tuple[Any, str]:
    kp = create_new_key_pair(bytes([n]) * 32)
    return kp, ID.from_pubkey(kp.public_key).to_base58()


SELF_KP, SELF = key_and_id(9)
_, PEER_A = key_and_id(1)
_, PEER_B = key_and_id(2)
NOW = 1_700_000_000.0


def make_envelope(number: int = 1) -> ExecutionPayloadEnvelope:
    """A V4-shaped envelope (the admin API does not check hashes)."""
    payload = ExecutionPayload(
        parent_hash=b"\x01" * 32, fee_recipient=b"\x02" * 20, state_root=b"\x03" * 32,
        receipts_root=b"\x04" * 32, logs_bloom=bytes(256), prev_randao=b"\x05" * 32,
        block_number=number, gas_limit=30_000_000, gas_used=21_000, timestamp=1_750_000_000,
        extra_data=b"", base_fee_per_gas=7, block_hash=b"\x06" * 32, transactions=(b"\x02\xaa",),
        withdrawals=(), blob_gas_used=0, excess_blob_gas=0, withdrawals_root=b"\x07" * 32,
    )  # fmt: skip
    return ExecutionPayloadEnvelope(payload, parent_beacon_block_root=b"\x08" * 32)


class FakeNode:
    """Implements p2p.admin.NodeFacade with plain data; records the calls the API makes."""

    def __init__(self) -> None:
        self._gater = ConnectionGater()
        self.protected: set[str] = set()
        self.closed: list[str] = []
        self.disconnected: list[str] = []
        self.relaxed: list[str | None] = []
        self.connected_addrs: list[str] = []
        self.connect_error: Exception | None = None
        self.connect_hangs = False
        self.key = True
        self.published: list[ExecutionPayloadEnvelope] = []
        self.publish_error: Exception | None = None
        self.peers = [
            PeerInfo(
                peer_id=PEER_A,
                user_agent="optimism",
                protocol_version="",
                addresses=[f"/ip4/10.0.0.1/tcp/9222/p2p/{PEER_A}"],
                protocols=["/meshsub/1.1.0"],
                connectedness=Connectedness.CONNECTED,
                direction="outbound",
                protected=True,
                chain_id=10,
                latency=0.0025,
                gossip_blocks=True,
                scores=PeerScores(
                    total=-3.5,
                    blocks=TopicScores(time_in_mesh=12.0, first_message_deliveries=4),
                    ip_colocation_factor=1.0,
                    behavioral_penalty=0.5,
                    valid_responses=2,
                ),
            ),
            PeerInfo(peer_id=PEER_B, connectedness=Connectedness.CAN_CONNECT, direction="inbound"),
        ]

    @property
    def gater(self) -> ConnectionGater:
        return self._gater

    def self_info(self) -> PeerInfo:
        return PeerInfo(
            peer_id=SELF, user_agent="op-baton/0.1.0", latency=5.0, connectedness=Connectedness.CONNECTED
        )

    def peer_infos(self, connected_only: bool) -> list[PeerInfo]:
        if connected_only:
            return [p for p in self.peers if p.connectedness == Connectedness.CONNECTED]
        return list(self.peers)

    def connected_count(self) -> int:
        return 1

    def known_count(self) -> int:
        return 2

    def topic_peer_counts(self) -> Mapping[int, int]:
        return {0: 1, 1: 1, 3: 1}

    def protect_peer(self, peer_id: str) -> None:
        self.protected.add(peer_id)

    def unprotect_peer(self, peer_id: str) -> None:
        self.protected.discard(peer_id)

    async def connect_peer(self, addr: str) -> None:
        if self.connect_hangs:
            await trio.sleep_forever()
        if self.connect_error is not None:
            raise self.connect_error
        self.connected_addrs.append(addr)

    async def disconnect_peer(self, peer_id: str) -> None:
        self.disconnected.append(peer_id)

    async def close_peer(self, peer_id: str) -> None:
        self.closed.append(peer_id)

    def gater_relaxed(self, peer_id: str | None) -> None:
        self.relaxed.append(peer_id)

    def has_sequencer_key(self) -> bool:
        return self.key

    async def publish(self, envelope: ExecutionPayloadEnvelope) -> tuple[str, str]:
        if self.publish_error is not None:
            raise self.publish_error
        self.published.append(envelope)
        return "0x" + "ab" * 20, "/optimism/10/3/blocks"

    def recent_blocks(self, limit: int) -> list[dict[str, Any]]:
        blocks = [
            {"number": n, "hash": "0x" + bytes([n]).hex() * 32, "topic": "/optimism/10/3/blocks",
             "messageId": "0x" + "cd" * 20, "receivedAt": NOW + n, "fromPeer": PEER_A}
            for n in range(1, 6)
        ]  # fmt: skip
        return blocks[-limit:] if limit > 0 else []

    def equivocations(self) -> list[dict[str, Any]]:
        return [
            {"number": 7, "hashes": ["0x" + "01" * 32, "0x" + "02" * 32], "topic": "/optimism/10/3/blocks"}
        ]


class Api:
    def __init__(self, node: FakeNode, connect_timeout: float = 30.0) -> None:
        self.dispatcher = Dispatcher()
        self.names = register_admin_api(
            self.dispatcher, node, clock=lambda: NOW, connect_timeout=connect_timeout
        )

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        with trio.fail_after(5):
            return await self.dispatcher.call(Request(method, list(params), id=1))

    async def result(self, method: str, *params: Any) -> Any:
        resp = await self.call(method, *params)
        assert "error" not in resp, resp
        return resp["result"]

    async def error(self, method: str, *params: Any) -> dict[str, Any]:
        resp = await self.call(method, *params)
        assert "error" in resp, resp
        err: dict[str, Any] = resp["error"]
        return err


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def api(node: FakeNode) -> Api:
    return Api(node)


def test_registers_every_spec_method(api: Api) -> None:
    expected = {
        "opp2p_self", "opp2p_peers", "opp2p_peerStats", "opp2p_discoveryTable",
        "opp2p_blockPeer", "opp2p_unblockPeer", "opp2p_listBlockedPeers",
        "opp2p_blockAddr", "opp2p_unblockAddr", "opp2p_listBlockedAddrs",
        "opp2p_blockSubnet", "opp2p_unblockSubnet", "opp2p_listBlockedSubnets",
        "opp2p_protectPeer", "opp2p_unprotectPeer", "opp2p_connectPeer", "opp2p_disconnectPeer",
        "baton_publishPayload", "baton_recentBlocks", "baton_equivocations",
    }  # fmt: skip
    assert set(api.names) == expected
    assert set(api.dispatcher.methods) >= expected


async def test_self(api: Api) -> None:
    info = await api.result("opp2p_self")
    assert info["peerID"] == SELF
    assert info["gossipBlocks"] is True and info["latency"] == 0
    assert info["userAgent"] == "op-baton/0.1.0"
    # nodeID = keccak256(uncompressed pubkey without 0x04 prefix), hex without 0x (go enode.ID text form)
    uncompressed = SELF_KP.public_key.impl.format(compressed=False)[1:]
    assert info["nodeID"] == keccak256(uncompressed).hex()
    assert set(info) == {
        "peerID", "nodeID", "userAgent", "protocolVersion", "ENR", "addresses", "protocols",
        "connectedness", "direction", "protected", "chainID", "latency", "gossipBlocks", "scores",
    }  # fmt: skip


async def test_peers_dump_shape(api: Api, node: FakeNode) -> None:
    node.gater.block_peer(PEER_B)
    node.gater.ban_peer(SELF, NOW + 10)  # unexpired ban counts as banned
    node.gater.block_addr("1.2.3.4")
    node.gater.block_subnet("10.0.0.0/8")
    dump = await api.result("opp2p_peers", True)
    assert dump["totalConnected"] == 1
    assert list(dump["peers"]) == [PEER_A]
    assert sorted(dump["bannedPeers"]) == sorted([PEER_B, SELF])
    assert dump["bannedIPS"] == ["1.2.3.4"]
    assert dump["bannedSubnets"] == ["10.0.0.0/8"]
    a = dump["peers"][PEER_A]
    assert a["connectedness"] == 1 and a["direction"] == 2  # go: Connected, DirOutbound
    assert a["latency"] == 2_500_000  # ns
    assert a["chainID"] == 10 and a["protected"] is True and a["gossipBlocks"] is True
    assert a["scores"] == {
        "gossip": {
            "total": -3.5,
            "blocks": {
                "timeInMesh": 12.0,
                "firstMessageDeliveries": 4,
                "meshMessageDeliveries": 0.0,
                "invalidMessageDeliveries": 0.0,
            },
            "IPColocationFactor": 1.0,
            "behavioralPenalty": 0.5,
        },
        "reqResp": {"validResponses": 2, "errorResponses": 0.0, "rejectedPayloads": 0.0},
    }
    everything = await api.result("opp2p_peers", False)
    assert set(everything["peers"]) == {PEER_A, PEER_B}
    assert everything["peers"][PEER_B]["direction"] == 1 and everything["peers"][PEER_B]["connectedness"] == 2
    assert (await api.error("opp2p_peers", "yes"))["code"] == INVALID_PARAMS
    assert (await api.error("opp2p_peers"))["code"] == INVALID_PARAMS


async def test_peer_stats(api: Api, node: FakeNode) -> None:
    node.gater.block_peer(PEER_B)
    assert await api.result("opp2p_peerStats") == {
        "connected": 1,
        "table": 0,
        "blocksTopic": 1,
        "blocksTopicV2": 1,
        "blocksTopicV3": 0,
        "blocksTopicV4": 1,
        "banned": 1,
        "known": 2,
    }


async def test_discovery_table_is_disabled(api: Api) -> None:
    err = await api.error("opp2p_discoveryTable")
    assert err == {"code": SERVER_ERROR, "message": "discovery disabled"}


async def test_block_unblock_list_peer(api: Api, node: FakeNode) -> None:
    assert await api.result("opp2p_blockPeer", PEER_A) is None
    assert node.closed == [PEER_A]  # existing connections closed
    assert await api.result("opp2p_listBlockedPeers") == [PEER_A]
    assert not node.gater.allow_dial(PEER_A, None, NOW)
    assert node.relaxed == []
    assert await api.result("opp2p_unblockPeer", PEER_A) is None
    assert node.relaxed == [PEER_A]  # the static dialer is woken for that peer
    assert await api.result("opp2p_listBlockedPeers") == []


async def test_block_unblock_list_addr_does_not_close(api: Api, node: FakeNode) -> None:
    assert await api.result("opp2p_blockAddr", "192.0.2.1") is None
    assert await api.result("opp2p_blockAddr", "2001:db8::1") is None
    assert await api.result("opp2p_listBlockedAddrs") == ["192.0.2.1", "2001:db8::1"]
    assert node.closed == []
    assert await api.result("opp2p_unblockAddr", "192.0.2.1") is None
    assert node.relaxed == [None]  # every static peer re-checked
    assert await api.result("opp2p_listBlockedAddrs") == ["2001:db8::1"]


async def test_block_unblock_list_subnet(api: Api, node: FakeNode) -> None:
    assert await api.result("opp2p_blockSubnet", "198.51.100.7/24") is None
    assert await api.result("opp2p_listBlockedSubnets") == ["198.51.100.0/24"]
    assert not node.gater.allow_accept("198.51.100.200", NOW)
    assert await api.result("opp2p_unblockSubnet", "198.51.100.0/24") is None
    assert node.relaxed == [None]
    assert await api.result("opp2p_listBlockedSubnets") == []


@pytest.mark.parametrize(
    ("method", "arg"),
    [
        ("opp2p_blockPeer", "nonsense"),
        ("opp2p_unblockPeer", "Qm"),
        ("opp2p_protectPeer", ""),
        ("opp2p_unprotectPeer", "16Uiu2"),
        ("opp2p_disconnectPeer", "xyz"),
        ("opp2p_blockAddr", "300.1.1.1"),
        ("opp2p_unblockAddr", "10.0.0.0/8"),
        ("opp2p_blockSubnet", "10.0.0.1"),
        ("opp2p_unblockSubnet", "10.0.0.0/40"),
    ],
)
async def test_invalid_input_is_invalid_request(api: Api, node: FakeNode, method: str, arg: str) -> None:
    err = await api.error(method, arg)
    assert err["code"] == INVALID_PARAMS
    assert "invalid request" in err["message"]
    assert node.gater.list_blocked_peers() == [] and node.gater.list_blocked_addrs() == []


async def test_wrong_param_types_and_arity(api: Api) -> None:
    assert (await api.error("opp2p_blockPeer", 5))["code"] == INVALID_PARAMS
    assert (await api.error("opp2p_blockPeer"))["code"] == INVALID_PARAMS
    assert (await api.error("opp2p_self", 1))["code"] == INVALID_PARAMS


async def test_protect_unprotect(api: Api, node: FakeNode) -> None:
    assert await api.result("opp2p_protectPeer", PEER_B) is None
    assert node.protected == {PEER_B}
    assert await api.result("opp2p_unprotectPeer", PEER_B) is None
    assert node.protected == set()


async def test_connect_peer(api: Api, node: FakeNode) -> None:
    addr = f"/ip4/127.0.0.1/tcp/9222/p2p/{PEER_A}"
    assert await api.result("opp2p_connectPeer", addr) is None
    assert node.connected_addrs == [addr]
    err = await api.error("opp2p_connectPeer", "/ip4/127.0.0.1/tcp/9222")
    assert err["code"] == SERVER_ERROR and err["message"].startswith("bad peer address")
    node.connect_error = OSError("connection refused")
    err = await api.error("opp2p_connectPeer", addr)
    assert "connection refused" in err["message"]


async def test_connect_refuses_gated_peer_or_ip(api: Api, node: FakeNode) -> None:
    node.gater.block_peer(PEER_A)
    err = await api.error("opp2p_connectPeer", f"/ip4/127.0.0.1/tcp/9222/p2p/{PEER_A}")
    assert "gater" in err["message"]
    node.gater.block_addr("127.0.0.2")
    err = await api.error("opp2p_connectPeer", f"/ip4/127.0.0.2/tcp/9222/p2p/{PEER_B}")
    assert "gater" in err["message"]
    assert node.connected_addrs == []


async def test_connect_times_out() -> None:
    node = FakeNode()
    node.connect_hangs = True
    api = Api(node, connect_timeout=0.05)
    err = await api.error("opp2p_connectPeer", f"/ip4/127.0.0.1/tcp/9222/p2p/{PEER_A}")
    assert "timed out" in err["message"]


async def test_disconnect_unblocks(api: Api, node: FakeNode) -> None:
    node.gater.block_peer(PEER_A)
    node.gater.ban_peer(PEER_A, NOW + 100)
    assert await api.result("opp2p_disconnectPeer", PEER_A) is None
    assert node.disconnected == [PEER_A]
    assert node.gater.allow_dial(PEER_A, None, NOW)


async def test_publish_payload(api: Api, node: FakeNode) -> None:
    env = make_envelope()
    out = await api.result("baton_publishPayload", envelope_to_json(env))
    assert out == {"messageId": "0x" + "ab" * 20, "topic": "/optimism/10/3/blocks"}
    assert node.published == [env]


async def test_publish_payload_errors(api: Api, node: FakeNode) -> None:
    err = await api.error("baton_publishPayload", {"executionPayload": {"blockNumber": "0x1"}})
    assert err["code"] == INVALID_PARAMS
    assert (await api.error("baton_publishPayload"))["code"] == INVALID_PARAMS
    env = envelope_to_json(make_envelope(2))
    node.publish_error = RuntimeError("block refused by local validation: REJECT bad_hash")
    err = await api.error("baton_publishPayload", env)
    assert err == {"code": SERVER_ERROR, "message": "block refused by local validation: REJECT bad_hash"}
    node.key = False
    err = await api.error("baton_publishPayload", env)
    assert err == {"code": SERVER_ERROR, "message": "no sequencer key configured"}


async def test_recent_blocks(api: Api) -> None:
    blocks = await api.result("baton_recentBlocks", 2)
    assert [b["number"] for b in blocks] == [4, 5]
    assert set(blocks[0]) == {"number", "hash", "topic", "messageId", "receivedAt", "fromPeer"}
    assert len(await api.result("baton_recentBlocks")) == 5  # default limit
    assert (await api.error("baton_recentBlocks", -1))["code"] == INVALID_PARAMS
    assert (await api.error("baton_recentBlocks", "2"))["code"] == INVALID_PARAMS


async def test_equivocations(api: Api) -> None:
    assert (await api.result("baton_equivocations"))[0]["number"] == 7


def test_node_id_of_non_secp_peer_is_empty() -> None:
    assert node_id_of("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N") == ""
    assert node_id_of("garbage") == ""
