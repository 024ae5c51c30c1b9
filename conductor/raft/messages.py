"""Raft wire messages (frozen dataclasses) and their binary codec.

Every message has `src`, `dst` and `term`. The codec is a hand-written struct
layout (big-endian), no pickle/JSON: entry payloads are copied once as raw bytes so
multi-megabyte entries encode and decode in about a millisecond.

Frame layout: version u8 | tag u8 | src str | dst str | term u64 | body.
`str` is u16 length + UTF-8; `bytes` is u32 length + raw bytes. Any malformed input
to a `decode_*` function raises `MessageDecodeError` (a ValueError) and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from conductor.raft.types import (
    Configuration,
    Entry,
    EntryKind,
    Server,
    Snapshot,
    SnapshotMeta,
    Suffrage,
)

WIRE_VERSION = 1

_T = TypeVar("_T")


class MessageDecodeError(ValueError):
    """The bytes are not a valid encoding."""


@dataclass(frozen=True, slots=True)
class PreVoteRequest:
    """`term` is the term the sender would campaign in (its term + 1); nobody's term changes."""

    src: str
    dst: str
    term: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class PreVoteResponse:
    src: str
    dst: str
    term: int
    granted: bool


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """`transfer` marks a campaign started by TimeoutNow: it overrides the leader-stickiness rule."""

    src: str
    dst: str
    term: int
    last_index: int
    last_term: int
    transfer: bool


@dataclass(frozen=True, slots=True)
class VoteResponse:
    src: str
    dst: str
    term: int
    granted: bool


@dataclass(frozen=True, slots=True)
class AppendEntries:
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """On success `index` is the last index known to match. On rejection `index` is the
    rejected prev_index and (`hint_index`, `hint_term`) tells the leader where to retry:
    the follower's last index if its log is shorter, else the first index of the
    conflicting term (`hint_term` = that term)."""

    src: str
    dst: str
    term: int
    success: bool
    index: int
    hint_index: int
    hint_term: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader liveness + commit propagation (commit is min(match, commit) of the follower).
    `ctx` identifies the heartbeat round (used by read-index)."""

    src: str
    dst: str
    term: int
    commit: int
    ctx: int


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    src: str
    dst: str
    term: int
    ctx: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    src: str
    dst: str
    term: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """`index` is the follower's last log index after handling the snapshot."""

    src: str
    dst: str
    term: int
    index: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: the receiver starts an election at once (skipping pre-vote)."""

    src: str
    dst: str
    term: int


Message = (
    PreVoteRequest
    | PreVoteResponse
    | VoteRequest
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
)

_TAGS: dict[type, int] = {
    PreVoteRequest: 1,
    PreVoteResponse: 2,
    VoteRequest: 3,
    VoteResponse: 4,
    AppendEntries: 5,
    AppendResponse: 6,
    Heartbeat: 7,
    HeartbeatResponse: 8,
    InstallSnapshot: 9,
    InstallSnapshotResponse: 10,
    TimeoutNow: 11,
}

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HDR = struct.Struct(">BB")
_ENTRY_HDR = struct.Struct(">QQBI")
_QQ = struct.Struct(">QQ")
_BQQQ = struct.Struct(">BQQQ")
_QQQQ = struct.Struct(">QQQQ")


# ---------------------------------------------------------------- encoding helpers


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 0xFFFF:
        raise ValueError("string too long for the wire format")
    return _U16.pack(len(b)) + b


def _blob(b: bytes) -> list[bytes]:
    if len(b) > 0xFFFFFFFF:
        raise ValueError("blob too long for the wire format")
    return [_U32.pack(len(b)), b]


def _entry_parts(e: Entry, out: list[bytes]) -> None:
    out.append(_ENTRY_HDR.pack(e.term, e.index, int(e.kind), len(e.data)))
    out.append(e.data)


def encode_entry_parts(e: Entry) -> list[bytes]:
    """The wire encoding of `e` as [header, data] pieces (``b"".join`` of them equals
    `encode_entry(e)`): lets storage checksum and ``writev`` a multi-MB entry without
    concatenating it into a new buffer."""
    out: list[bytes] = []
    _entry_parts(e, out)
    return out


def encode_entry(e: Entry) -> bytes:
    return b"".join(encode_entry_parts(e))


def encode_configuration(c: Configuration) -> bytes:
    out = [_U64.pack(c.index), _U16.pack(len(c.servers))]
    for s in c.servers:
        out.append(_str(s.id))
        out.append(_str(s.address))
        out.append(_U8.pack(int(s.suffrage)))
    return b"".join(out)


def _snapshot_meta_parts(m: SnapshotMeta, out: list[bytes]) -> None:
    out.append(_QQ.pack(m.index, m.term))
    out.extend(_blob(encode_configuration(m.configuration)))


def encode_message(msg: Message) -> bytes:
    tag = _TAGS.get(type(msg))
    if tag is None:
        raise TypeError(f"not a raft message: {type(msg).__name__}")
    out: list[bytes] = [_HDR.pack(WIRE_VERSION, tag), _str(msg.src), _str(msg.dst), _U64.pack(msg.term)]
    match msg:
        case PreVoteRequest() | VoteRequest():
            out.append(_QQ.pack(msg.last_index, msg.last_term))
            if isinstance(msg, VoteRequest):
                out.append(_U8.pack(1 if msg.transfer else 0))
        case PreVoteResponse() | VoteResponse():
            out.append(_U8.pack(1 if msg.granted else 0))
        case AppendEntries():
            out.append(_QQQQ.pack(msg.prev_index, msg.prev_term, msg.commit, len(msg.entries)))
            for e in msg.entries:
                _entry_parts(e, out)
        case AppendResponse():
            out.append(_BQQQ.pack(1 if msg.success else 0, msg.index, msg.hint_index, msg.hint_term))
        case Heartbeat():
            out.append(_QQ.pack(msg.commit, msg.ctx))
        case HeartbeatResponse():
            out.append(_U64.pack(msg.ctx))
        case InstallSnapshot():
            _snapshot_meta_parts(msg.snapshot.meta, out)
            out.extend(_blob(msg.snapshot.data))
        case InstallSnapshotResponse():
            out.append(_U64.pack(msg.index))
        case TimeoutNow():
            pass
    return b"".join(out)


# ---------------------------------------------------------------- decoding


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf).cast("B") if isinstance(buf, memoryview) else memoryview(buf)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise MessageDecodeError(f"truncated input: need {n} bytes at offset {self.pos}")
        mv = self.buf[self.pos : end]
        self.pos = end
        return mv

    def unpack(self, st: struct.Struct) -> tuple[int, ...]:
        return st.unpack(self.take(st.size))

    def u8(self) -> int:
        return self.unpack(_U8)[0]

    def u16(self) -> int:
        return self.unpack(_U16)[0]

    def u32(self) -> int:
        return self.unpack(_U32)[0]

    def u64(self) -> int:
        return self.unpack(_U64)[0]

    def flag(self) -> bool:
        v = self.u8()
        if v > 1:
            raise MessageDecodeError(f"bad boolean {v}")
        return v == 1

    def str(self) -> str:
        n = self.u16()
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(f"bad utf-8: {exc}") from None

    def blob(self) -> bytes:
        return bytes(self.take(self.u32()))

    def entry(self) -> Entry:
        term, index, kind, n = self.unpack(_ENTRY_HDR)
        try:
            k = EntryKind(kind)
        except ValueError:
            raise MessageDecodeError(f"bad entry kind {kind}") from None
        return Entry(term=term, index=index, kind=k, data=bytes(self.take(n)))

    def configuration(self) -> Configuration:
        index = self.u64()
        count = self.u16()
        servers: list[Server] = []
        seen: set[str] = set()
        for _ in range(count):
            sid = self.str()
            addr = self.str()
            suf = self.u8()
            try:
                suffrage = Suffrage(suf)
            except ValueError:
                raise MessageDecodeError(f"bad suffrage {suf}") from None
            if sid in seen:
                raise MessageDecodeError(f"duplicate server id {sid!r}")
            seen.add(sid)
            servers.append(Server(id=sid, address=addr, suffrage=suffrage))
        return Configuration(servers=tuple(servers), index=index)

    def snapshot_meta(self) -> SnapshotMeta:
        index, term = self.unpack(_QQ)
        sub = _Reader(self.take(self.u32()))
        conf = sub.configuration()
        sub.done()
        return SnapshotMeta(index=index, term=term, configuration=conf)

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise MessageDecodeError(f"{len(self.buf) - self.pos} trailing bytes")


def _decode_whole(buf: bytes | bytearray | memoryview, fn_name: str, read: Callable[[_Reader], _T]) -> _T:
    """`read` one value that must span all of `buf`."""
    if not isinstance(buf, bytes | bytearray | memoryview):
        raise MessageDecodeError(f"{fn_name}: expected bytes, got {type(buf).__name__}")
    try:
        r = _Reader(buf)
    except (TypeError, ValueError) as exc:
        raise MessageDecodeError(f"{fn_name}: {exc}") from None
    value = read(r)
    r.done()
    return value


def decode_entry(buf: bytes | bytearray | memoryview) -> Entry:
    return _decode_whole(buf, "decode_entry", _Reader.entry)


def decode_configuration(buf: bytes | bytearray | memoryview) -> Configuration:
    return _decode_whole(buf, "decode_configuration", _Reader.configuration)


def decode_message(buf: bytes | bytearray | memoryview) -> Message:
    return _decode_whole(buf, "decode_message", _read_message)


def _read_message(r: _Reader) -> Message:
    version, tag = r.unpack(_HDR)
    if version != WIRE_VERSION:
        raise MessageDecodeError(f"unsupported wire version {version}")
    src = r.str()
    dst = r.str()
    term = r.u64()
    msg: Message
    if tag == 1:
        li, lt = r.unpack(_QQ)
        msg = PreVoteRequest(src, dst, term, li, lt)
    elif tag == 2:
        msg = PreVoteResponse(src, dst, term, r.flag())
    elif tag == 3:
        li, lt = r.unpack(_QQ)
        msg = VoteRequest(src, dst, term, li, lt, r.flag())
    elif tag == 4:
        msg = VoteResponse(src, dst, term, r.flag())
    elif tag == 5:
        prev_index, prev_term, commit, count = r.unpack(_QQQQ)
        entries: list[Entry] = []
        for _ in range(count):
            entries.append(r.entry())
        msg = AppendEntries(src, dst, term, prev_index, prev_term, tuple(entries), commit)
    elif tag == 6:
        ok, index, hint_index, hint_term = r.unpack(_BQQQ)
        if ok > 1:
            raise MessageDecodeError(f"bad boolean {ok}")
        msg = AppendResponse(src, dst, term, ok == 1, index, hint_index, hint_term)
    elif tag == 7:
        commit, ctx = r.unpack(_QQ)
        msg = Heartbeat(src, dst, term, commit, ctx)
    elif tag == 8:
        msg = HeartbeatResponse(src, dst, term, r.u64())
    elif tag == 9:
        meta = r.snapshot_meta()
        msg = InstallSnapshot(src, dst, term, Snapshot(meta=meta, data=r.blob()))
    elif tag == 10:
        msg = InstallSnapshotResponse(src, dst, term, r.u64())
    elif tag == 11:
        msg = TimeoutNow(src, dst, term)
    else:
        raise MessageDecodeError(f"unknown message tag {tag}")
    return msg
