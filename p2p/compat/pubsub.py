"""``NoSignPubsub``: py-libp2p's Pubsub with StrictNoSign, tri-state validation and robust streams (see
:mod:`p2p.compat`)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import trio
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF, StreamError
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import GossipsubEvent, Pubsub
from libp2p.pubsub.utils import maybe_consume_signed_record
from libp2p.utils.varint import encode_uvarint, encode_varint_prefixed

__all__ = [
    "MAX_RPC_SIZE",
    "OUTBOUND_QUEUE_SIZE",
    "WRITE_STALL_TIMEOUT",
    "Disposition",
    "NoSignPubsub",
    "RpcReader",
    "SizedPeerQueues",
]

log = logging.getLogger("p2p.compat")

MAX_GOSSIP_MESSAGE = 10 * 1024 * 1024
# 10 MiB of message plus room for the protobuf framing of one RPC (op-node: WithMaxMessageSize(10 MiB)).
MAX_RPC_SIZE = MAX_GOSSIP_MESSAGE + 1024
# op-node: WithPeerOutboundQueueSize(256).
OUTBOUND_QUEUE_SIZE = 256
# A pubsub stream whose send window makes no progress for this long is declared stuck (see
# NoSignPubsub.handle_sending_messages); go has no such limit but also no 5 s write timeout.
WRITE_STALL_TIMEOUT = 30.0
# How often the writer re-checks a shut yamux send window (YamuxStream.write polls every 10 ms too).
_WINDOW_POLL = 0.005
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
    * the per-peer writer dies when yamux's send window stays shut for 5 s (a receiver busy for 5 s), and
      the stream is re-opened with the peer's subscriptions forgotten — a silently dead link. See
      :meth:`handle_sending_messages`.
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
        write_stall_timeout: float = WRITE_STALL_TIMEOUT,
        reopen_attempts: int = 3,
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
        self.write_stall_timeout = write_stall_timeout
        self.reopen_attempts = reopen_attempts

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

    # -- writing a peer's stream ------------------------------------------------------------------

    async def handle_sending_messages(self, peer_id: ID, stream: Any, queue: Any) -> None:
        """Per-peer writer: applies backpressure instead of dying, and recovers a failed stream.

        Replaces 0.8.1 ``Pubsub.handle_sending_messages`` + ``write_msg``. There, ``stream.write`` of a
        big RPC waits at most 5 s for a yamux WINDOW_UPDATE (``YamuxStream.write``, hard-coded) — a
        receiver that does not read for 5 s (overloaded, GC pause) resets the stream; ``_handle_dead_peer``
        then drops every queued RPC uncounted, removes the peer from the mesh, *forgets its
        subscriptions* and opens a new stream. The peer announced its subscriptions on its own stream,
        which is still alive, so it never announces them again: nothing is sent to it any more
        (measured: a 137.5 blocks/s step after an overload step lost 2,751 of 4,125 blocks).

        Here (go-libp2p-pubsub semantics: a stream write blocks; the bounded queue drops and counts):

        * RPCs are written in pieces that fit the yamux send window (:meth:`_write_rpc`), waiting for
          the window to open without a deadline while it makes progress — so yamux's 5 s timeout never
          fires; meanwhile the queue fills and its drops are counted (``queue_full``);
        * a stream that fails (reset or closed by the peer, muxer error) while the peer stays
          connected is replaced by a new one (:meth:`_reopen_stream`) *with the same queue and router
          state* (mesh, subscriptions); the RPC being written is sent again in full on the new stream
          (the partial copy dies with the old one). Event ``outbound_stream_reopened``;
        * no window progress for ``write_stall_timeout`` (30 s), or a stream that cannot be re-opened:
          the peer's connections are closed (``outbound_stream_stalled`` /
          ``outbound_stream_reopen_failed``), so the link is re-established from scratch (the static
          dialer re-dials) instead of staying silently dead.
        """
        rpc: Any = None
        while True:
            if rpc is None:
                rpc = await queue.pop()
                if rpc is None:
                    return  # queue closed: the peer is gone
            try:
                await self._write_rpc(stream, rpc)
                rpc = None
                continue
            except trio.TooSlowError:
                failure = "outbound_stream_stalled"
            except Exception as exc:  # StreamReset/StreamClosed/MuxedStreamError/IOException/…
                log.debug("pubsub stream to %s failed: %r", peer_id, exc)
                failure = "outbound_stream_failed"
            if queue.closed or self.peers.get(peer_id) is not stream:
                return  # the peer was removed or re-registered meanwhile
            self._event(failure)
            new_stream = None
            if failure != "outbound_stream_stalled":
                new_stream = await self._reopen_stream(peer_id, stream)
            if new_stream is None:
                await self._drop_peer_connections(peer_id, stream)
                return
            stream = new_stream

    async def _write_rpc(self, stream: Any, rpc: Any) -> None:
        """Write one length-prefixed RPC; raises ``trio.TooSlowError`` after ``write_stall_timeout`` s
        without progress (window shut, or the connection write blocked)."""
        data = rpc.SerializeToString()
        buf = memoryview(encode_uvarint(len(data)) + data)
        muxed: Any = getattr(stream, "muxed_stream", None)
        if not hasattr(muxed, "send_window"):  # mplex: no flow-control window, plain blocking write
            with trio.fail_after(self.write_stall_timeout):
                await stream.write(bytes(buf))
            return
        # We are this stream's only writer, so a piece no larger than the send window is written by
        # YamuxStream.write without ever waiting on the window (and so without its 5 s timeout).
        while buf:
            deadline = trio.current_time() + self.write_stall_timeout
            while (window := int(muxed.send_window)) <= 0:
                if getattr(muxed, "closed", False) or getattr(muxed, "send_closed", False):
                    raise StreamClosed("pubsub stream closed while waiting for the send window")
                if trio.current_time() >= deadline:
                    raise trio.TooSlowError
                await trio.sleep(_WINDOW_POLL)
            piece, buf = buf[:window], buf[window:]
            with trio.fail_after(self.write_stall_timeout):
                await stream.write(bytes(piece))

    async def _reopen_stream(self, peer_id: ID, old: Any) -> Any:
        """Reset ``old`` and open a new pubsub stream to a still-connected peer, keeping the router's
        state; returns the new stream, or None (peer gone or every attempt failed)."""
        try:
            await old.reset()
        except Exception:
            pass
        delay = 0.05
        for _ in range(max(1, self.reopen_attempts)):
            if not self._peer_is_connected(peer_id) or not self.manager.is_running:
                return None
            try:
                with trio.fail_after(10):
                    stream = await self.host.new_stream(peer_id, self.protocols)
                    await stream.write(encode_varint_prefixed(self.get_hello_packet().SerializeToString()))
            except Exception as exc:
                log.debug("re-opening the pubsub stream to %s failed: %r", peer_id, exc)
                await trio.sleep(delay)
                delay *= 4
                continue
            if self.peers.get(peer_id) is not old:
                await _reset_quietly(stream)  # the peer was removed/re-registered meanwhile
                return None
            self.peers[peer_id] = stream
            protocol = stream.get_protocol()
            if protocol is not None and peer_id in self.router.peer_protocol:
                self.router.peer_protocol[peer_id] = protocol
            self._event("outbound_stream_reopened")
            log.info("re-opened the pubsub stream to %s", peer_id)
            return stream
        self._event("outbound_stream_reopen_failed")
        return None

    async def _drop_peer_connections(self, peer_id: ID, stream: Any) -> None:
        """Last resort: close the peer's connections so the link is rebuilt from scratch (a static peer
        is re-dialled; the disconnect notifee cleans up pubsub state) instead of staying dead."""
        log.warning("pubsub stream to %s is stuck; closing the peer's connections", peer_id)
        await _reset_quietly(stream)
        try:
            await self.host.get_network().close_peer(peer_id)
        except Exception as exc:
            log.debug("closing the connections of %s failed: %r", peer_id, exc)
        if self.peers.get(peer_id) is stream:
            self._handle_dead_peer(peer_id)

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


async def _reset_quietly(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:
        pass
