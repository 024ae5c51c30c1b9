"""The GossipSub router and peer-score parameters fixed for op-node interop (see :mod:`p2p.compat`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as _gossipsub
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.score import ScoreParams

__all__ = [
    "IDONTWANT_THRESHOLD",
    "MessageIdCache",
    "NoEquivocationGossipSub",
    "light_score_params",
    "no_score_params",
    "op_gossipsub_router",
    "score_decay",
]

PROTOCOL_V10 = _gossipsub.PROTOCOL_ID
PROTOCOL_V11 = _gossipsub.PROTOCOL_ID_V11
PROTOCOL_V12 = _gossipsub.PROTOCOL_ID_V12
_IDONTWANT_PROTOCOLS = frozenset(
    {PROTOCOL_V12, _gossipsub.PROTOCOL_ID_V13, _gossipsub.PROTOCOL_ID_V14, _gossipsub.PROTOCOL_ID_V20}
)
# go-libp2p-pubsub GossipSubIDontWantMessageThreshold: IDONTWANT only for messages of at least 1 KiB.
IDONTWANT_THRESHOLD = 1024


class MessageIdCache(MessageCache):
    """Message cache keyed by the pubsub's message-id function.

    Replaces py-libp2p 0.8.1 ``MessageCache.put`` which always keys by ``from_id + seqno``: with
    StrictNoSign messages that key is ``b""`` for every message, so only the first message was cached,
    IHAVE advertised empty ids and IWANT could never be answered.
    """

    def __init__(self, window_size: int, history_size: int, id_fn: Callable[[Any], bytes]) -> None:
        super().__init__(window_size, history_size)
        self._id_fn = id_fn

    def put(self, msg: Any) -> None:
        mid = self._id_fn(msg)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class NoEquivocationGossipSub(GossipSub):
    """GossipSub router fixed for unsigned (StrictNoSign) messages.

    * py-libp2p 0.8.1 ``GossipSub._check_equivocation`` keys messages by ``from_id + seqno``; unsigned
      messages all share the key ``b""``, so every message after the first was silently dropped (not
      forwarded, not cached) and ``ID(b"")`` "penalised". Skipped for messages without from/seqno.
    * The message cache is swapped for :class:`MessageIdCache` once attached to the pubsub.
    """

    on_send: Callable[[int], None] | None = None  # bytes of each RPC queued to a peer (metrics)
    # (reason, kind, messages) for every outbound RPC py-libp2p drops: reason "queue_full"/"oversized"/
    # "no_stream" (peer without an outbound stream, e.g. while it is being re-opened),
    # kind "publish"/"control"; 0.8.1 only logs these at DEBUG ("Dropping outbound RPC").
    on_drop: Callable[[str, str, int], None] | None = None

    dlazy = 6  # go GossipSubDlazy (op-node: 6)

    def _get_adaptive_gossip_peers_count(self, topic: str, total_peers: int) -> int:
        """How many non-mesh topic peers get IHAVE gossip each heartbeat: go's ``max(Dlazy, ⌊0.25·n⌋)``.

        Replaces 0.8.1's ``max(6, int(n * 0.25))`` with adaptive gossip off — Dlazy hard-coded to 6."""
        return max(self.dlazy, int(total_peers * 0.25))

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(reason, "publish" if rpc.publish else "control", len(rpc.publish))
        super()._handle_dropped_rpc(peer_id, rpc, reason)

    def send_rpc(self, peer_id: Any, rpc: Any, priority: bool = False) -> None:
        size = rpc.ByteSize()
        if self.on_send is not None:
            self.on_send(size)
        queue = self.pubsub.peer_queues.get(peer_id) if self.pubsub is not None else None
        if queue is None:
            # 0.8.1 drops it with a DEBUG log ("no queue for peer"); count it like any other drop.
            if self.pubsub is not None:
                self._handle_dropped_rpc(peer_id, rpc, "no_stream")
            return
        if peer_id in self._pending_control or size > queue.max_message_size:
            super().send_rpc(peer_id, rpc, priority)  # split / piggyback / drop path
            return
        # 0.8.1 copies every RPC (CopyFrom) and re-splits it per peer; an RPC that needs neither is
        # queued as is (never mutated afterwards, so one RPC object can sit in several peers' queues).
        if not queue.push(rpc, priority=priority):
            self._handle_dropped_rpc(peer_id, rpc, "queue_full")

    def attach(self, pubsub: Any) -> None:
        super().attach(pubsub)
        self.mcache = MessageIdCache(self.mcache.window_size, self.mcache.history_size, pubsub.get_message_id)

    async def publish(self, msg_forwarder: ID, pubsub_msg: Any) -> None:
        """Forward a validated message to the topic's mesh (or fanout) peers.

        Replaces 0.8.1 ``GossipSub.publish``, which for every message (a) builds and attaches a signed
        peer record (``env_to_send_in_RPC``: ``host.get_addrs()`` + marshal, ~0.8 ms) that every py
        receiver then verifies (secp256k1, ~0.5 ms per RPC) — op-node sends none; (b) sends IDONTWANT
        after validation to every mesh peer, for every size, even for our own publishes (one extra RPC
        per peer per message: go sends it before validation, for received messages >= 1 KiB, see
        :meth:`idontwant_before_validation`); (c) re-queues the message for peers whose subscription
        is not known yet (go never sends to those). Mesh/fanout selection, IDONTWANT filtering and the
        score gates are py-libp2p's own (``_get_peers_to_send``, ``allow_publish``).
        """
        if not self._check_equivocation(pubsub_msg):
            return
        self.mcache.put(pubsub_msg)
        pubsub = self.pubsub
        if pubsub is None:
            return
        topics = list(pubsub_msg.topicIDs)
        msg_id = pubsub.get_message_id(pubsub_msg)
        rpc = rpc_pb2.RPC(publish=[pubsub_msg])
        origin = ID(pubsub_msg.from_id)
        peers = self._get_peers_to_send(topics, msg_forwarder=msg_forwarder, origin=origin, msg_id=msg_id)
        for peer_id in peers:
            if peer_id not in pubsub.peers:
                continue
            if self.scorer is not None and not self.scorer.allow_publish(peer_id, topics):
                continue
            self.send_rpc(peer_id, rpc)
        now = int(time.time())
        for topic in topics:
            self.time_since_last_publish[topic] = now

    def idontwant_before_validation(self, forwarder: ID, msg: Any, msg_id: bytes) -> None:
        """go-libp2p-pubsub ``PreValidation``: tell the other v1.2 mesh peers not to send a big message
        we are about to validate (replaces 0.8.1's post-validation IDONTWANT, see :meth:`publish`)."""
        if len(msg.data) < IDONTWANT_THRESHOLD:
            return
        rpc: Any = None
        for topic in msg.topicIDs:
            for peer_id in self.mesh.get(topic, ()):
                if peer_id == forwarder or self.peer_protocol.get(peer_id) not in _IDONTWANT_PROTOCOLS:
                    continue
                if rpc is None:
                    rpc = rpc_pb2.RPC()
                    rpc.control.idontwant.add().messageIDs.append(msg_id)
                self.send_rpc(peer_id, rpc, priority=True)

    async def emit_control_message(self, control_msg: Any, to_peer: ID) -> None:
        """Queue a control RPC (0.8.1 attaches a freshly built signed peer record, see :meth:`publish`)."""
        packet = rpc_pb2.RPC()
        packet.control.CopyFrom(control_msg)
        self.send_rpc(to_peer, packet, priority=True)

    def _check_equivocation(self, msg: Any) -> bool:
        if not msg.from_id and not msg.seqno:
            return True
        result: bool = super()._check_equivocation(msg)
        return result


def score_decay(decay_seconds: float, tick_seconds: float, decay_to_zero: float = 0.01) -> float:
    """go ``ScoreParameterDecay``: the per-tick factor that takes a counter to ``decay_to_zero``."""
    return float(decay_to_zero ** (tick_seconds / decay_seconds))


def light_score_params(block_time: int = 2, heartbeat: float = 0.5) -> ScoreParams:
    """op-node's "light" peer-score profile (spec §4.4) in py-libp2p's scorer terms.

    py-libp2p 0.8.1's ``PeerScorer`` *subtracts* penalty weights, so go's negative weights become
    positive numbers here; it decays once per heartbeat, so go's per-slot decay is converted; its
    behaviour penalty is linear above the threshold (go: squared).

    * no per-topic P1–P3 (op-node PR #15719 disabled topic scoring);
    * P4 invalid messages: op-node sets none, so a REJECT costs nothing there. py-libp2p's scorer is
      the only place a REJECT can cost anything, so a mild P4 (−10 per REJECT, capped at −200, decaying
      over 10 epochs) is kept — the only deviation from op-node; ``--p2p.scoring none`` removes it;
    * P5 behaviour penalty weight −16 (16 here), threshold 6, decay over 10 epochs;
    * P7 IP colocation weight −35 (35 here), threshold 10;
    * thresholds gossip −10, publish −40, graylist −40, accept-PX 20.
    """
    slot = float(block_time or 2)
    ten_epochs = 10 * 6 * slot
    decay = score_decay(ten_epochs, heartbeat)
    params = ScoreParams()
    params.p4_invalid_messages.weight = 10.0
    params.p4_invalid_messages.cap = 20.0
    params.p4_invalid_messages.decay = decay
    params.p5_behavior_penalty_weight = 16.0
    params.p5_behavior_penalty_threshold = 6.0
    params.p5_behavior_penalty_decay = decay
    params.p7_ip_colocation_weight = 35.0
    params.p7_ip_colocation_threshold = 10
    params.gossip_threshold = -10.0
    params.publish_threshold = -40.0
    params.graylist_threshold = -40.0
    params.accept_px_threshold = 20.0
    return params


def no_score_params() -> ScoreParams:
    """``--p2p.scoring none``: every weight zero, thresholds −∞ (nothing is ever gated)."""
    params = ScoreParams()
    params.gossip_threshold = -math.inf
    params.publish_threshold = -math.inf
    params.graylist_threshold = -math.inf
    params.accept_px_threshold = math.inf
    return params


def op_gossipsub_router(
    *,
    d: int = 8,
    d_lo: int = 6,
    d_hi: int = 12,
    d_lazy: int = 6,
    heartbeat: float = 0.5,
    fanout_ttl: int = 24,
    history_length: int = 12,
    history_gossip: int = 3,
    score_params: ScoreParams | None = None,
    protocols: Sequence[str] | None = None,
) -> NoEquivocationGossipSub:
    """GossipSub with op-node's parameters (spec §4.3).

    py-libp2p 0.8.1 defaults replaced: ``adaptive_gossip_enabled`` (rewrites heartbeat/degrees; also the
    reason a float heartbeat is unsafe), ``spam_protection_enabled`` (10 msgs/topic/s per peer, counting
    our own publishes), ``eclipse_protection_enabled`` (needs 3 distinct IPs — hostile to localhost and
    static meshes) are all off; the v1.4 IWANT/IHAVE rate limits (10/s) are raised to go's per-heartbeat
    budget so 100 blocks/s can be gossiped. PX off, no flood publish (py-libp2p has none), no direct peers.
    Dlazy (``--p2p.gossip.mesh.dlazy``) is honoured (``NoEquivocationGossipSub.dlazy``).
    """
    default_ids = [PROTOCOL_V12, PROTOCOL_V11, PROTOCOL_V10]
    ids = [TProtocol(p) for p in protocols] if protocols is not None else default_ids
    router = NoEquivocationGossipSub(
        protocols=ids,
        degree=d,
        degree_low=d_lo,
        degree_high=d_hi,
        time_to_live=fanout_ttl,
        gossip_window=history_gossip,
        gossip_history=history_length,
        heartbeat_initial_delay=0.1,
        # typed int in 0.8.1; a float is fine with adaptive gossip off (trio.sleep takes floats)
        heartbeat_interval=heartbeat,  # type: ignore[arg-type]
        do_px=False,
        prune_back_off=60,
        unsubscribe_back_off=10,
        score_params=score_params if score_params is not None else light_score_params(heartbeat=heartbeat),
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
        max_idontwant_messages=5000,
    )
    router.dlazy = d_lazy
    router.max_iwant_requests_per_second = 10_000.0
    router.max_ihave_messages_per_second = 10_000.0
    return router
