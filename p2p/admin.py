"""The ``opp2p_*`` admin JSON-RPC API (op-node's P2P RPC, spec §7.4) plus ``baton_*`` gossip helpers.

:func:`register_admin_api` registers every method on a :class:`baton.jsonrpc.Dispatcher`; the node supplies a
:class:`NodeFacade` (what the API needs from it) and this module shapes op-node's JSON:

* ``PeerInfo``  — ``peerID, nodeID, userAgent, protocolVersion, ENR, addresses, protocols, connectedness,
  direction, protected, chainID, latency (ns), gossipBlocks, scores{gossip{total, blocks{timeInMesh,
  firstMessageDeliveries, meshMessageDeliveries, invalidMessageDeliveries}, IPColocationFactor,
  behavioralPenalty}, reqResp{validResponses, errorResponses, rejectedPayloads}}``; ``connectedness`` and
  ``direction`` are go-libp2p's integers (NotConnected 0, Connected 1, CanConnect 2, CannotConnect 3,
  Limited 4; Unknown 0, Inbound 1, Outbound 2); ``nodeID`` = keccak256(uncompressed secp256k1 pubkey) hex.
* ``PeerDump``  — ``totalConnected, peers{id → PeerInfo}, bannedPeers, bannedIPS, bannedSubnets``.
* ``PeerStats`` — ``connected, table, blocksTopic, blocksTopicV2, blocksTopicV3, blocksTopicV4, banned,
  known``.

Differences from op-node, on purpose: ``opp2p_blockPeer`` also closes the peer's connections (op-node's
basic gater leaves them open); ``bannedPeers``/``banned`` count manual blocks *and* unexpired score bans;
empty lists are ``[]`` not ``null``. ``opp2p_discoveryTable`` answers op-node's "discovery disabled" error
(no discv5 here). Bad peer ids / IPs / subnets give -32602 with an ``invalid request: …`` message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from baton.jsonrpc import Dispatcher, InvalidParams, Params, ServerError
from baton.params import check_arity, param_bool, param_int, param_optional, param_str
from p2p.gater import ConnectionGater, parse_ip, parse_peer_id, parse_subnet
from p2p.payload import ExecutionPayloadEnvelope, envelope_from_json

__all__ = [
    "CONNECT_TIMEOUT",
    "Connectedness",
    "NodeFacade",
    "PeerInfo",
    "PeerScores",
    "TopicScores",
    "node_id_of",
    "peer_dump",
    "peer_stats",
    "register_admin_api",
]

CONNECT_TIMEOUT = 30.0
ERR_DISCOVERY_DISABLED = "discovery disabled"
ERR_NO_SEQUENCER_KEY = "no sequencer key configured"
DEFAULT_RECENT_LIMIT = 100
MAX_RECENT_LIMIT = 10_000


class Connectedness:
    """go-libp2p ``network.Connectedness`` values (JSON numbers)."""

    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3
    LIMITED = 4


_DIRECTION = {"unknown": 0, "inbound": 1, "outbound": 2}


@dataclass(slots=True)
class TopicScores:
    time_in_mesh: float = 0.0  # seconds (max over the block topics)
    first_message_deliveries: float = 0.0
    mesh_message_deliveries: float = 0.0
    invalid_message_deliveries: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "timeInMesh": self.time_in_mesh,
            "firstMessageDeliveries": self.first_message_deliveries,
            "meshMessageDeliveries": self.mesh_message_deliveries,
            "invalidMessageDeliveries": self.invalid_message_deliveries,
        }


@dataclass(slots=True)
class PeerScores:
    total: float = 0.0
    blocks: TopicScores = field(default_factory=TopicScores)
    ip_colocation_factor: float = 0.0
    behavioral_penalty: float = 0.0
    valid_responses: float = 0.0
    error_responses: float = 0.0
    rejected_payloads: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "gossip": {
                "total": self.total,
                "blocks": self.blocks.to_json(),
                "IPColocationFactor": self.ip_colocation_factor,
                "behavioralPenalty": self.behavioral_penalty,
            },
            "reqResp": {
                "validResponses": self.valid_responses,
                "errorResponses": self.error_responses,
                "rejectedPayloads": self.rejected_payloads,
            },
        }


@dataclass(slots=True)
class PeerInfo:
    """One peer as the node knows it; :meth:`to_json` is op-node's ``PeerInfo``."""

    peer_id: str
    node_id: str = ""  # computed from the peer id when empty
    user_agent: str = ""
    protocol_version: str = ""
    enr: str = ""
    addresses: list[str] = field(default_factory=list)  # with /p2p/<id>
    protocols: list[str] = field(default_factory=list)
    connectedness: int = Connectedness.NOT_CONNECTED
    direction: str = "unknown"  # "inbound" | "outbound" | "unknown"
    protected: bool = False
    chain_id: int = 0
    latency: float = 0.0  # seconds
    gossip_blocks: bool = False
    scores: PeerScores = field(default_factory=PeerScores)

    def to_json(self) -> dict[str, Any]:
        return {
            "peerID": self.peer_id,
            "nodeID": self.node_id or node_id_of(self.peer_id),
            "userAgent": self.user_agent,
            "protocolVersion": self.protocol_version,
            "ENR": self.enr,
            "addresses": list(self.addresses),
            "protocols": list(self.protocols),
            "connectedness": int(self.connectedness),
            "direction": _DIRECTION.get(self.direction, 0),
            "protected": self.protected,
            "chainID": self.chain_id,
            "latency": round(self.latency * 1e9),
            "gossipBlocks": self.gossip_blocks,
            "scores": self.scores.to_json(),
        }


class NodeFacade(Protocol):
    """What the admin API needs from the gossip node (implemented by the node, faked in tests)."""

    @property
    def gater(self) -> ConnectionGater: ...

    def self_info(self) -> PeerInfo:
        """The local node (gossipBlocks true, latency 0)."""
        ...

    def peer_infos(self, connected_only: bool) -> list[PeerInfo]:
        """Connected peers (``True``) or every peer in the peerstore (``False``)."""
        ...

    def connected_count(self) -> int: ...

    def known_count(self) -> int:
        """Peers in the peerstore."""
        ...

    def topic_peer_counts(self) -> Mapping[int, int]:
        """Peers subscribed to each block topic, keyed by topic version index 0..3 (V1..V4)."""
        ...

    def protect_peer(self, peer_id: str) -> None: ...

    def unprotect_peer(self, peer_id: str) -> None: ...

    async def connect_peer(self, addr: str) -> None:
        """Dial ``addr`` (multiaddr with /p2p/<id>) and wait until connected; raise on failure."""
        ...

    async def disconnect_peer(self, peer_id: str) -> None:
        """Close the peer's connections and forget it (peerstore entry and addresses)."""
        ...

    async def close_peer(self, peer_id: str) -> None:
        """Close the peer's connections (after a block)."""
        ...

    def gater_relaxed(self, peer_id: str | None) -> None:
        """A block was lifted (``peer_id``, or ``None`` after an IP/subnet unblock): re-dial affected
        static peers now instead of at their next poll."""
        ...

    def has_sequencer_key(self) -> bool: ...

    async def publish(self, envelope: ExecutionPayloadEnvelope) -> tuple[str, str]:
        """Sign + publish; returns ``(message id "0x…", topic)``; raises on refusal."""
        ...

    def recent_blocks(self, limit: int) -> list[dict[str, Any]]:
        """``[{number, hash, topic, messageId, receivedAt, fromPeer}]``, oldest first."""
        ...

    def equivocations(self) -> list[dict[str, Any]]: ...


# ---------------------------------------------------------------------------------------------- helpers


def node_id_of(peer_id: str) -> str:
    """discv5 node id (keccak256 of the 64-byte uncompressed pubkey, hex, no 0x) of a secp256k1 peer id;
    ``""`` when the id does not embed a secp256k1 key (op-node leaves it zero when it has no pubkey)."""
    try:
        raw = parse_peer_id(peer_id).to_bytes()
    except ValueError:
        return ""
    # identity multihash of protobuf PublicKey{Type=Secp256k1(2), Data=33 bytes}: 00 25 08 02 12 21 <33>
    if len(raw) != 39 or raw[:6] != b"\x00\x25\x08\x02\x12\x21":
        return ""
    try:
        import coincurve

        from p2p.signing import keccak256

        point = coincurve.PublicKey(raw[6:]).format(compressed=False)[1:]
    except Exception:
        return ""
    return keccak256(point).hex()


def _banned_peers(gater: ConnectionGater, now: float) -> list[str]:
    return sorted(set(gater.list_blocked_peers()) | set(gater.banned_peers(now)))


def _banned_ips(gater: ConnectionGater, now: float) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(gater.list_blocked_addrs())
    seen.update(dict.fromkeys(gater.banned_addrs(now)))
    return list(seen)


def peer_dump(facade: NodeFacade, connected_only: bool, now: float) -> dict[str, Any]:
    peers: dict[str, Any] = {}
    total = 0
    for info in facade.peer_infos(connected_only):
        peers[info.peer_id] = info.to_json()
        if info.connectedness == Connectedness.CONNECTED:
            total += 1
    gater = facade.gater
    return {
        "totalConnected": total,
        "peers": peers,
        "bannedPeers": _banned_peers(gater, now),
        "bannedIPS": _banned_ips(gater, now),
        "bannedSubnets": gater.list_blocked_subnets(),
    }


def peer_stats(facade: NodeFacade, now: float) -> dict[str, Any]:
    counts = facade.topic_peer_counts()
    return {
        "connected": facade.connected_count(),
        "table": 0,  # no discv5 table
        "blocksTopic": int(counts.get(0, 0)),
        "blocksTopicV2": int(counts.get(1, 0)),
        "blocksTopicV3": int(counts.get(2, 0)),
        "blocksTopicV4": int(counts.get(3, 0)),
        "banned": len(_banned_peers(facade.gater, now)),
        "known": facade.known_count(),
    }


def _peer_arg(params: Params, i: int = 0) -> str:
    value = param_str(params, i, "peerID")
    try:
        return parse_peer_id(value).to_base58()
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


def _checked(fn: Callable[[Any], Any], value: Any) -> Any:
    try:
        return fn(value)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


# ---------------------------------------------------------------------------------------------- API


def register_admin_api(
    dispatcher: Dispatcher,
    facade: NodeFacade,
    *,
    clock: Callable[[], float] = time.time,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> list[str]:
    """Register ``opp2p_*`` and ``baton_publishPayload/recentBlocks/equivocations``; returns the names."""
    handlers: dict[str, Callable[[Params], Awaitable[Any]]] = {}

    def method(
        name: str,
    ) -> Callable[[Callable[[Params], Awaitable[Any]]], Callable[[Params], Awaitable[Any]]]:
        def deco(fn: Callable[[Params], Awaitable[Any]]) -> Callable[[Params], Awaitable[Any]]:
            handlers[name] = fn
            return fn

        return deco

    @method("opp2p_self")
    async def self_(params: Params) -> Any:
        check_arity(params, 0)
        info = facade.self_info()
        info.gossip_blocks = True
        info.latency = 0.0
        return info.to_json()

    @method("opp2p_peers")
    async def peers(params: Params) -> Any:
        check_arity(params, 1)
        return peer_dump(facade, param_bool(params, 0, "connected"), clock())

    @method("opp2p_peerStats")
    async def peer_stats_(params: Params) -> Any:
        check_arity(params, 0)
        return peer_stats(facade, clock())

    @method("opp2p_discoveryTable")
    async def discovery_table(params: Params) -> Any:
        check_arity(params, 0)
        raise ServerError(ERR_DISCOVERY_DISABLED)

    @method("opp2p_blockPeer")
    async def block_peer(params: Params) -> Any:
        check_arity(params, 1)
        pid = _peer_arg(params)
        facade.gater.block_peer(pid)
        await facade.close_peer(pid)
        return None

    @method("opp2p_unblockPeer")
    async def unblock_peer(params: Params) -> Any:
        check_arity(params, 1)
        pid = _peer_arg(params)
        facade.gater.unblock_peer(pid)
        facade.gater_relaxed(pid)
        return None

    @method("opp2p_listBlockedPeers")
    async def list_blocked_peers(params: Params) -> Any:
        check_arity(params, 0)
        return facade.gater.list_blocked_peers()

    @method("opp2p_blockAddr")
    async def block_addr(params: Params) -> Any:
        check_arity(params, 1)
        facade.gater.block_addr(_checked(parse_ip, param_str(params, 0, "ip")))
        return None  # like op-node: existing connections are not closed

    @method("opp2p_unblockAddr")
    async def unblock_addr(params: Params) -> Any:
        check_arity(params, 1)
        facade.gater.unblock_addr(_checked(parse_ip, param_str(params, 0, "ip")))
        facade.gater_relaxed(None)
        return None

    @method("opp2p_listBlockedAddrs")
    async def list_blocked_addrs(params: Params) -> Any:
        check_arity(params, 0)
        return facade.gater.list_blocked_addrs()

    @method("opp2p_blockSubnet")
    async def block_subnet(params: Params) -> Any:
        check_arity(params, 1)
        facade.gater.block_subnet(_checked(parse_subnet, param_str(params, 0, "subnet")))
        return None

    @method("opp2p_unblockSubnet")
    async def unblock_subnet(params: Params) -> Any:
        check_arity(params, 1)
        facade.gater.unblock_subnet(_checked(parse_subnet, param_str(params, 0, "subnet")))
        facade.gater_relaxed(None)
        return None

    @method("opp2p_listBlockedSubnets")
    async def list_blocked_subnets(params: Params) -> Any:
        check_arity(params, 0)
        return facade.gater.list_blocked_subnets()

    @method("opp2p_protectPeer")
    async def protect_peer(params: Params) -> Any:
        check_arity(params, 1)
        facade.protect_peer(_peer_arg(params))
        return None

    @method("opp2p_unprotectPeer")
    async def unprotect_peer(params: Params) -> Any:
        check_arity(params, 1)
        facade.unprotect_peer(_peer_arg(params))
        return None

    @method("opp2p_connectPeer")
    async def connect_peer(params: Params) -> Any:
        check_arity(params, 1)
        addr = param_str(params, 0, "addr")
        from p2p.peers import StaticPeerConfigError, parse_peer_multiaddr

        try:
            target = parse_peer_multiaddr(addr)
        except StaticPeerConfigError as exc:
            raise ServerError(f"bad peer address: {exc}") from None
        if not facade.gater.allow_dial(target.peer_id, target.ip, clock()):
            raise ServerError("failed to dial: gater disallows connection to peer")
        with trio.move_on_after(connect_timeout) as scope:
            try:
                await facade.connect_peer(addr)
            except Exception as exc:
                raise ServerError(f"failed to dial: {exc}") from None
        if scope.cancelled_caught:
            raise ServerError(f"failed to dial: timed out after {connect_timeout:g}s")
        return None

    @method("opp2p_disconnectPeer")
    async def disconnect_peer(params: Params) -> Any:
        check_arity(params, 1)
        pid = _peer_arg(params)
        await facade.disconnect_peer(pid)
        facade.gater.unblock_peer(pid)
        return None

    @method("baton_publishPayload")
    async def publish_payload(params: Params) -> Any:
        check_arity(params, 1)
        args = list(params) if isinstance(params, list) else []
        if not args or args[0] is None:
            raise InvalidParams("missing value for required argument 0")
        try:
            envelope = envelope_from_json(args[0])
        except ValueError as exc:
            raise InvalidParams(f"invalid argument 0 (envelope): {exc}") from None
        if not facade.has_sequencer_key():
            raise ServerError(ERR_NO_SEQUENCER_KEY)
        try:
            message_id, topic = await facade.publish(envelope)
        except (RuntimeError, ValueError) as exc:
            raise ServerError(str(exc)) from None
        return {"messageId": message_id, "topic": topic}

    @method("baton_recentBlocks")
    async def recent_blocks(params: Params) -> Any:
        check_arity(params, 1)
        limit = DEFAULT_RECENT_LIMIT
        if param_optional(params, 0):
            limit = param_int(params, 0, "limit", maximum=MAX_RECENT_LIMIT)
        return facade.recent_blocks(limit)

    @method("baton_equivocations")
    async def equivocations(params: Params) -> Any:
        check_arity(params, 0)
        return facade.equivocations()

    for name, fn in handlers.items():
        dispatcher.register(name, fn)
    return sorted(handlers)
