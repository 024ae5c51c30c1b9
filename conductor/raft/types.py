"""Value types shared by the sans-IO Raft core, its storage and its transport.

The contract between the core (`conductor.raft.core.RaftCore`) and the I/O shell
that drives it (storage + transport + timers) is etcd-raft's Ready/advance loop:

1. Inputs: the shell feeds the core `tick(now)` (at or after `next_deadline()`),
   `step(msg, now)` for every message received, `report_unreachable(peer, now)` when
   the transport lost messages or its connection to a peer, and the API calls
   (`propose`, membership changes, `transfer_leadership`, `read_index`, `compact`,
   `bootstrap`).
   None of them does I/O; they only change memory and queue output.
2. `ready()` returns a `Ready` (or None when there is nothing to do). The shell
   handles it **in this order**:

   a. Persist, then fsync, all of:
      - `snapshot_to_save` (if set): write the snapshot; afterwards log entries with
        index <= `compact_to` may be discarded (they are covered by the snapshot);
      - `truncate_from` (if set): delete every log entry with index >= truncate_from;
      - `entries_to_append`: append them (their indices follow the log's last index
        after the truncation);
      - `hard_state` (if set): term, vote and commit index.
      `compact_to` may also be set without a snapshot being saved in this Ready
      (it never exceeds the index of the newest saved snapshot).
   b. Only after the fsync: send `messages` (best effort; losing any is fine).
      Exception: when `send_before_persist` is set (a leader whose term and vote are
      already durable), the shell may send `messages` before or while persisting, so the
      leader's own fsync overlaps the followers' (thesis §10.2.1). The core then counts
      the leader in the commit quorum only for entries made durable by an `advance`.
   c. If `snapshot_to_apply` is set, reset the state machine from its data.
      Then apply `committed_entries` in order (NOOP and CONFIG entries carry no
      state-machine payload but are still "applied"; their index matters).
   d. Answer the `read_states` (the state machine has applied >= their index) and
      fail the reads in `dropped_reads` (leadership was lost).
   e. Call `advance(ready)`.

   `ready()` must not be called again before `advance()` of the previous Ready.
3. A proposal's outcome: `propose()` returns the entry index. The proposal
   succeeded when a committed entry arrives with that index *and* the term that
   was current when proposing (`status().term`); a committed entry at that index
   with another term, or losing leadership (`soft_state.role` changes), means it
   failed or its fate is unknown.
4. At start the shell hands the core a `RestoredState` read from storage. It also
   restores the state machine from `RestoredState.snapshot` itself (if any); the
   core then re-delivers committed entries after the snapshot index.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.raft.messages import Message


class EntryKind(IntEnum):
    NORMAL = 0
    CONFIG = 1  # data = encode_configuration(Configuration)
    NOOP = 2  # appended by every new leader; empty data


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind
    data: bytes


class Suffrage(IntEnum):
    VOTER = 0
    NONVOTER = 1


@dataclass(frozen=True, slots=True)
class Server:
    id: str
    address: str
    suffrage: Suffrage


@dataclass(frozen=True, slots=True)
class Configuration:
    """Cluster membership. `index` is the log index of the entry that set it (0 = none);
    it is op-conductor's membership "version"."""

    servers: tuple[Server, ...]
    index: int

    def get(self, server_id: str) -> Server | None:
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    def voters(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.servers if s.suffrage == Suffrage.VOTER)

    def is_voter(self, server_id: str) -> bool:
        s = self.get(server_id)
        return s is not None and s.suffrage == Suffrage.VOTER


EMPTY_CONFIGURATION = Configuration(servers=(), index=0)


@dataclass(frozen=True, slots=True)
class HardState:
    term: int
    vote: str | None
    commit: int


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int
    term: int
    configuration: Configuration


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class RestoredState:
    """What storage hands the core at start. `entries` are the retained log entries,
    contiguous; without a snapshot they start at index 1, with one they start at or
    before snapshot.meta.index + 1 (entries kept behind the snapshot as `trailing_logs`)."""

    hard_state: HardState
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]


EMPTY_STATE = RestoredState(hard_state=HardState(term=0, vote=None, commit=0), snapshot=None, entries=())


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the shell cares about (leader notifications)."""

    role: Role
    leader_id: str | None
    term: int


@dataclass(frozen=True, slots=True)
class ReadState:
    """A confirmed linearizable read: the state machine has applied >= `index`."""

    ctx: bytes
    index: int


@dataclass(frozen=True, slots=True)
class RaftConfig:
    heartbeat_interval: float = 0.2
    election_timeout: float = 1.0  # randomised per election in [T, 2T)
    lease_timeout: float = 0.5
    max_append_entries: int = 64  # entries per AppendEntries message
    max_inflight: int = 64  # AppendEntries messages in flight per follower (pipelining window)
    max_batch_bytes: int = 4 * 1024 * 1024
    snapshot_threshold: int = 8192  # applied entries since the last snapshot before one is due
    trailing_logs: int = 10240  # entries kept in the log behind a snapshot
    # Memory cap for large entries (payload bytes): a snapshot is also due once the applied
    # entries since the last one hold this many bytes, and at most this many bytes of
    # entries are kept behind a snapshot (whichever of count and bytes keeps fewer).
    snapshot_threshold_bytes: int = 64 * 1024 * 1024
    trailing_logs_bytes: int = 64 * 1024 * 1024
    pre_vote: bool = True
    check_quorum: bool = True
    # Fast failover (see RaftCore.report_unreachable): a follower told that its leader is
    # unreachable campaigns (pre-vote) once the leader has been silent for
    # `failover_silence` heartbeat intervals, plus a random delay in
    # [failover_delay_min, failover_delay_max), instead of after the election timeout.
    fast_failover: bool = True
    failover_silence: float = 1.5  # in heartbeat intervals; must exceed 1 + worst delivery jitter
    failover_delay_min: float = 0.05
    failover_delay_max: float = 0.25


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    term: int
    commit: int
    applied: int
    last_index: int
    role: Role
    leader_id: str | None
    leader_address: str | None
    configuration: Configuration
    lease_valid: bool
    transfer_in_progress: bool


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the shell; see the module docstring for the order."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    snapshot_to_save: Snapshot | None = None
    compact_to: int | None = None
    truncate_from: int | None = None
    entries_to_append: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    send_before_persist: bool = False  # `messages` may be sent before/while persisting
    snapshot_to_apply: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    dropped_reads: tuple[bytes, ...] = ()


# ---------------------------------------------------------------- errors


class RaftError(Exception):
    """Base class of errors the core raises to API callers."""


class NotLeaderError(RaftError):
    def __init__(self, msg: str = "node is not the leader") -> None:
        super().__init__(msg)


class LeadershipTransferInProgressError(RaftError):
    def __init__(self, msg: str = "leadership transfer in progress") -> None:
        super().__init__(msg)


class ConfigurationChangedError(RaftError):
    def __init__(self, prev_index: int, latest_index: int) -> None:
        super().__init__(f"configuration changed since {prev_index} (latest is {latest_index})")
        self.prev_index = prev_index
        self.latest_index = latest_index


class ConfigChangeInProgressError(RaftError):
    def __init__(self, msg: str = "configuration change already in progress") -> None:
        super().__init__(msg)


class CantBootstrapError(RaftError):
    def __init__(self, msg: str = "bootstrap only works on new clusters") -> None:
        super().__init__(msg)
