"""State shared by every part of the sans-IO Raft core: persistent and volatile
fields, configuration tracking, role transitions, and the Ready/advance hand-off
to the I/O shell (see `conductor.raft.types` for the contract).

`RaftCore` (core.py) is assembled from this base, the leader half (core_leader.py)
and the election/follower half (core.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from conductor.raft.core_log import RaftLog
from conductor.raft.messages import Message, decode_configuration
from conductor.raft.progress import Progress
from conductor.raft.types import (
    EMPTY_CONFIGURATION,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    RaftConfig,
    ReadState,
    Ready,
    RestoredState,
    Role,
    Snapshot,
    SoftState,
)

NEVER = float("-inf")


@dataclass(slots=True)
class PendingRead:
    ctx: bytes
    round: int  # heartbeat round that must be acknowledged by a quorum
    index: int | None  # read index; None until the leader has committed an entry of its term
    acks: set[str] = field(default_factory=set)


class CoreBase:
    """Fields and transitions; no message handling here."""

    def __init__(
        self, id: str, config: RaftConfig, restored: RestoredState, rng: random.Random, now: float
    ) -> None:
        self.id = id
        self.cfg = config
        self.rng = rng
        self.now = now  # time of the latest input
        hs = restored.hard_state
        self.term = hs.term
        self.vote: str | None = hs.vote
        snap = restored.snapshot
        self.snapshot: Snapshot | None = snap
        snap_index = snap.meta.index if snap else 0
        if restored.entries:
            first = restored.entries[0].index
            if first > snap_index + 1:
                raise ValueError(f"restored log starts at {first}, after the snapshot at {snap_index}")
            offset = first - 1
            offset_term = snap.meta.term if snap and snap.meta.index == offset else (0 if offset == 0 else -1)
            self.log = RaftLog(offset, offset_term, restored.entries)
        else:
            self.log = RaftLog(snap_index, snap.meta.term if snap else 0)
        self.commit = max(hs.commit, snap_index)
        if self.commit > self.log.last_index():
            raise ValueError(f"commit {self.commit} beyond the restored log ({self.log.last_index()})")
        # configurations in log order; [0] is the one in force at the log's start
        base = snap.meta.configuration if snap else EMPTY_CONFIGURATION
        self.configs: list[Configuration] = [base]
        for e in self.log.entries:
            if e.kind == EntryKind.CONFIG and e.index > base.index:
                self.configs.append(self._config_of(e))
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.applied = snap_index  # advanced by advance()
        self._applied_handed = snap_index  # last index handed to the shell to apply
        # durability bookkeeping
        self._unstable_from = self.log.last_index() + 1
        # last log index known to be on our own disk (the leader counts itself in the
        # commit quorum up to here only: its appends are persisted in parallel)
        self.durable_index = self.log.last_index()
        self._needs_truncate = False
        self._snap_to_save: Snapshot | None = None
        self._snap_to_apply: Snapshot | None = None
        self._compact_to: int | None = None
        self._prev_hard = HardState(self.term, self.vote, self.commit)
        self._prev_soft = SoftState(self.role, None, self.term)
        self._outbox: list[Message] = []
        # timers
        self.election_deadline = now
        self.last_leader_contact = NEVER
        self.leader_lost = False  # the transport reported `leader_id` unreachable since its last contact
        # candidate
        self.votes: dict[str, bool] = {}
        # leader
        self.progress: dict[str, Progress] = {}
        self.heartbeat_deadline = now
        self.hb_round = 0
        self.transfer_target: str | None = None
        self.transfer_deadline = now
        self.reads: list[PendingRead] = []
        self._confirmed_reads: list[ReadState] = []
        self._dropped_reads: list[bytes] = []
        self.reset_election_timer(now)

    # ------------------------------------------------------------ configuration

    @staticmethod
    def _config_of(e: Entry) -> Configuration:
        c = decode_configuration(e.data)
        return Configuration(servers=c.servers, index=e.index)

    @property
    def latest_config(self) -> Configuration:
        return self.configs[-1]

    def config_at(self, index: int) -> Configuration:
        for c in reversed(self.configs):
            if c.index <= index:
                return c
        return self.configs[0]

    def is_voter(self) -> bool:
        return self.latest_config.is_voter(self.id)

    def sole_voter(self) -> bool:
        return self.latest_config.voters() == (self.id,)

    def config_change_pending(self) -> bool:
        return self.latest_config.index > self.commit

    # ------------------------------------------------------------ log mutation

    def append_entry(self, e: Entry) -> None:
        self.log.append(e)
        if e.kind == EntryKind.CONFIG:
            self.configs.append(self._config_of(e))
            self.on_config_change()

    def truncate_log(self, index: int) -> None:
        if index <= self.commit:
            raise AssertionError(f"{self.id}: truncating committed entry {index} (commit {self.commit})")
        self.log.truncate_from(index)
        self.durable_index = min(self.durable_index, index - 1)
        if index < self._unstable_from:
            self._unstable_from = index
            self._needs_truncate = True
        before = len(self.configs)
        while len(self.configs) > 1 and self.configs[-1].index >= index:
            self.configs.pop()
        if len(self.configs) != before:
            self.on_config_change()

    def install_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by `snap` (a follower catching up)."""
        self.log.reset(snap.meta.index, snap.meta.term)
        self.durable_index = min(self.durable_index, snap.meta.index)
        self.snapshot = snap
        self.commit = snap.meta.index
        self.configs = [snap.meta.configuration]
        self._unstable_from = snap.meta.index + 1
        self._needs_truncate = True
        self._snap_to_save = snap
        self._snap_to_apply = snap
        self._compact_to = snap.meta.index
        self.on_config_change()

    def on_config_change(self) -> None:
        """Hook: the latest configuration changed (the leader syncs its progress map)."""

    def on_durable(self) -> None:
        """Hook: `durable_index` may have advanced (the leader may commit)."""

    # ------------------------------------------------------------ timers and roles

    def reset_election_timer(self, now: float) -> None:
        if self.sole_voter():
            self.election_deadline = now
        else:
            t = self.cfg.election_timeout
            self.election_deadline = now + t + self.rng.random() * t

    def send(self, msg: Message) -> None:
        self._outbox.append(msg)

    def become_follower(self, term: int, leader: str | None, now: float, reset_timer: bool = True) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        if self.role == Role.LEADER:
            self.leave_leadership()
        self.role = Role.FOLLOWER
        if leader != self.leader_id:
            self.leader_lost = False
        self.leader_id = leader
        self.votes = {}
        if reset_timer or self.election_deadline < now:
            self.reset_election_timer(now)

    def leave_leadership(self) -> None:
        self.progress = {}
        self.transfer_target = None
        self._dropped_reads.extend(r.ctx for r in self.reads)
        self.reads = []

    # ------------------------------------------------------------ Ready / advance

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.commit)

    def soft_state(self) -> SoftState:
        return SoftState(self.role, self.leader_id, self.term)

    def has_ready(self) -> bool:
        return bool(
            self._outbox
            or self._unstable_from <= self.log.last_index()
            or self._needs_truncate
            or self._snap_to_save is not None
            or self._compact_to is not None
            or self.commit > self._applied_handed
            or self._confirmed_reads
            or self._dropped_reads
            or self.hard_state() != self._prev_hard
            or self.soft_state() != self._prev_soft
        )

    def ready(self) -> Ready | None:
        """The next batch of work for the shell, or None. Call `advance` when done."""
        if not self.has_ready():
            return None
        hs = self.hard_state()
        ss = self.soft_state()
        last = self.log.last_index()
        entries = tuple(self.log.slice(self._unstable_from, last)) if self._unstable_from <= last else ()
        snap_apply = self._snap_to_apply
        base = self._applied_handed
        if snap_apply is not None:
            base = max(base, snap_apply.meta.index)
        committed = tuple(self.log.slice(base + 1, self.commit)) if self.commit > base else ()
        new_applied = committed[-1].index if committed else base
        reads = tuple(r for r in self._confirmed_reads if r.index <= new_applied)
        self._confirmed_reads = [r for r in self._confirmed_reads if r.index > new_applied]
        # a leader whose term and vote are already durable sends nothing that depends on
        # this Ready being persisted (its own entries count for commit only once durable)
        early = (
            self.role == Role.LEADER
            and bool(self._outbox)
            and (hs.term, hs.vote) == (self._prev_hard.term, self._prev_hard.vote)
        )
        rd = Ready(
            soft_state=ss if ss != self._prev_soft else None,
            hard_state=hs if hs != self._prev_hard else None,
            snapshot_to_save=self._snap_to_save,
            compact_to=self._compact_to,
            truncate_from=self._unstable_from if self._needs_truncate else None,
            entries_to_append=entries,
            messages=tuple(self._outbox),
            send_before_persist=early,
            snapshot_to_apply=snap_apply,
            committed_entries=committed,
            read_states=reads,
            dropped_reads=tuple(self._dropped_reads),
        )
        self._prev_hard = hs
        self._prev_soft = ss
        self._unstable_from = last + 1
        self._needs_truncate = False
        self._snap_to_save = None
        self._snap_to_apply = None
        self._compact_to = None
        self._applied_handed = new_applied
        self._outbox = []
        self._dropped_reads = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The shell has persisted, sent and applied `rd`."""
        if rd.snapshot_to_save is not None:
            self.durable_index = max(self.durable_index, rd.snapshot_to_save.meta.index)
        if rd.entries_to_append:
            last = rd.entries_to_append[-1]
            # unless a conflicting append replaced it since ready() (then the truncation
            # already lowered durable_index and a later Ready persists the new entries)
            if self.log.term_at(last.index) == last.term:
                self.durable_index = max(self.durable_index, last.index)
            self.on_durable()
        if rd.snapshot_to_apply is not None:
            self.applied = max(self.applied, rd.snapshot_to_apply.meta.index)
        if rd.committed_entries:
            self.applied = max(self.applied, rd.committed_entries[-1].index)
