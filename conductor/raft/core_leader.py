"""The leader half of the Raft core: replication (probe / pipelined replicate /
snapshot), commit by counting voters' match indices (current-term entries only),
check-quorum and the leader lease, heartbeats, read-index, leadership transfer,
and the leader-only API (propose, membership changes)."""

from __future__ import annotations

from conductor.raft.core_base import NEVER, CoreBase, PendingRead
from conductor.raft.membership import ChangeOp, next_configuration, quorum_size, quorum_value
from conductor.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
    encode_configuration,
)
from conductor.raft.progress import Progress, ProgressState
from conductor.raft.types import (
    ConfigChangeInProgressError,
    ConfigurationChangedError,
    Entry,
    EntryKind,
    LeadershipTransferInProgressError,
    NotLeaderError,
    RaftError,
    ReadState,
    Role,
)


class LeaderMixin(CoreBase):
    # ------------------------------------------------------------ transitions

    def become_leader(self, now: float) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self.votes = {}
        self.progress = {}
        self.transfer_target = None
        self.reads = []
        self.hb_round = 0
        self.sync_progress(now)
        self.heartbeat_deadline = now + self.cfg.heartbeat_interval
        self.append_entry(Entry(self.term, self.log.last_index() + 1, EntryKind.NOOP, b""))
        self.bcast_append(now)
        self.maybe_commit(now)

    def sync_progress(self, now: float) -> None:
        """Track every server of the latest configuration (removed ones are kept
        until their removal commits so they learn about it)."""
        for s in self.latest_config.servers:
            if s.id != self.id and s.id not in self.progress:
                self.progress[s.id] = Progress(next=self.log.last_index() + 1, last_contact=now)

    def on_config_change(self) -> None:
        if self.role == Role.LEADER:
            self.sync_progress(self.now)

    # ------------------------------------------------------------ lease / check-quorum

    def quorum_contact(self, now: float) -> float:
        """The latest time by which a quorum of voters had been heard from."""
        t = quorum_value(
            now if v == self.id else (self.progress[v].last_contact if v in self.progress else NEVER)
            for v in self.latest_config.voters()
        )
        return NEVER if t is None else t

    def lease_valid(self, now: float) -> bool:
        if self.role != Role.LEADER:
            return False
        if not self.cfg.check_quorum:
            return True
        return now < self.quorum_contact(now) + self.cfg.lease_timeout

    def leader_tick(self, now: float) -> None:
        if self.cfg.check_quorum and not self.lease_valid(now):
            self.become_follower(self.term, None, now)
            return
        if self.transfer_target is not None and now >= self.transfer_deadline:
            self.transfer_target = None
        if now >= self.heartbeat_deadline:
            self.bcast_heartbeat()
            self.heartbeat_deadline = now + self.cfg.heartbeat_interval

    def leader_deadline(self, now: float) -> float:
        d = self.heartbeat_deadline
        if self.cfg.check_quorum:
            d = min(d, self.quorum_contact(now) + self.cfg.lease_timeout)
        if self.transfer_target is not None:
            d = min(d, self.transfer_deadline)
        return d

    # ------------------------------------------------------------ replication

    def send_append(self, peer: str, pr: Progress, now: float, allow_empty: bool = False) -> bool:
        """Send the next AppendEntries (or InstallSnapshot) to `peer` if allowed."""
        if pr.state == ProgressState.SNAPSHOT:
            if now - pr.snapshot_sent_at < self.cfg.election_timeout:
                return False
            pr.become_probe()
        if pr.paused(self.cfg.max_inflight):
            return False
        last = self.log.last_index()
        pr.next = min(pr.next, last + 1)
        prev = pr.next - 1
        prev_term = self.log.term_at(prev)
        if prev_term is None or prev < self.log.offset:
            snap = self.snapshot
            if snap is None:
                raise AssertionError(f"{self.id}: entry {prev} compacted but no snapshot")
            pr.become_snapshot(snap.meta.index, now)
            self.send(InstallSnapshot(self.id, peer, self.term, snap))
            return True
        entries = self.log.slice(pr.next, last, self.cfg.max_append_entries, self.cfg.max_batch_bytes)
        if not entries and pr.state == ProgressState.REPLICATE:
            if allow_empty:
                # in-flight appends may have been lost: an empty append at `next` either
                # succeeds or is rejected and sends us back to probing
                self.send(AppendEntries(self.id, peer, self.term, prev, prev_term, (), self.commit))
            return False
        self.send(AppendEntries(self.id, peer, self.term, prev, prev_term, tuple(entries), self.commit))
        if pr.state == ProgressState.REPLICATE:
            pr.next = entries[-1].index + 1
            pr.inflight.append(entries[-1].index)
        else:
            pr.probe_sent = True
        return True

    def send_append_all(self, peer: str, pr: Progress, now: float) -> None:
        while self.send_append(peer, pr, now):
            if pr.state != ProgressState.REPLICATE or pr.next > self.log.last_index():
                break

    def bcast_append(self, now: float) -> None:
        for peer, pr in self.progress.items():
            self.send_append_all(peer, pr, now)

    def bcast_heartbeat(self) -> None:
        self.hb_round += 1
        for peer, pr in self.progress.items():
            self.send(Heartbeat(self.id, peer, self.term, min(pr.match, self.commit), self.hb_round))

    def on_durable(self) -> None:
        if self.role == Role.LEADER:
            self.maybe_commit(self.now)

    def maybe_commit(self, now: float) -> bool:
        # the leader's own entries count once they are on its disk (sent in parallel)
        own = min(self.durable_index, self.log.last_index())
        n = quorum_value(
            own if v == self.id else (self.progress[v].match if v in self.progress else 0)
            for v in self.latest_config.voters()
        )
        if n is None or n <= self.commit or self.log.term_at(n) != self.term:
            return False
        self.commit = n
        self.after_commit(now)
        return True

    def after_commit(self, now: float) -> None:
        for r in self.reads:
            if r.index is None:
                r.index = self.commit
        self.release_reads()
        latest = self.latest_config
        if latest.index <= self.commit:
            for peer in [p for p in self.progress if latest.get(p) is None]:
                del self.progress[peer]
            if not latest.is_voter(self.id):
                # removed or demoted: step down once the change is committed
                self.become_follower(self.term, None, now)

    # ------------------------------------------------------------ responses

    def handle_append_response(self, m: AppendResponse, now: float) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.last_contact = now
        if m.success:
            if pr.maybe_update(m.index):
                if pr.state == ProgressState.PROBE:
                    pr.become_replicate()
                elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    pr.become_replicate()
                if self.maybe_commit(now) and self.role != Role.LEADER:
                    return
                self.send_append_all(m.src, pr, now)
                self.maybe_send_timeout_now(m.src, pr)
        else:
            hint = m.hint_index
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append_all(m.src, pr, now)

    def handle_heartbeat_response(self, m: HeartbeatResponse, now: float) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.last_contact = now
        if pr.state == ProgressState.PROBE:
            pr.probe_sent = False
        elif pr.state == ProgressState.REPLICATE and len(pr.inflight) >= self.cfg.max_inflight:
            pr.inflight.popleft()
        lagging = pr.match < self.log.last_index() or pr.state == ProgressState.SNAPSHOT
        if lagging and self.send_append(m.src, pr, now, allow_empty=True):
            self.send_append_all(m.src, pr, now)
        if self.latest_config.is_voter(m.src):
            for r in self.reads:
                if r.round <= m.ctx:
                    r.acks.add(m.src)
            self.release_reads()

    def handle_snapshot_response(self, m: InstallSnapshotResponse, now: float) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.last_contact = now
        pr.maybe_update(m.index)
        if pr.state == ProgressState.SNAPSHOT:
            pr.become_probe()
            pr.next = max(pr.next, pr.match + 1)
        if self.maybe_commit(now) and self.role != Role.LEADER:
            return
        self.send_append_all(m.src, pr, now)

    # ------------------------------------------------------------ read index

    def start_read(self, ctx: bytes) -> None:
        index = self.commit if self.log.term_at(self.commit) == self.term else None
        self.bcast_heartbeat()
        self.reads.append(PendingRead(ctx=ctx, round=self.hb_round, index=index, acks={self.id}))
        self.release_reads()

    def release_reads(self) -> None:
        voters = set(self.latest_config.voters())
        need = quorum_size(len(voters))
        keep: list[PendingRead] = []
        for r in self.reads:
            if r.index is not None and len(r.acks & voters) >= need:
                self._confirmed_reads.append(ReadState(r.ctx, r.index))
            else:
                keep.append(r)
        self.reads = keep

    # ------------------------------------------------------------ leader API

    def check_leader(self, now: float) -> None:
        """Raise NotLeaderError unless leading with a valid lease (stepping down if it lapsed)."""
        if self.role != Role.LEADER:
            raise NotLeaderError()
        if self.cfg.check_quorum and not self.lease_valid(now):
            self.become_follower(self.term, None, now)
            raise NotLeaderError()

    def check_can_propose(self, now: float) -> None:
        self.check_leader(now)
        if self.transfer_target is not None:
            raise LeadershipTransferInProgressError()

    def append_and_replicate(self, kind: EntryKind, data: bytes, now: float) -> int:
        index = self.log.last_index() + 1
        self.append_entry(Entry(self.term, index, kind, data))
        self.bcast_append(now)
        self.maybe_commit(now)
        return index

    def change_membership(
        self, op: ChangeOp, server_id: str, address: str, prev_index: int, now: float
    ) -> int:
        self.check_can_propose(now)
        if self.log.term_at(self.commit) != self.term:
            raise ConfigChangeInProgressError("leader has not committed an entry in its term yet")
        if self.config_change_pending():
            raise ConfigChangeInProgressError()
        latest = self.latest_config
        if prev_index != 0 and prev_index != latest.index:
            raise ConfigurationChangedError(prev_index, latest.index)
        index = self.log.last_index() + 1
        new = next_configuration(latest, op, server_id, address, index)
        return self.append_and_replicate(EntryKind.CONFIG, encode_configuration(new), now)

    def maybe_send_timeout_now(self, peer: str, pr: Progress) -> None:
        if self.transfer_target == peer and pr.match == self.log.last_index():
            self.send(TimeoutNow(self.id, peer, self.term))

    def start_transfer(self, target: str | None, now: float) -> str:
        if self.role != Role.LEADER:
            raise NotLeaderError()
        if self.transfer_target is not None:
            raise LeadershipTransferInProgressError()
        voters = [v for v in self.latest_config.voters() if v != self.id]
        if target is None:
            if not voters:
                raise RaftError("cannot find peer")
            target = max(sorted(voters), key=lambda v: self.progress[v].match if v in self.progress else 0)
        elif target == self.id:
            raise RaftError("cannot transfer leadership to itself")
        elif target not in voters:
            raise RaftError(f"cannot transfer leadership to {target}: not a voter")
        self.transfer_target = target
        self.transfer_deadline = now + self.cfg.election_timeout
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self.maybe_send_timeout_now(target, pr)
        else:
            self.send_append_all(target, pr, now)
        return target
