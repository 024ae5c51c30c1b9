"""``payload_by_number`` req/resp server (and a small client), spec §6.

Protocol ids — both registered, multistream matches byte-for-byte:
``/opstack/req/payload_by_number/<chain>/0`` (op-node) and ``…/0/`` (spec, kona).

Request: the client writes an 8-byte little-endian block number and half-closes. Response: one result byte;
on success (0) followed by ``version u32 LE`` and the snappy-*framed* SSZ body until EOF:

* version 0 — SSZ ``ExecutionPayload`` (V1/V2), version 1 — ``parentBeaconBlockRoot ‖ SSZ payload`` (V3/V4;
  op-node serves Isthmus blocks as version 1 too). The client picks V1/V2 (or V3/V4) itself from the number.
* result 1 not found, 2 invalid request (short read, number outside the optional allowed range), 3 unknown
  error — a single byte, then the stream is closed.

Rate limits like op-node: global 20 req/s burst 40, per peer 4 req/s burst 15 (LRU of 1000 peers); a request
is throttled (delayed) by up to 20 s, beyond that the stream is reset. The token buckets are pure objects fed
time (:class:`TokenBucket`, :class:`RequestRateLimiter`); :meth:`PayloadByNumberServer.respond` is the pure
request → response function. Timeouts: read request 10 s, write response 10 s.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import cramjam
import trio

from baton.log import get_logger
from p2p.encoding import decoded_len
from p2p.payload import (
    BlockVersion,
    ExecutionPayloadEnvelope,
    PayloadDecodeError,
    decode_envelope,
    encode_envelope,
)

__all__ = [
    "MAX_RESPONSE_SIZE",
    "RESULT_INVALID_REQUEST",
    "RESULT_NOT_FOUND",
    "RESULT_SUCCESS",
    "RESULT_UNKNOWN_ERROR",
    "PayloadByNumberServer",
    "PayloadStore",
    "RequestRateLimiter",
    "TokenBucket",
    "decode_response",
    "encode_success",
    "framed_decoded_length",
    "payload_by_number_protocols",
    "request_payload_by_number",
]

log = get_logger("p2p.reqresp")

RESULT_SUCCESS = 0
RESULT_NOT_FOUND = 1
RESULT_INVALID_REQUEST = 2
RESULT_UNKNOWN_ERROR = 3

MAX_RESPONSE_SIZE = 10 * 1024 * 1024  # before and after decompression (op-node maxGossipSize)
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

GLOBAL_RATE, GLOBAL_BURST = 20.0, 40
PEER_RATE, PEER_BURST = 4.0, 15
PEER_LRU_SIZE = 1000
MAX_THROTTLE_WAIT = 20.0
READ_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0


def payload_by_number_protocols(chain_id: int) -> tuple[str, str]:
    """(op-node's id without trailing slash, spec/kona id with it)."""
    base = f"/opstack/req/payload_by_number/{int(chain_id)}/0"
    return (base, base + "/")


class PayloadStore(Protocol):
    """What the server needs: the block at ``number`` and its payload version, or None if unknown."""

    def get_by_number(self, number: int) -> tuple[ExecutionPayloadEnvelope, BlockVersion] | None: ...


# ---------------------------------------------------------------------------------------------- limits


class TokenBucket:
    """golang ``rate.Limiter``-style bucket: ``rate`` tokens/s, capacity ``burst``; reservations may go
    into debt, :meth:`reserve` returns how long the caller must wait for its token."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _advance(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def tokens(self, now: float) -> float:
        self._advance(now)
        return self._tokens

    def delay_for(self, now: float, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens would be available (0 if available now); reserves nothing."""
        self._advance(now)
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def reserve(self, now: float, n: float = 1.0, max_wait: float = float("inf")) -> float | None:
        """Take ``n`` tokens; returns the wait (s), or None (nothing taken) if above ``max_wait``."""
        delay = self.delay_for(now, n)
        if delay > max_wait:
            return None
        self._tokens -= n
        return delay

    def cancel(self, n: float = 1.0) -> None:
        """Give back a reservation that will not be used."""
        self._tokens = min(float(self.burst), self._tokens + n)


class RequestRateLimiter:
    """Global + per-peer buckets (op-node server limits); per-peer buckets kept in an LRU."""

    def __init__(
        self,
        now: float,
        *,
        global_rate: float = GLOBAL_RATE,
        global_burst: int = GLOBAL_BURST,
        peer_rate: float = PEER_RATE,
        peer_burst: int = PEER_BURST,
        peer_capacity: int = PEER_LRU_SIZE,
        max_wait: float = MAX_THROTTLE_WAIT,
    ) -> None:
        self.global_bucket = TokenBucket(global_rate, global_burst, now)
        self.peer_rate = peer_rate
        self.peer_burst = peer_burst
        self.peer_capacity = peer_capacity
        self.max_wait = max_wait
        self._peers: OrderedDict[str, TokenBucket] = OrderedDict()

    def _peer_bucket(self, peer: str, now: float) -> TokenBucket:
        bucket = self._peers.get(peer)
        if bucket is None:
            bucket = TokenBucket(self.peer_rate, self.peer_burst, now)
            self._peers[peer] = bucket
            while len(self._peers) > self.peer_capacity:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        return bucket

    def reserve(self, peer: str, now: float) -> float | None:
        """Wait (s) before serving ``peer``'s request, or None to refuse it (throttled past ``max_wait``)."""
        global_delay = self.global_bucket.reserve(now, max_wait=self.max_wait)
        if global_delay is None:
            return None
        peer_delay = self._peer_bucket(peer, now).reserve(now, max_wait=self.max_wait)
        if peer_delay is None:
            self.global_bucket.cancel()
            return None
        return max(global_delay, peer_delay)


# ---------------------------------------------------------------------------------------------- codec


def encode_success(envelope: ExecutionPayloadEnvelope, version: BlockVersion) -> bytes:
    """``0x00 ‖ u32 LE (0: V1/V2 payload, 1: V3/V4 envelope) ‖ snappy-framed(SSZ)``."""
    version = BlockVersion(version)
    code = 1 if version.has_parent_beacon_block_root else 0
    body = encode_envelope(envelope, version)
    return bytes([RESULT_SUCCESS]) + _U32.pack(code) + bytes(cramjam.snappy.compress(body))


def framed_decoded_length(data: bytes) -> int:
    """Decoded size of a snappy framed stream, read from chunk headers without decompressing
    (bounds the output before cramjam allocates it). ValueError on a malformed frame layout."""
    total = pos = 0
    n = len(data)
    while pos < n:
        if pos + 4 > n:
            raise ValueError("truncated snappy frame header")
        kind = data[pos]
        length = data[pos + 1] | (data[pos + 2] << 8) | (data[pos + 3] << 16)
        start, end = pos + 4, pos + 4 + length
        if end > n:
            raise ValueError("truncated snappy frame")
        if kind == 0x00:  # compressed: crc32c[4] ‖ raw snappy block (uvarint decoded length first)
            decoded = decoded_len(memoryview(data)[start + 4 : end])
            if decoded is None:
                raise ValueError("bad uvarint")
            total += decoded
        elif kind == 0x01:  # uncompressed: crc32c[4] ‖ data
            total += max(0, length - 4)
        elif 0x02 <= kind <= 0x7F:
            raise ValueError(f"reserved unskippable snappy chunk 0x{kind:02x}")
        pos = end
    return total


def decode_response(
    data: bytes, version: BlockVersion | None = None
) -> tuple[int, ExecutionPayloadEnvelope | None]:
    """Parse a whole response → (result code, envelope on success).

    ``version`` is the payload version the *client* expects at that number (from its rollup config);
    ``None`` tries the two layouts the response version allows (V2 then V1, or V4 then V3).
    Raises ValueError for a malformed success response.
    """
    if not data:
        raise ValueError("empty response")
    code = data[0]
    if code != RESULT_SUCCESS:
        return code, None
    if len(data) < 5:
        raise ValueError("success response without version")
    resp_version = _U32.unpack_from(data, 1)[0]
    frame = data[5:]
    if framed_decoded_length(frame) > MAX_RESPONSE_SIZE:
        raise ValueError("response too large after decompression")
    try:
        body = bytes(cramjam.snappy.decompress(frame))
    except Exception as exc:
        raise ValueError(f"bad snappy framed body: {exc}") from None
    if resp_version == 0:
        candidates = [BlockVersion.V2, BlockVersion.V1]
    elif resp_version == 1:
        candidates = [BlockVersion.V4, BlockVersion.V3]
    else:
        raise ValueError(f"unknown response version {resp_version}")
    if version is not None:
        if BlockVersion(version) not in candidates:
            raise ValueError(
                f"response version {resp_version} does not carry a {BlockVersion(version).name} payload"
            )
        candidates = [BlockVersion(version)]
    error: Exception | None = None
    for v in candidates:
        try:
            return code, decode_envelope(body, v)
        except PayloadDecodeError as exc:
            error = exc
    raise ValueError(f"bad payload: {error}")


# ---------------------------------------------------------------------------------------------- server


class PayloadByNumberServer:
    """Serves ``payload_by_number`` from a :class:`PayloadStore`; :meth:`register` on a host."""

    def __init__(
        self,
        chain_id: int,
        store: PayloadStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        number_allowed: Callable[[int], bool] | None = None,
        limiter: RequestRateLimiter | None = None,
        read_timeout: float = READ_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        """``number_allowed(n)``: optional op-node range check (≥ genesis, ≤ wall-clock head); False → 2."""
        self.chain_id = chain_id
        self.store = store
        self.clock = clock
        self.number_allowed = number_allowed
        self.limiter = limiter if limiter is not None else RequestRateLimiter(clock())
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.served: dict[int, int] = {}  # result code → count (for metrics/tests)

    @property
    def protocol_ids(self) -> tuple[str, str]:
        return payload_by_number_protocols(self.chain_id)

    def register(self, host: Any) -> None:
        for pid in self.protocol_ids:
            host.set_stream_handler(pid, self.handle_stream)

    def respond(self, request: bytes) -> bytes:
        """Pure: request bytes → complete response bytes."""
        if len(request) < 8:
            return bytes([RESULT_INVALID_REQUEST])
        number = _U64.unpack_from(request, 0)[0]
        try:
            if self.number_allowed is not None and not self.number_allowed(number):
                return bytes([RESULT_INVALID_REQUEST])
            found = self.store.get_by_number(number)
            if found is None:
                return bytes([RESULT_NOT_FOUND])
            envelope, version = found
            if envelope.execution_payload.block_number != number:
                log.warning(
                    "payload_store_wrong_block", got=envelope.execution_payload.block_number, want=number
                )
                return bytes([RESULT_NOT_FOUND])
            return encode_success(envelope, version)
        except Exception:
            log.exception("payload_by_number_failed", number=number)
            return bytes([RESULT_UNKNOWN_ERROR])

    async def handle_stream(self, stream: Any) -> None:
        peer = str(getattr(getattr(stream, "muxed_conn", None), "peer_id", "?"))
        try:
            delay = self.limiter.reserve(peer, self.clock())
            if delay is None:
                log.debug("payload_by_number_throttled", peer=peer)
                await _reset(stream)
                return
            if delay > 0:
                await trio.sleep(delay)
            request = b""
            with trio.move_on_after(self.read_timeout):
                request = await _read_at_most(stream, 8)
            response = self.respond(request)
            self.served[response[0]] = self.served.get(response[0], 0) + 1
            with trio.move_on_after(self.write_timeout) as scope:
                await stream.write(response)
                await stream.close()
            if scope.cancelled_caught:
                await _reset(stream)
        except Exception as exc:
            log.debug("payload_by_number_stream_failed", peer=peer, error=str(exc))
            await _reset(stream)


async def _read_at_most(stream: Any, limit: int) -> bytes:
    """Read until ``limit`` bytes or EOF (never more than ``limit``)."""
    buf = bytearray()
    while len(buf) < limit:
        try:
            chunk = await stream.read(limit - len(buf))
        except EOFError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------- client


async def request_payload_by_number(
    host: Any,
    peer_id: Any,
    chain_id: int,
    number: int,
    *,
    version: BlockVersion | None = None,
    protocols: tuple[str, ...] | None = None,
    request_timeout: float = 10.0,
) -> tuple[int, ExecutionPayloadEnvelope | None]:
    """Ask ``peer_id`` for block ``number`` → (result code, envelope on success). For tests and tools.

    ``protocols`` defaults to both ids (op-node's first). Raises ``trio.TooSlowError`` after
    ``request_timeout`` and ValueError for a malformed response.
    """
    ids = protocols if protocols is not None else payload_by_number_protocols(chain_id)
    with trio.fail_after(request_timeout):
        stream = await host.new_stream(peer_id, list(ids))
        try:
            await stream.write(_U64.pack(number))
            await stream.close_write()
            data = await _read_at_most(stream, MAX_RESPONSE_SIZE + 5)
        finally:
            try:
                await stream.close()
            except Exception:
                pass
    return decode_response(data, version)
