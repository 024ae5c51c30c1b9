"""Every py-libp2p 0.8.1 workaround op-baton needs to gossip like op-node, in one place.

py-libp2p's pubsub differs from go-libp2p-pubsub as configured by op-node (StrictNoSign, content
addressed message ids, tri-state validation, 10 MiB messages, 256-deep peer queues). Each fix below is
one clearly named class or function whose comment names the 0.8.1 behaviour it replaces (see
``/work/shared/specs/py-libp2p-interop.md`` and spec §9 of ``p2p.md``):

* :class:`NoSignPubsub` — publishes ``Message{data, topic}`` only (0.8.1 always sets from/seqno);
  refuses inbound messages carrying from/seqno/signature/key (StrictNoSign, 0.8.1 accepts them);
  three-way verdicts ACCEPT / IGNORE / REJECT (0.8.1 validators are boolean: False always penalises);
  per-peer outbound queue depth 256 and 10 MiB RPCs both ways (0.8.1: 32 and 1 MiB, not configurable);
  reads each peer's stream through :class:`RpcReader` (0.8.1 reads the length prefix byte by byte, and
  every yamux read sends a WINDOW_UPDATE), handles messages in order inline, and verifies a peer's
  signed peer record only when it changes (0.8.1: on every RPC, twice for control RPCs).
* :class:`NoEquivocationGossipSub` — skips py-libp2p's from+seqno "equivocation" check for unsigned
  messages (0.8.1 drops every unsigned message after the first) and keys the message cache by the
  custom id (:class:`MessageIdCache`; 0.8.1 keys it by from+seqno so IHAVE advertises ``b""``); its
  ``publish`` attaches no signed peer record (0.8.1 builds one per RPC, ~0.8 ms), sends IDONTWANT the
  go way (before validation, received messages ≥ 1 KiB only), queues an RPC without copying/splitting
  it per peer, and reports every dropped outbound RPC (``on_drop``; 0.8.1 logs it at DEBUG only).
* :func:`op_gossipsub_router` — the router with op-node's parameters and the non-standard
  adaptive-gossip / spam / eclipse protections off.
* :func:`light_score_params` — op-node's "light" peer-score profile mapped onto py-libp2p's scorer, whose
  penalty weights are *positive* numbers that get subtracted (go uses negative weights).
* :func:`set_agent_version` — identify's agent string (0.8.1 hard-codes ``py-libp2p/<version>``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

from libp2p.custom_types import TProtocol
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as _gossipsub
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import GossipsubEvent, Pubsub
from libp2p.pubsub.score import ScoreParams
from libp2p.pubsub.utils import maybe_consume_signed_record

__all__ = [
    "MAX_RPC_SIZE",
    "OUTBOUND_QUEUE_SIZE",
    "Disposition",
    "MessageIdCache",
    "NoEquivocationGossipSub",
    "NoSignPubsub",
    "SizedPeerQueues",
    "gate_secured_connections",
    "light_score_params",
    "op_gossipsub_router",
    "set_agent_version",
]

log = logging.getLogger(__name__)

MAX_GOSSIP_MESSAGE = 10 * 1024 * 1024
# 10 MiB of message plus room for the protobuf framing of one RPC (op-node: WithMaxMessageSize(10 MiB)).
MAX_RPC_SIZE = MAX_GOSSIP_MESSAGE + 1024
# op-node: WithPeerOutboundQueueSize(256).
OUTBOUND_QUEUE_SIZE = 256

PROTOCOL_V10 = _gossipsub.PROTOCOL_ID
PROTOCOL_V11 = _gossipsub.PROTOCOL_ID_V11
PROTOCOL_V12 = _gossipsub.PROTOCOL_ID_V12
_IDONTWANT_PROTOCOLS = frozenset(
    {PROTOCOL_V12, _gossipsub.PROTOCOL_ID_V13, _gossipsub.PROTOCOL_ID_V14, _gossipsub.PROTOCOL_ID_V20}
)
# go-libp2p-pubsub GossipSubIDontWantMessageThreshold: IDONTWANT only for messages of at least 1 KiB.
IDONTWANT_THRESHOLD = 1024
# How much one read of an inbound pubsub stream may take (see RpcReader).
_READ_CHUNK = 1 << 20


class Disposition(Enum):
    """Three-way validation outcome (libp2p ValidationResult)."""

    ACCEPT = "ACCEPT"
    IGNORE = "IGNORE"
    REJECT = "REJECT"


# (forwarder, message, message_id) -> disposition. Must not await: seen-check, validation and
# seen-marking then run without a checkpoint, so two concurrent copies cannot both be accepted.
ValidateFn = Callable[[ID, Any, bytes], Disposition]
# (forwarder, message, reason) for messages refused before validation (signing policy).
RefuseFn = Callable[[ID, Any, str], None]


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
    # (reason, kind, messages) for every outbound RPC py-libp2p drops: reason "queue_full"/"oversized",
    # kind "publish"/"control"; 0.8.1 only logs these at DEBUG ("Dropping outbound RPC").
    on_drop: Callable[[str, str, int], None] | None = None

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(reason, "publish" if rpc.publish else "control", len(rpc.publish))
        super()._handle_dropped_rpc(peer_id, rpc, reason)

    def send_rpc(self, peer_id: Any, rpc: Any, priority: bool = False) -> None:
        size = rpc.ByteSize()
        if self.on_send is not None:
            self.on_send(size)
        queue = self.pubsub.peer_queues.get(peer_id) if self.pubsub is not None else None
        if queue is None or peer_id in self._pending_control or size > queue.max_message_size:
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


class SizedPeerQueues(dict[Any, Any]):
    """``Pubsub.peer_queues`` replacement that sizes each per-peer ``RpcQueue`` as it is registered.

    py-libp2p 0.8.1 creates ``RpcQueue()`` in ``Pubsub._handle_new_peer`` with fixed defaults: 32 RPCs
    deep (bursts of ~16 publishes lost "queue_full") and a 1 MiB outbound limit (larger blocks dropped as
    "oversized"). op-node uses 256 and 10 MiB.
    """

    def __init__(self, depth: int, max_message_size: int) -> None:
        super().__init__()
        self.depth = depth
        self.max_message_size = max_message_size

    def __setitem__(self, key: Any, queue: Any) -> None:
        queue.max_message_size = self.max_message_size
        inner = getattr(queue, "_queue", None)
        if inner is not None and hasattr(inner, "max_size"):
            inner.max_size = self.depth
        super().__setitem__(key, queue)


class RpcReader:
    """Reads varint-length-prefixed RPCs from a pubsub stream through a buffer.

    Replaces 0.8.1's ``read_varint_prefixed_bytes_limited`` loop, which reads the length prefix one byte
    per ``stream.read(1)`` call. Each read of a yamux stream sends a WINDOW_UPDATE frame (an encrypted
    Noise message and a socket write) — ~36 frames per 100 KB message were measured. Reading up to 1 MiB
    at a time gives one or two reads per message.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._buf = bytearray()
        self._pos = 0

    async def _fill(self) -> None:
        chunk = await self._stream.read(_READ_CHUNK)
        if not chunk:
            raise IncompleteReadError("pubsub stream ended mid-RPC", expected_bytes=1, received_bytes=0)
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += chunk

    def _varint(self) -> tuple[int, int] | None:
        value, shift, i, buf = 0, 0, self._pos, self._buf
        while i < len(buf):
            b = buf[i]
            value |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                return value, i
            shift += 7
            if shift >= 64:
                raise ParseError("varint length prefix exceeds 64 bits")
        return None

    async def read(self) -> bytes:
        """The next RPC's bytes; raises ``MessageTooLarge`` above the limit (before reading the body)."""
        while (prefix := self._varint()) is None:
            await self._fill()
        length, self._pos = prefix  # prefix consumed
        if length > self._limit:
            raise MessageTooLarge(f"RPC of {length} bytes exceeds the limit of {self._limit}")
        while len(self._buf) - self._pos < length:
            await self._fill()  # may compact the buffer (self._pos becomes 0)
        end = self._pos + length
        data = bytes(self._buf[self._pos : end])
        self._pos = end
        return data


class _IdMemo:
    """Tiny identity-keyed memo so a message's id is computed once while it flows through pubsub.

    Holds a reference to each message it memoises, so ``id()`` cannot be reused while cached.
    """

    def __init__(self, fn: Callable[[Any], bytes], size: int = 512) -> None:
        self._fn = fn
        self._size = size
        self._memo: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()

    def __call__(self, msg: Any) -> bytes:
        key = id(msg)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is msg:
            return hit[1]
        mid = self._fn(msg)
        self._memo[key] = (msg, mid)
        if len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return mid


class NoSignPubsub(Pubsub):
    """Pubsub with go-libp2p-pubsub's StrictNoSign policy and tri-state validation.

    Replaces these py-libp2p 0.8.1 behaviours:

    * ``Pubsub.publish`` always sets ``from`` and ``seqno`` (even with ``strict_signing=False``); op-node
      rejects such messages (RejectUnexpectedAuthInfo). :meth:`publish_message` sends ``{data, topic}``.
    * inbound messages that carry ``from``/``seqno``/``signature``/``key`` are accepted; StrictNoSign
      refuses them before validation — :meth:`push_msg` does too (and counts an invalid message).
    * validators are boolean and a False always counts as an invalid message for the sender's score;
      there is no IGNORE. Here ``validate_fn`` returns a :class:`Disposition`: ACCEPT → deliver and
      forward; IGNORE → drop, marked seen, no penalty; REJECT → drop, marked seen, invalid-message
      penalty. py-libp2p's boolean validators, 300 s ``ValidationCache`` and subscription channels are
      bypassed (delivery happens inside ``validate_fn``).
    * per-peer queues and the outbound RPC size limit are fixed at 32 / 1 MiB (:class:`SizedPeerQueues`).
    """

    def __init__(
        self,
        host: Any,
        router: Any,
        *,
        msg_id_fn: Callable[[Any], bytes],
        validate_fn: ValidateFn,
        refuse_fn: RefuseFn | None = None,
        seen_ttl: int = 65,
        allowed_topics: Iterable[str] | None = None,
        max_rpc_size: int = MAX_RPC_SIZE,
        outbound_queue_size: int = OUTBOUND_QUEUE_SIZE,
    ) -> None:
        super().__init__(
            host,
            router,
            seen_ttl=seen_ttl,
            strict_signing=False,
            msg_id_constructor=_IdMemo(msg_id_fn),
            max_inbound_rpc_size=max_rpc_size,
            allowed_topics=set(allowed_topics) if allowed_topics is not None else None,
        )
        self.peer_queues = SizedPeerQueues(outbound_queue_size, max_rpc_size)
        self._validate_fn = validate_fn
        self._refuse_fn = refuse_fn
        self._peer_records: dict[ID, bytes] = {}  # last signed peer record consumed per peer
        # (event) for pubsub outcomes that never reach validate_fn: "duplicate", "graylisted",
        # "inbound_rpc_too_large", "bad_peer_record" (0.8.1 logs them at DEBUG/WARNING at best).
        self.on_event: Callable[[str], None] | None = None

    def _event(self, name: str) -> None:
        if self.on_event is not None:
            self.on_event(name)

    # -- reading a peer's stream ------------------------------------------------------------------

    async def continuously_read_stream(self, stream: Any) -> None:
        """Read RPCs from one peer and handle them in order.

        Replaces 0.8.1 ``Pubsub.continuously_read_stream``: the length prefix is read through
        :class:`RpcReader` instead of byte by byte; each message is handled inline (0.8.1 spawns one
        task per message, so messages of one RPC stream are validated out of order); the sender's
        signed peer record is verified only when it differs from the last one (0.8.1 verifies it on
        every RPC, twice for control RPCs, ~0.5 ms each); an oversized RPC is counted
        (``inbound_rpc_too_large``) as well as logged.
        """
        peer_id = stream.muxed_conn.peer_id
        reader = RpcReader(stream, self.max_inbound_rpc_size)
        try:
            while self.manager.is_running:
                incoming = await reader.read()
                rpc = rpc_pb2.RPC()
                rpc.ParseFromString(incoming)
                if rpc.HasField("senderRecord"):
                    if self._peer_records.get(peer_id) != rpc.senderRecord:
                        if not maybe_consume_signed_record(rpc, self.host, peer_id):
                            self._event("bad_peer_record")
                            continue
                        self._peer_records[peer_id] = rpc.senderRecord
                    rpc.ClearField("senderRecord")  # the router would verify it again
                for msg in rpc.publish:
                    if self._is_subscribed_to_msg(msg):
                        try:
                            await self.push_msg(peer_id, msg)
                        except Exception:  # one bad message must not end the peer's stream
                            log.exception("handling a gossip message from %s failed", peer_id)
                if rpc.subscriptions:
                    if len(rpc.subscriptions) > self.max_subscriptions_per_rpc:
                        log.warning("peer %s sent %d subscriptions at once", peer_id, len(rpc.subscriptions))
                    else:
                        for sub in rpc.subscriptions:
                            self.handle_subscription(peer_id, sub)
                if rpc.HasField("control"):
                    await self.router.handle_rpc(rpc, peer_id)
                if stream.metric_send_channel is not None:
                    event = GossipsubEvent()
                    event.peer_id = peer_id.pretty()
                    event.message_size = len(incoming)
                    event.publish, event.subopts = bool(rpc.publish), bool(rpc.subscriptions)
                    event.control = rpc.HasField("control")
                    await stream.metric_send_channel.send(event)
        except MessageTooLarge as error:
            log.warning("inbound pubsub RPC from %s too large: %s", peer_id, error)
            self._event("inbound_rpc_too_large")
            try:
                await stream.reset()
            except Exception:
                pass
            self._handle_dead_peer(peer_id)
        except (StreamEOF, StreamError, IOException, RawConnError) as error:
            log.debug("pubsub stream of %s ended: %r", peer_id, error)
        finally:
            self._peer_records.pop(peer_id, None)

    # -- publishing -------------------------------------------------------------------------------

    def build_message(self, topic: str, data: bytes) -> Any:
        """A StrictNoSign message: data and exactly one topic, nothing else."""
        return rpc_pb2.Message(data=data, topicIDs=[topic])

    async def publish_message(self, msg: Any) -> None:
        """Publish a message built by :meth:`build_message` (validated locally like go-pubsub)."""
        await self.push_msg(self.my_id, msg)

    async def publish(self, topic_id: str | list[str], data: bytes) -> None:
        topics = [topic_id] if isinstance(topic_id, str) else list(topic_id)
        if len(topics) != 1:
            raise ValueError("StrictNoSign messages carry exactly one topic")
        await self.publish_message(self.build_message(topics[0], data))

    # -- receiving --------------------------------------------------------------------------------

    def notify_subscriptions(self, publish_message: Any) -> None:
        # Delivery is done by validate_fn on ACCEPT; the py-libp2p subscription channels would only
        # fill up (and log "fail to deliver") since nobody reads them.
        return

    @staticmethod
    def signing_policy_violation(msg: Any) -> str | None:
        """go-libp2p-pubsub checkSigningPolicy for StrictNoSign: the reason to refuse, or None."""
        if msg.signature:
            return "unexpected_signature"
        if msg.from_id or msg.seqno or msg.key:
            return "unexpected_auth_info"
        return None

    def _penalise_invalid(self, forwarder: ID, msg: Any) -> None:
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None and forwarder != self.my_id:
            for topic in msg.topicIDs:
                scorer.on_invalid_message(forwarder, topic)

    async def push_msg(self, msg_forwarder: ID, msg: Any) -> None:
        if self.is_peer_blacklisted(msg_forwarder):
            return
        if len(msg.topicIDs) != 1:
            self._refuse(msg_forwarder, msg, "bad_topic_count")
            return
        violation = self.signing_policy_violation(msg)
        if violation is not None:
            self._refuse(msg_forwarder, msg, violation)
            return
        mid = self._msg_id_constructor(msg)
        if self.seen_messages.has(mid):
            self._event("duplicate")
            return
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None and not scorer.allow_publish(msg_forwarder, list(msg.topicIDs)):
            self._event("graylisted")
            return  # graylisted sender: ignored like go's AcceptNone
        if msg_forwarder != self.my_id:
            early = getattr(self.router, "idontwant_before_validation", None)
            if early is not None:
                early(msg_forwarder, msg, mid)
        # No checkpoint between the seen check above and seen.add below (validate_fn is sync).
        try:
            verdict = self._validate_fn(msg_forwarder, msg, mid)
        except Exception:  # guardGossipValidator: a crashing validator is a REJECT
            log.exception("gossip validator raised")
            verdict = Disposition.REJECT
        self.seen_messages.add(mid)
        if verdict is Disposition.REJECT:
            self._penalise_invalid(msg_forwarder, msg)
            return
        if verdict is Disposition.IGNORE:
            return
        if scorer is not None and msg_forwarder != self.my_id:
            for topic in msg.topicIDs:
                scorer.on_first_delivery(msg_forwarder, topic)
        await self.router.publish(msg_forwarder, msg)

    def _refuse(self, forwarder: ID, msg: Any, reason: str) -> None:
        self._penalise_invalid(forwarder, msg)
        if self._refuse_fn is not None:
            self._refuse_fn(forwarder, msg, reason)


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
    Dlazy has no knob in py-libp2p (gossip goes to max(Dlazy, 0.25·n) peers via its fixed factor).
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
    router.max_iwant_requests_per_second = 10_000.0
    router.max_ihave_messages_per_second = 10_000.0
    return router


def set_agent_version(agent: str) -> None:
    """Set identify's agent version (process-wide).

    py-libp2p 0.8.1 reads the module constant ``identify.AGENT_VERSION`` (``py-libp2p/<version>``) when
    it builds each identify response and offers no host option for it.
    """
    from libp2p.identity.identify import identify as _identify

    _identify.AGENT_VERSION = agent


def gate_secured_connections(host: Any, allow_inbound: Callable[[ID], bool]) -> None:
    """Refuse inbound connections from blocked peers right after the Noise handshake.

    py-libp2p 0.8.1 has no ``InterceptSecured`` hook (go-libp2p ConnectionGater): the swarm's
    ``connection_gate`` only sees the remote address, so a blocked *peer id* could only be closed after
    the connection was registered (visible, briefly usable). This wraps the host's upgrader so a
    handshake with a refused peer fails like a security failure; outbound dials are left alone (they are
    gated before dialling, as in op-node).
    """
    from libp2p.transport.exceptions import SecurityUpgradeFailure

    upgrader = host.get_network().upgrader
    inner = upgrader.upgrade_security

    async def upgrade_security(raw_conn: Any, is_initiator: bool, peer_id: Any = None) -> Any:
        secured = await inner(raw_conn, is_initiator, peer_id)
        if not is_initiator:
            remote = secured.get_remote_peer()
            if not allow_inbound(remote):
                await secured.close()
                raise SecurityUpgradeFailure(f"peer {remote} is blocked by the connection gater")
        return secured

    upgrader.upgrade_security = upgrade_security
