"""``GossipNode``: the OP Stack unsafe-block gossip node (host + op-node-configured GossipSub + validator).

One node = a py-libp2p host (:mod:`p2p.host`), a :class:`~p2p.compat.NoSignPubsub` over the
:func:`~p2p.compat.op_gossipsub_router`, subscribed to the chain's four block topics, with every message
validated by :class:`~p2p.validator.GossipValidator` (ACCEPT → deliver + forward, IGNORE → drop without
penalty, REJECT → drop + invalid-message penalty). Accepted blocks go to a bounded recent list
(:meth:`GossipNode.recent_blocks`), to every embedder subscription (:meth:`GossipNode.subscribe_accepted`),
to the req/resp store (:meth:`GossipNode.payload_by_number`) and to the equivocation detector.
In sequencer mode :meth:`GossipNode.publish` signs and publishes a payload.

Peer management (:mod:`p2p.gater`, :mod:`p2p.peers`, :mod:`p2p.banning`) and req/resp
(:mod:`p2p.reqresp`) are started by :meth:`GossipNode.run`; the admin API (:mod:`p2p.admin`) is
mounted by the CLI (:mod:`p2p.node_cli`) against this class.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service

from p2p.admin import Connectedness, PeerInfo, PeerScores, TopicScores
from p2p.banning import BanMonitor, run_ban_monitor
from p2p.compat import (
    Disposition,
    NoSignPubsub,
    gate_secured_connections,
    light_score_params,
    no_score_params,
    op_gossipsub_router,
)
from p2p.config import GossipConfig
from p2p.encoding import SnappyMessage, inspect
from p2p.gater import ConnectionGater, HostGate, install_gater
from p2p.host import AGENT_VERSION, build_host, listen_multiaddr, peer_multiaddrs
from p2p.meshtime import MeshTimes
from p2p.metrics import GossipMetrics
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope
from p2p.peers import StaticPeerDialer
from p2p.reqresp import PayloadByNumberServer
from p2p.signing import address_of, encode_gossip
from p2p.topics import all_block_topics, block_topic, parse_block_topic
from p2p.validator import GossipValidator, Result, SignerSet, Verdict

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["AcceptedBlock", "EquivocationDetector", "GossipNode", "PublishError"]

log = structlog.get_logger("p2p.node")

# Peerstore TTL of an address given to connect()/opp2p_connectPeer (py-libp2p's host.connect uses 120 s).
_CONNECT_ADDR_TTL = 3600

_RESULT_TO_DISPOSITION = {
    Result.ACCEPT: Disposition.ACCEPT,
    Result.IGNORE: Disposition.IGNORE,
    Result.REJECT: Disposition.REJECT,
}


class PublishError(RuntimeError):
    """Publishing failed (no key, or our own validator refused the block)."""


@dataclass(frozen=True, slots=True)
class AcceptedBlock:
    """A block this node accepted from gossip (or published itself, ``from_peer`` = own id)."""

    number: int
    block_hash: bytes
    topic: str
    message_id: bytes
    received_at: float
    from_peer: str
    envelope: ExecutionPayloadEnvelope
    version: BlockVersion
    local: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "hash": "0x" + self.block_hash.hex(),
            "topic": self.topic,
            "messageId": "0x" + self.message_id.hex(),
            "receivedAt": self.received_at,
            "fromPeer": self.from_peer,
        }


@dataclass
class EquivocationDetector:
    """Two different validly signed block hashes at one height (any topic) → one record per height."""

    capacity: int = 4096
    _heights: OrderedDict[int, list[bytes]] = field(default_factory=OrderedDict)
    _records: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)

    def observe(self, number: int, block_hash: bytes, topic: str) -> bool:
        """Record ``block_hash`` at ``number``; True when it is a new conflicting hash."""
        hashes = self._heights.get(number)
        if hashes is None:
            self._heights[number] = [block_hash]
            if len(self._heights) > self.capacity:
                self._heights.popitem(last=False)
            return False
        if block_hash in hashes:
            return False
        hashes.append(block_hash)
        record = self._records.get(number)
        if record is None:
            record = {"number": number, "hashes": [], "topic": topic}
            self._records[number] = record
            if len(self._records) > self.capacity:
                self._records.popitem(last=False)
        record["hashes"] = ["0x" + h.hex() for h in hashes]
        return True

    def records(self) -> list[dict[str, Any]]:
        return [dict(r, hashes=list(r["hashes"])) for r in self._records.values()]


class GossipNode:
    """The gossip node service. ``await nursery.start(node.run)`` → listening and subscribed."""

    def __init__(
        self,
        config: GossipConfig,
        *,
        key_pair: Any | None = None,
        metrics: GossipMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config.validate()
        if key_pair is None:
            from p2p.keys import load_or_create_keypair

            key_pair = load_or_create_keypair(config.priv_path)
        self.key_pair = key_pair
        self.clock = clock
        self.metrics = metrics if metrics is not None else GossipMetrics()
        self.chain_id = config.chain_id
        self.topics = all_block_topics(config.chain_id)
        signer = config.unsafe_block_signer
        if signer is None and config.sequencer_key is not None:
            signer = address_of(config.sequencer_key)
        self.signers = SignerSet(signer, grace_period=config.signer_grace_period)
        self.validator = GossipValidator(
            config.chain_id,
            self.signers,
            config.rollup,
            timestamp_threshold=int(config.timestamp_threshold),
        )
        self.host: Any = build_host(
            key_pair, muxers=config.muxers, peers_hi=config.peers_hi, peers_grace=config.peers_grace
        )
        params = (
            light_score_params(config.rollup.block_time if config.rollup else 2, config.heartbeat)
            if config.scoring == "light"
            else no_score_params()
        )
        self.router = op_gossipsub_router(
            d=config.mesh_d,
            d_lo=config.mesh_dlo,
            d_hi=config.mesh_dhi,
            d_lazy=config.mesh_dlazy,
            heartbeat=config.heartbeat,
            fanout_ttl=config.fanout_ttl,
            history_length=config.history_length,
            history_gossip=config.history_gossip,
            score_params=params,
        )
        self.router.on_send = self._on_send
        self.router.on_drop = self.metrics.dropped
        self.pubsub = NoSignPubsub(
            self.host,
            self.router,
            msg_id_fn=self._message_id,
            validate_fn=self._validate,
            refuse_fn=self._refuse,
            seen_ttl=config.seen_ttl,
            allowed_topics=self.topics,
            outbound_queue_size=config.outbound_queue_size,
        )
        self.pubsub.on_event = self.metrics.event
        self.metrics.set_outbound_queue_fn(
            lambda: float(max((len(q) for q in self.pubsub.peer_queues.values()), default=0))
        )
        self._inspected: OrderedDict[int, tuple[Any, SnappyMessage]] = OrderedDict()
        self._recent: deque[AcceptedBlock] = deque(maxlen=config.recent_blocks_limit)
        self._by_number: OrderedDict[int, list[AcceptedBlock]] = OrderedDict()
        self._subscribers: list[trio.MemorySendChannel[AcceptedBlock]] = []
        self._local_verdicts: dict[bytes, Verdict] = {}
        self.equivocation_detector = EquivocationDetector()
        self._ready = trio.Event()
        self._mesh_times = MeshTimes()
        self._stopped = trio.Event()
        self.listen_port: int | None = None
        # peer management / req-resp; the gater exists from the start so the admin API can use it
        self._gater = ConnectionGater.open(config.peerstore_path)
        self.host_gate: HostGate | None = None
        self.static_peers: StaticPeerDialer | None = None
        self.reqresp: PayloadByNumberServer | None = None
        self.metrics.set_peer_count_fn(lambda: float(len(self.connected_peers())))

    # -- identity -------------------------------------------------------------------------------

    @property
    def peer_id(self) -> ID:
        pid: ID = self.host.get_id()
        return pid

    def listen_addrs(self) -> list[str]:
        """Dialable multiaddrs with ``/p2p/<id>`` (loopback when bound to 0.0.0.0)."""
        return peer_multiaddrs(self.host, self.config.advertise_ip)

    def connected_peers(self) -> list[ID]:
        return list(self.host.get_network().connections.keys())

    # -- service --------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, start pubsub + router, subscribe to the four topics; then ``task_status.started()``."""
        maddr = listen_multiaddr(self.config.listen_ip, self.config.listen_port)
        try:
            async with (
                self.host.run([maddr]),
                trio.open_nursery() as nursery,
                background_trio_service(self.pubsub),
                background_trio_service(self.router),
            ):
                await self.pubsub.wait_until_ready()
                for topic in self.topics:
                    await self.pubsub.subscribe(topic)
                self.listen_port = _port_of(self.host)
                await self._start_extensions(nursery)
                log.info("gossip node ready", peer_id=self.peer_id.to_base58(), addrs=self.listen_addrs())
                self._ready.set()
                task_status.started()
                await trio.sleep_forever()
        finally:
            for ch in self._subscribers:
                ch.close()
            self._stopped.set()

    async def _start_extensions(self, nursery: trio.Nursery) -> None:
        """Connection gater, static-peer dialer, score-ban monitor and req/resp server (spec §6, §7)."""
        self.host_gate = install_gater(self.host, self._gater, self.clock)
        gate_secured_connections(self.host, self.host_gate.allow_secured_inbound)
        self.static_peers = StaticPeerDialer(
            self.host, list(self.config.static_peers), self._gater, clock=self.clock
        )
        await nursery.start(self.static_peers.run)
        if self.config.ban_peers:
            monitor = BanMonitor(self.config.ban_threshold, self.config.ban_duration)
            await nursery.start(
                functools.partial(
                    run_ban_monitor,
                    monitor,
                    connected_peers=lambda: [p.to_base58() for p in self.connected_peers()],
                    score_of=self.peer_score,
                    is_protected=self.static_peers.is_protected,
                    ban=self.host_gate.ban_peer,
                    clock=self.clock,
                )
            )
        nursery.start_soon(self._sample_mesh)
        if self.config.req_resp:
            self.reqresp = PayloadByNumberServer(self.chain_id, self)
            self.reqresp.register(self.host)

    async def _sample_mesh(self) -> None:
        """Snapshot the router's mesh once a second so `timeInMesh` is a duration (see meshtime.py)."""
        while True:
            self._mesh_times.observe(self.router.mesh, self.clock())
            await trio.sleep(1.0)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # -- peers ----------------------------------------------------------------------------------

    async def connect(self, addr: str) -> ID:
        """Dial a ``/ip4/…/tcp/…/p2p/<id>`` multiaddr now; returns the peer id.

        An explicit dial overrides two py-libp2p behaviours: its 60 s refusal to re-dial a peer after a
        failed dial (``Swarm.unblock_peer`` clears that negative cache) and its dialling of only one
        TCP address per peer from the peerstore (stale addresses could hide this one, so the peer's
        addresses are replaced by ``addr``).
        """
        import multiaddr

        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        peer: ID = info.peer_id
        self.host.get_network().unblock_peer(peer)
        peerstore = self.host.get_peerstore()
        peerstore.clear_addrs(peer)
        peerstore.add_addrs(peer, info.addrs, _CONNECT_ADDR_TTL)
        await self.host.connect(info)
        return peer

    async def wait_for_mesh(self, peer: ID, topic: str | None = None) -> None:
        """Wait until ``peer`` is in our mesh for ``topic`` (default: the V4 topic); caller bounds time."""
        topic = topic or block_topic(self.chain_id, BlockVersion.V4)
        while peer not in self.router.mesh.get(topic, set()):  # noqa: ASYNC110 - py-libp2p has no mesh event
            await trio.sleep(0.02)

    def peer_score(self, peer: ID | str) -> float:
        """The router's total score of ``peer`` (py-libp2p scorer, summed over the block topics)."""
        pid = peer if isinstance(peer, ID) else ID.from_base58(peer)
        scorer = self.router.scorer
        return float(scorer.score(pid, list(self.topics))) if scorer is not None else 0.0

    # -- admin facade (p2p.admin.NodeFacade) --------------------------------------------------------

    @property
    def gater(self) -> ConnectionGater:
        return self._gater

    def _peer_info(self, pid: ID, connected: bool) -> PeerInfo:
        peerstore = self.host.get_peerstore()
        b58 = pid.to_base58()
        try:
            addrs = [f"{a}/p2p/{b58}" for a in peerstore.addrs(pid)]
        except Exception:
            addrs = []
        try:
            protocols = [str(p) for p in peerstore.get_protocols(pid)]
        except Exception:
            protocols = []
        direction = "unknown"
        conns = self.host.get_network().connections.get(pid) or []
        if conns:
            from p2p.gater import conn_direction

            direction = conn_direction(conns[0])
        try:
            latency = float(peerstore.latency_EWMA(pid))
        except Exception:
            latency = 0.0
        scorer = self.router.scorer
        blocks = TopicScores()
        total = 0.0
        if scorer is not None:
            total = float(scorer.score(pid, list(self.topics)))
            for t in self.topics:
                blocks.first_message_deliveries += float(scorer.first_message_deliveries[pid][t])
                blocks.mesh_message_deliveries += float(scorer.mesh_message_deliveries[pid][t])
                blocks.invalid_message_deliveries += float(scorer.invalid_messages[pid][t])
        self._mesh_times.observe(self.router.mesh, self.clock())
        blocks.time_in_mesh = self._mesh_times.seconds(pid, self.topics, self.clock())
        return PeerInfo(
            peer_id=b58,
            addresses=addrs,
            protocols=protocols,
            connectedness=Connectedness.CONNECTED if connected else Connectedness.NOT_CONNECTED,
            direction=direction,
            protected=self.static_peers.is_protected(b58) if self.static_peers is not None else False,
            chain_id=self.chain_id,
            latency=latency,
            gossip_blocks=any(pid in self.pubsub.peer_topics.get(t, ()) for t in self.topics),
            scores=PeerScores(total=total, blocks=blocks),
        )

    def self_info(self) -> PeerInfo:
        return PeerInfo(
            peer_id=self.peer_id.to_base58(),
            user_agent=AGENT_VERSION,
            protocol_version="ipfs/0.1.0",
            addresses=self.listen_addrs(),
            protocols=[str(p) for p in self.host.get_mux().get_protocols() if p is not None],
            connectedness=Connectedness.CONNECTED,
            chain_id=self.chain_id,
            gossip_blocks=True,
        )

    def peer_infos(self, connected_only: bool) -> list[PeerInfo]:
        connected = set(self.connected_peers())
        pids = connected if connected_only else set(self.host.get_peerstore().peer_ids()) | connected
        return [self._peer_info(p, p in connected) for p in pids if p != self.peer_id]

    def connected_count(self) -> int:
        return len(self.connected_peers())

    def known_count(self) -> int:
        return len([p for p in self.host.get_peerstore().peer_ids() if p != self.peer_id])

    def topic_peer_counts(self) -> dict[int, int]:
        return {i: len(self.pubsub.peer_topics.get(t, ())) for i, t in enumerate(self.topics)}

    def protect_peer(self, peer_id: str) -> None:
        if self.static_peers is not None:
            self.static_peers.protect(peer_id)

    def unprotect_peer(self, peer_id: str) -> None:
        if self.static_peers is not None:
            self.static_peers.unprotect(peer_id)

    async def connect_peer(self, addr: str) -> None:
        await self.connect(addr)

    def gater_relaxed(self, peer_id: str | None) -> None:
        """After ``opp2p_unblock*``: wake the static dialer (that peer, or all) and forget py-libp2p's
        failed-dial cache for it, so an unblocked static peer is re-dialled at once (not ≤ 30 s later)."""
        pid = ID.from_base58(peer_id) if peer_id is not None else None
        if pid is not None:
            self.host.get_network().unblock_peer(pid)
        if self.static_peers is not None:
            self.static_peers.wake(pid)

    async def close_peer(self, peer_id: str) -> None:
        if self.host_gate is not None:
            await self.host_gate.close_peer(peer_id)

    async def disconnect_peer(self, peer_id: str) -> None:
        await self.close_peer(peer_id)
        pid = ID.from_base58(peer_id)
        peerstore = self.host.get_peerstore()
        try:
            peerstore.clear_addrs(pid)
            peerstore.clear_peerdata(pid)
        except Exception as exc:
            log.debug("forgetting peer failed", peer=peer_id, error=str(exc))

    def has_sequencer_key(self) -> bool:
        return self.config.sequencer_key is not None

    # -- validation (called synchronously by NoSignPubsub.push_msg) --------------------------------

    def _inspect(self, msg: Any) -> SnappyMessage:
        key = id(msg)
        hit = self._inspected.get(key)
        if hit is not None and hit[0] is msg:
            return hit[1]
        sm = inspect(msg.data)
        self._inspected[key] = (msg, sm)
        if len(self._inspected) > 256:
            self._inspected.popitem(last=False)
        return sm

    def _message_id(self, msg: Any) -> bytes:
        topic = msg.topicIDs[0] if msg.topicIDs else ""
        return self._inspect(msg).message_id(topic)

    def _validate(self, forwarder: ID, msg: Any, mid: bytes) -> Disposition:
        topic = msg.topicIDs[0]
        local = forwarder == self.peer_id
        if not local:
            self.metrics.bandwidth.labels(direction="in").inc(len(msg.data))
        started = time.perf_counter()
        verdict = self.validator.validate_message(topic, self._inspect(msg), int(self.clock()))
        self.metrics.validation_seconds.observe(time.perf_counter() - started)
        self.metrics.verdict(_version_label(topic), verdict.result.value, verdict.reason)
        if local:
            self._local_verdicts[mid] = verdict
        if verdict.result is Result.ACCEPT:
            self._on_accept(forwarder, topic, mid, verdict, local)
        elif not local:
            log.debug(
                "gossip dropped",
                result=verdict.result.value,
                reason=verdict.reason,
                peer=forwarder.to_base58(),
                topic=topic,
                detail=verdict.detail,
            )
        return _RESULT_TO_DISPOSITION[verdict.result]

    def _refuse(self, forwarder: ID, msg: Any, reason: str) -> None:
        topic = msg.topicIDs[0] if msg.topicIDs else ""
        self.metrics.verdict(_version_label(topic), Result.REJECT.value, reason)
        log.debug("gossip refused", reason=reason, peer=forwarder.to_base58(), topic=topic)

    def _on_send(self, nbytes: int) -> None:
        self.metrics.bandwidth.labels(direction="out").inc(nbytes)

    def _on_accept(self, forwarder: ID, topic: str, mid: bytes, verdict: Verdict, local: bool) -> None:
        envelope = verdict.envelope
        assert envelope is not None and verdict.block_hash is not None and verdict.block_number is not None
        parsed = parse_block_topic(topic)
        version = parsed[1] if parsed is not None else BlockVersion.V4
        block = AcceptedBlock(
            number=verdict.block_number,
            block_hash=verdict.block_hash,
            topic=topic,
            message_id=mid,
            received_at=self.clock(),
            from_peer=forwarder.to_base58(),
            envelope=envelope,
            version=version,
            local=local,
        )
        self._recent.append(block)
        bucket = self._by_number.setdefault(block.number, [])
        bucket.append(block)
        while len(self._by_number) > self.config.recent_blocks_limit:
            self._by_number.popitem(last=False)
        if self.equivocation_detector.observe(block.number, block.block_hash, topic):
            self.metrics.equivocations.inc()
            log.warning("equivocation detected", number=block.number, hash="0x" + block.block_hash.hex())
        for ch in list(self._subscribers):
            try:
                ch.send_nowait(block)
            except trio.WouldBlock:
                log.warning("accepted-block subscriber is full; dropping", number=block.number)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.remove(ch)

    # -- embedder API ---------------------------------------------------------------------------

    def subscribe_accepted(self, max_buffer: int = 1024) -> trio.MemoryReceiveChannel[AcceptedBlock]:
        """A channel receiving every block accepted from now on (including our own publishes)."""
        send, receive = trio.open_memory_channel[AcceptedBlock](max_buffer)
        self._subscribers.append(send)
        return receive

    def recent_blocks(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` accepted blocks, oldest first, as JSON objects."""
        items = list(self._recent)[-limit:] if limit > 0 else []
        return [b.to_json() for b in items]

    def accepted(self) -> list[AcceptedBlock]:
        return list(self._recent)

    def equivocations(self) -> list[dict[str, Any]]:
        return self.equivocation_detector.records()

    def get_by_number(self, number: int) -> tuple[ExecutionPayloadEnvelope, BlockVersion] | None:
        """req/resp ``PayloadStore``: the first accepted block at ``number`` and its version."""
        bucket = self._by_number.get(number)
        if not bucket:
            return None
        return bucket[0].envelope, bucket[0].version

    # -- publishing -----------------------------------------------------------------------------

    def topic_for(self, envelope: ExecutionPayloadEnvelope) -> tuple[str, BlockVersion]:
        ts = envelope.execution_payload.timestamp
        rollup = self.config.rollup
        version = rollup.version_for_timestamp(ts) if rollup is not None else BlockVersion.V4
        return block_topic(self.chain_id, version), version

    async def publish(self, envelope: ExecutionPayloadEnvelope) -> tuple[str, str]:
        """Sign and publish ``envelope`` on its timestamp's topic; returns ``(message_id_hex, topic)``."""
        key = self.config.sequencer_key
        if key is None:
            raise PublishError("no sequencer key configured (--p2p.sequencer.key)")
        topic, version = self.topic_for(envelope)
        data = encode_gossip(envelope, version, key, self.chain_id)
        mid = await self.publish_data(topic, data)
        self.metrics.published.labels(version=_version_label(topic)).inc()
        return "0x" + mid.hex(), topic

    async def publish_data(self, topic: str, data: bytes) -> bytes:
        """Publish already signed+compressed gossip ``data``; validated locally first (like go-pubsub).

        Raises :class:`PublishError` if our validator does not ACCEPT it. Publishing a message that was
        already seen is a no-op returning the same id.
        """
        if topic not in self.topics:
            raise PublishError(f"not a block topic of chain {self.chain_id}: {topic}")
        msg = self.pubsub.build_message(topic, data)
        mid = self.pubsub.get_message_id(msg)
        await self.pubsub.publish_message(msg)
        verdict = self._local_verdicts.pop(mid, None)
        if verdict is not None and verdict.result is not Result.ACCEPT:
            raise PublishError(f"block refused by local validation: {verdict.result.value} {verdict.reason}")
        return mid

    async def publish_unchecked(self, msg: Any) -> None:
        """Send an arbitrary protobuf ``Message`` to the mesh without local validation or seen-marking
        (tests/bench: inject invalid or policy-violating messages)."""
        await self.router.publish(self.peer_id, msg)


def _version_label(topic: str) -> str:
    parsed = parse_block_topic(topic)
    return f"v{int(parsed[1]) + 1}" if parsed is not None else "unknown"


def _port_of(host: Any) -> int | None:
    for addr in host.get_transport_addrs():
        port = addr.value_for_protocol("tcp")
        if port:
            return int(port)
    return None
