"""Raft message transport over trio TCP: framed, optionally HMAC-authenticated, per-peer queues.

Wire format: every frame is ``u32 length | payload`` (big-endian). A zero-length frame is a
keep-alive. Connections are one-directional: the dialling side sends Raft messages, the
accepting side only reads them (replies travel over the receiver's own connection back).

Handshake (first frames on a new connection)::

    client -> server  HELLO   magic "RFT1" | flags u8 (1 = has secret) | id str | nonce[32]
    server -> client  WELCOME magic "RFT1" | flags u8 | id str | nonce[32] | mac[32 if secret]
    client -> server  PROOF   mac[32]                                   (only with a secret)

With a shared secret both sides prove knowledge of it by an HMAC-SHA256 over both nonces and
both ids (different labels per direction), so neither side can be replayed or impersonated.
A connection that fails the handshake is closed and logged; frames are only accepted after
it. Without a secret anybody who can reach the port may send Raft messages: a warning is
logged once. A decoded message whose ``src`` differs from the handshake id is refused.

Outbound, each peer has a bounded queue (drop-oldest when full, counted: Raft tolerates
lost messages) drained by a reconnecting sender task with exponential backoff, a connect
timeout and a write timeout; queued messages are discarded when the peer is unreachable.
A lost connection, a failed connect and a queue overflow are reported (``on_unreachable``);
after a lost connection the sender dials again at once, so a dead peer (its process killed:
the kernel resets the connection) is reported twice within milliseconds, which a follower
uses to detect a dead leader (fast failover, `RaftCore.report_unreachable`).
Inbound, a reader per connection enforces the maximum frame size and an I/O timeout;
malformed input closes that connection only. Decoded messages go to ``inbound``.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
import trio

from conductor.raft.messages import Message, MessageDecodeError, decode_message, encode_message

if TYPE_CHECKING:
    # mypy reads the installed trio-stubs (trio_typing), where TaskStatus lives
    from trio_typing import TaskStatus

log = structlog.get_logger(__name__)

_LEN = struct.Struct(">I")
_MAGIC = b"RFT1"
_NONCE = 32
_MAC = 32
_MAX_HANDSHAKE = 1024


class TransportError(Exception):
    """A peer violated the protocol (bad frame, failed handshake)."""


@dataclass(frozen=True, slots=True)
class TransportConfig:
    max_frame: int = 64 * 1024 * 1024
    queue_messages: int = 1024  # per peer
    connect_timeout: float = 5.0
    write_timeout: float = 5.0
    io_timeout: float = 5.0  # a started frame must keep making progress within this
    idle_timeout: float = 60.0  # inbound connection closed after this long without a frame
    keepalive_interval: float = 15.0
    backoff_min: float = 0.05
    backoff_max: float = 1.0
    inbound_buffer: int = 256


@dataclass(slots=True)
class TransportStats:
    sent: int = 0
    received: int = 0
    dropped_queue_full: int = 0
    dropped_unreachable: int = 0
    dropped_no_address: int = 0
    refused_connections: int = 0
    auth_failures: int = 0  # handshakes that failed the shared-secret check (either side)
    malformed_frames: int = 0


def split_host_port(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {addr!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


async def check_reachable(addr: str, dial_timeout: float = 5.0) -> None:
    """Dial ``addr`` over TCP (op-conductor's pre-check before AddVoter). Raises OSError."""
    host, port = split_host_port(addr)
    with trio.move_on_after(dial_timeout) as scope:
        stream = await trio.open_tcp_stream(host, port)
        await stream.aclose()
    if scope.cancelled_caught:
        raise OSError(f"dial tcp {addr}: i/o timeout")


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _mac(secret: bytes, label: bytes, *parts: bytes | bytearray) -> bytes:
    return hmac.new(secret, label + b"".join(parts), hashlib.sha256).digest()


_LARGE = 256 * 1024


class _FrameReader:
    """Reads length-prefixed frames from a socket stream with size and progress limits.
    Large frames are received straight into one preallocated buffer (``recv_into``): every
    extra multi-megabyte allocation costs page faults."""

    def __init__(self, stream: trio.SocketStream, max_frame: int, io_timeout: float):
        self.stream = stream
        self.max_frame = max_frame
        self.io_timeout = io_timeout
        self.buf = bytearray()

    async def _fill(self, n: int, first_timeout: float) -> None:
        timeout = first_timeout
        while len(self.buf) < n:
            with trio.fail_after(timeout):
                chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
            timeout = self.io_timeout

    async def read(self, idle_timeout: float) -> bytes | bytearray:
        await self._fill(4, idle_timeout)
        (length,) = _LEN.unpack_from(self.buf, 0)
        if length > self.max_frame:
            raise TransportError(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
        if length < _LARGE or len(self.buf) >= 4 + length:
            await self._fill(4 + length, self.io_timeout)
            with memoryview(self.buf) as mv:
                frame = bytes(mv[4 : 4 + length])
            del self.buf[: 4 + length]
            return frame
        big = bytearray(length)
        have = len(self.buf) - 4
        big[:have] = self.buf[4:]
        self.buf.clear()
        sock = self.stream.socket
        with memoryview(big) as view:
            while have < length:
                with trio.fail_after(self.io_timeout):
                    n = await sock.recv_into(view[have:], length - have)
                if n == 0:
                    raise EOFError("connection closed")
                have += n
        return big


def _frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


class _Peer:
    def __init__(self, peer_id: str, limit: int):
        self.id = peer_id
        self.queue: collections.deque[Message] = collections.deque()
        self.limit = limit
        self.wakeup = trio.Event()
        self.cancel = trio.CancelScope()


class RaftTransport:
    """TCP transport for one Raft server. Run with ``await nursery.start(transport.run)``."""

    def __init__(
        self,
        server_id: str,
        bind_host: str,
        bind_port: int,
        *,
        secret: bytes | None = None,
        config: TransportConfig | None = None,
        advertised_addr: str | None = None,
        on_unreachable: Callable[[str], None] | None = None,
    ) -> None:
        self.id = server_id
        self.advertised_addr = advertised_addr  # defaults to the bound address once listening
        # called with a peer id when messages to it were (possibly) lost: connect failure,
        # broken connection, queue overflow (etcd's ReportUnreachable)
        self.on_unreachable = on_unreachable
        self.bind_host = bind_host
        self.bind_port = bind_port
        self.secret = secret or None
        self.cfg = config or TransportConfig()
        self.stats = TransportStats()
        self.port = 0
        self._addrs: dict[str, str] = {}
        self._learned: dict[str, str] = {}  # advertised addresses from inbound handshakes
        self._peers: dict[str, _Peer] = {}
        self._nursery: trio.Nursery | None = None
        self._in_send, self.inbound = trio.open_memory_channel[Message](self.cfg.inbound_buffer)
        self._warned_open = False
        self.log = log.bind(server_id=server_id)

    # ---------------------------------------------------------------- public API

    def set_peers(self, addresses: dict[str, str]) -> None:
        """Replace the id -> "host:port" map (self is ignored). Senders of removed peers stop;
        a changed address makes that peer's sender reconnect."""
        old = {pid: self.address_of(pid) for pid in self._peers}
        self._addrs = {k: v for k, v in addresses.items() if k != self.id}
        for pid, peer in list(self._peers.items()):
            if self.address_of(pid) != old[pid]:
                peer.cancel.cancel()
                del self._peers[pid]

    def address_of(self, peer_id: str) -> str | None:
        """The configured address of a peer, else the one it advertised when it connected to us."""
        return self._addrs.get(peer_id) or self._learned.get(peer_id)

    def send(self, msg: Message) -> None:
        """Queue ``msg`` for ``msg.dst`` (never blocks; drops the oldest message when full)."""
        if self._nursery is None or self.address_of(msg.dst) is None:
            self.stats.dropped_no_address += 1
            return
        peer = self._peers.get(msg.dst)
        if peer is None:
            peer = _Peer(msg.dst, self.cfg.queue_messages)
            self._peers[msg.dst] = peer
            self._nursery.start_soon(self._sender, peer)
        if len(peer.queue) >= peer.limit:
            peer.queue.popleft()
            self.stats.dropped_queue_full += 1
            self._report(peer.id)
        peer.queue.append(msg)
        peer.wakeup.set()

    def _report(self, peer_id: str) -> None:
        if self.on_unreachable is not None:
            self.on_unreachable(peer_id)

    def queued(self, peer_id: str) -> int:
        peer = self._peers.get(peer_id)
        return len(peer.queue) if peer is not None else 0

    async def run(self, *, task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, accept and send until cancelled. ``task_status.started(port)``."""
        if self.secret is None and not self._warned_open:
            self._warned_open = True
            self.log.warning("raft transport: no shared secret configured; connections are not authenticated")
        listeners = await trio.open_tcp_listeners(self.bind_port, host=self.bind_host)
        self.port = listeners[0].socket.getsockname()[1]
        if not self.advertised_addr:
            self.advertised_addr = f"{self.bind_host}:{self.port}"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(trio.serve_listeners, self._serve_conn, listeners)
                self.log.info("raft transport listening", host=self.bind_host, port=self.port)
                task_status.started(self.port)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._in_send.close()

    # ---------------------------------------------------------------- inbound

    async def _serve_conn(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            remote = f"{host}:{port}"
        except OSError:
            remote = "?"
        reader = _FrameReader(stream, self.cfg.max_frame, self.cfg.io_timeout)
        peer_id = "?"
        try:
            async with stream:
                peer_id = await self._accept_handshake(stream, reader)
                while True:
                    frame = await reader.read(self.cfg.idle_timeout)
                    if not frame:
                        continue  # keep-alive
                    try:
                        msg = decode_message(frame)
                    except MessageDecodeError as e:
                        self.stats.malformed_frames += 1
                        raise TransportError(f"malformed message: {e}") from None
                    if msg.src != peer_id or msg.dst != self.id:
                        raise TransportError(f"message {msg.src}->{msg.dst} on connection from {peer_id}")
                    self.stats.received += 1
                    await self._in_send.send(msg)
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        except trio.TooSlowError:
            self.log.info("raft transport: inbound connection timed out", remote=remote, peer=peer_id)
        except TransportError as e:
            self.stats.refused_connections += 1
            self.log.warning(
                "raft transport: closing inbound connection", remote=remote, peer=peer_id, reason=str(e)
            )
        except OSError as e:
            self.log.info("raft transport: inbound connection error", remote=remote, error=str(e))

    async def _accept_handshake(self, stream: trio.SocketStream, reader: _FrameReader) -> str:
        reader.max_frame, saved = _MAX_HANDSHAKE, reader.max_frame
        try:
            hello = await reader.read(self.cfg.io_timeout)
            flags, peer_id, peer_addr, _nonce_c = _parse_hello(hello)
            if self.secret is not None and not flags & 1:
                self.stats.auth_failures += 1
                raise TransportError(f"peer {peer_id!r} sent no authentication but a secret is configured")
            welcome = self._hello()
            mac = _mac(self.secret, b"server", hello, welcome) if self.secret is not None else b""
            with trio.fail_after(self.cfg.io_timeout):
                await stream.send_all(_frame(welcome + mac))
            if self.secret is not None:
                proof = await reader.read(self.cfg.io_timeout)
                if not hmac.compare_digest(proof, _mac(self.secret, b"client", hello, welcome)):
                    self.stats.auth_failures += 1
                    raise TransportError(f"peer {peer_id!r} failed authentication (wrong secret)")
            if peer_addr and peer_id != self.id:
                self._learned[peer_id] = peer_addr
            return peer_id
        finally:
            reader.max_frame = saved

    def _hello(self) -> bytes:
        return (
            _MAGIC
            + bytes([1 if self.secret else 0])
            + _str(self.id)
            + _str(self.advertised_addr or "")
            + os.urandom(_NONCE)
        )

    # ---------------------------------------------------------------- outbound

    async def _connect(self, peer_id: str, addr: str) -> trio.SocketStream:
        host, port = split_host_port(addr)
        with trio.fail_after(self.cfg.connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
        try:
            with trio.fail_after(self.cfg.io_timeout):
                hello = self._hello()
                await stream.send_all(_frame(hello))
                reader = _FrameReader(stream, _MAX_HANDSHAKE, self.cfg.io_timeout)
                welcome = await reader.read(self.cfg.io_timeout)
                has_mac = len(welcome) > 4 and welcome[4] & 1
                body = welcome[: len(welcome) - _MAC] if has_mac else welcome
                flags, remote_id, _addr, _nonce_s = _parse_hello(body)
                if remote_id != peer_id:
                    raise TransportError(f"dialled {peer_id!r} at {addr} but {remote_id!r} answered")
                if self.secret is not None:
                    if not flags & 1:
                        self.stats.auth_failures += 1
                        raise TransportError(f"peer {peer_id!r} is not configured with a secret")
                    if not hmac.compare_digest(welcome[-_MAC:], _mac(self.secret, b"server", hello, body)):
                        self.stats.auth_failures += 1
                        raise TransportError(f"peer {peer_id!r} failed authentication (wrong secret)")
                    await stream.send_all(_frame(_mac(self.secret, b"client", hello, body)))
            return stream
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    async def _sender(self, peer: _Peer) -> None:
        backoff = self.cfg.backoff_min
        lg = self.log.bind(peer=peer.id)
        redial = False  # after a lost connection, dial again at once even with nothing queued
        with peer.cancel:
            while True:
                if not peer.queue and not redial:
                    peer.wakeup = trio.Event()
                    await peer.wakeup.wait()
                redial = False
                addr = self.address_of(peer.id)
                if addr is None:
                    self._peers.pop(peer.id, None)
                    return
                try:
                    stream = await self._connect(peer.id, addr)
                except (OSError, trio.TooSlowError, TransportError, EOFError, trio.BrokenResourceError) as e:
                    dropped = len(peer.queue)
                    peer.queue.clear()
                    self.stats.dropped_unreachable += dropped
                    self._report(peer.id)
                    level = lg.warning if isinstance(e, TransportError) else lg.debug
                    level(
                        "raft transport: connect failed",
                        addr=addr,
                        error=str(e) or type(e).__name__,
                        dropped=dropped,
                    )
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.cfg.backoff_max)
                    continue
                backoff = self.cfg.backoff_min
                lg.debug("raft transport: connected", addr=addr)
                try:
                    async with stream:
                        await self._run_connection(peer, stream)
                    lg.info("raft transport: connection closed by peer", addr=addr)
                except (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                    lg.info("raft transport: connection lost", addr=addr, error=str(e) or type(e).__name__)
                self._report(peer.id)
                redial = True

    async def _run_connection(self, peer: _Peer, stream: trio.SocketStream) -> None:
        """Pump messages until an error, or until the peer closes the connection: the accepting
        side never sends after the handshake, so a concurrent read sees its FIN at once (a
        write into a connection whose peer died would otherwise 'succeed' and be lost)."""
        failure: BaseException | None = None
        async with trio.open_nursery() as nursery:

            async def watch_close() -> None:
                try:
                    await stream.receive_some(4096)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_close)
            try:
                await self._pump(peer, stream)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                failure = e  # re-raised below, outside the nursery (no ExceptionGroup wrapping)
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _pump(self, peer: _Peer, stream: trio.SocketStream) -> None:
        while True:
            if not peer.queue:
                peer.wakeup = trio.Event()
                with trio.move_on_after(self.cfg.keepalive_interval):
                    await peer.wakeup.wait()
                if not peer.queue:
                    with trio.fail_after(self.cfg.write_timeout):
                        await stream.send_all(_LEN.pack(0))
                    continue
            # coalesce small frames into one write; large payloads are sent without copying
            parts: list[bytes] = []
            size = 0
            while peer.queue and size < _LARGE:
                payload = encode_message(peer.queue.popleft())
                self.stats.sent += 1
                if len(payload) >= _LARGE:
                    parts.append(_LEN.pack(len(payload)))
                    with trio.fail_after(self.cfg.write_timeout):
                        await stream.send_all(b"".join(parts))
                        await stream.send_all(payload)
                    parts = []
                    size = 0
                    continue
                parts.append(_LEN.pack(len(payload)))
                parts.append(payload)
                size += len(payload) + 4
            if parts:
                with trio.fail_after(self.cfg.write_timeout):
                    await stream.send_all(b"".join(parts))


def _parse_hello(frame: bytes | bytearray) -> tuple[int, str, str, bytes]:
    """(flags, id, advertised address, nonce) of a HELLO/WELCOME body."""
    try:
        if frame[:4] != _MAGIC:
            raise TransportError("bad handshake magic")
        flags = frame[4]
        pos = 5
        fields: list[str] = []
        for _ in range(2):
            (n,) = struct.unpack_from(">H", frame, pos)
            fields.append(frame[pos + 2 : pos + 2 + n].decode())
            pos += 2 + n
    except (IndexError, struct.error, UnicodeDecodeError):
        raise TransportError("bad handshake") from None
    if len(frame) != pos + _NONCE:
        raise TransportError("bad handshake length")
    return flags, fields[0], fields[1], bytes(frame[pos:])
