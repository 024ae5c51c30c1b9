"""The sans-IO Raft core (etcd-raft style): `RaftCore` takes ticks, messages and
API calls with an explicit `now`, and hands the shell a `Ready` of state to
persist, messages to send and entries to apply (contract in `types`).

Features: pre-vote and check-quorum elections with leader stickiness, a leader
lease, pipelined replication with fast backtracking, voters and non-voters,
single-server membership changes guarded by the configuration index, leadership
transfer (TimeoutNow), read-index, snapshots/compaction, idempotent bootstrap.
This module holds the public API, elections and the follower side; the leader
side lives in `core_leader`, shared state and Ready/advance in `core_base`."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from conductor.raft.core_leader import LeaderMixin
from conductor.raft.membership import ChangeOp, check_configuration, quorum_size
from conductor.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    PreVoteRequest,
    PreVoteResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    encode_configuration,
)
from conductor.raft.progress import ProgressState
from conductor.raft.types import (
    CantBootstrapError,
    Configuration,
    Entry,
    EntryKind,
    RaftConfig,
    RestoredState,
    Role,
    Server,
    Snapshot,
    SnapshotMeta,
    Status,
)

__all__ = ["RaftCore"]


class RaftCore(LeaderMixin):
    """One Raft server's state machine. Not thread-safe; drive it from one task."""

    def __init__(
        self, id: str, config: RaftConfig, restored: RestoredState, rng: random.Random, now: float
    ) -> None:
        super().__init__(id, config, restored, rng, now)

    # ================================================================ inputs

    def tick(self, now: float) -> None:
        """Advance timers; call at (or after) `next_deadline()`."""
        self.now = now
        if self.role == Role.LEADER:
            self.leader_tick(now)
        elif self.is_voter() and now >= self.election_deadline:
            self.campaign(now, transfer=False)

    def next_deadline(self) -> float | None:
        """When `tick` must be called next (recompute after every input); None = no timer."""
        if self.role == Role.LEADER:
            return self.leader_deadline(self.now)
        if self.is_voter():
            return self.election_deadline
        return None

    def step(self, m: Message, now: float) -> None:
        """Handle one received message."""
        self.now = now
        if m.dst != self.id or m.src == self.id:
            return
        if m.term > self.term:
            if isinstance(m, PreVoteRequest | VoteRequest):
                if self.in_lease(now) and not (isinstance(m, VoteRequest) and m.transfer):
                    return  # leader stickiness: a live leader exists, ignore the disruptor
                if isinstance(m, VoteRequest):
                    # the timer restarts only when we grant the vote: candidates with stale
                    # logs must not keep an up-to-date node from campaigning
                    self.become_follower(m.term, None, now, reset_timer=False)
            elif isinstance(m, PreVoteResponse) and m.granted:
                pass  # carries the term we would campaign in
            else:
                from_leader = isinstance(m, AppendEntries | Heartbeat | InstallSnapshot | TimeoutNow)
                self.become_follower(m.term, m.src if from_leader else None, now)
        elif m.term < self.term:
            if isinstance(m, AppendEntries | Heartbeat) and (self.cfg.check_quorum or self.cfg.pre_vote):
                # a stale leader: tell it about our term so it steps down
                self.send(AppendResponse(self.id, m.src, self.term, False, 0, 0, 0))
            elif isinstance(m, PreVoteRequest):
                self.send(PreVoteResponse(self.id, m.src, self.term, False))
            elif isinstance(m, VoteRequest):
                self.send(VoteResponse(self.id, m.src, self.term, False))
            return
        match m:
            case PreVoteRequest() | VoteRequest():
                self.handle_vote_request(m, now)
            case PreVoteResponse() | VoteResponse():
                self.handle_vote_response(m, now)
            case AppendEntries():
                if self.role != Role.LEADER:
                    self.handle_append(m, now)
            case Heartbeat():
                if self.role != Role.LEADER:
                    self.handle_heartbeat(m, now)
            case InstallSnapshot():
                if self.role != Role.LEADER:
                    self.handle_snapshot(m, now)
            case TimeoutNow():
                if self.role == Role.FOLLOWER and self.is_voter():
                    self.start_election(now, transfer=True)
            case AppendResponse():
                if self.role == Role.LEADER:
                    self.handle_append_response(m, now)
            case HeartbeatResponse():
                if self.role == Role.LEADER:
                    self.handle_heartbeat_response(m, now)
            case InstallSnapshotResponse():
                if self.role == Role.LEADER:
                    self.handle_snapshot_response(m, now)

    # ================================================================ API

    def propose(self, data: bytes, now: float) -> int:
        """Append `data` as a NORMAL entry; returns its index (see types for the outcome)."""
        self.now = now
        self.check_can_propose(now)
        return self.append_and_replicate(EntryKind.NORMAL, data, now)

    def add_voter(self, server_id: str, address: str, prev_index: int, now: float) -> int:
        """Add a voter, promote a non-voter, or update a voter's address."""
        return self._change(ChangeOp.ADD_VOTER, server_id, address, prev_index, now)

    def add_nonvoter(self, server_id: str, address: str, prev_index: int, now: float) -> int:
        """Add a non-voter (on an existing server only the address changes)."""
        return self._change(ChangeOp.ADD_NONVOTER, server_id, address, prev_index, now)

    def demote_voter(self, server_id: str, prev_index: int, now: float) -> int:
        return self._change(ChangeOp.DEMOTE_VOTER, server_id, "", prev_index, now)

    def remove_server(self, server_id: str, prev_index: int, now: float) -> int:
        return self._change(ChangeOp.REMOVE_SERVER, server_id, "", prev_index, now)

    def _change(self, op: ChangeOp, server_id: str, address: str, prev_index: int, now: float) -> int:
        self.now = now
        return self.change_membership(op, server_id, address, prev_index, now)

    def transfer_leadership(self, target: str | None, now: float) -> str:
        """Hand leadership to `target` (None: the most up-to-date voter); returns the target.
        Proposals are refused until the transfer ends or aborts after an election timeout."""
        self.now = now
        return self.start_transfer(target, now)

    def read_index(self, ctx: bytes, now: float) -> None:
        """Linearizable read / barrier: a `ReadState(ctx, index)` appears in a later Ready
        once leadership is confirmed by a quorum and the state machine applied >= index."""
        self.now = now
        self.check_leader(now)
        self.start_read(ctx)

    def report_unreachable(self, peer_id: str, now: float) -> None:
        """The shell lost messages to `peer_id` or its connection to it (connection closed,
        connect failed, queue overflow): etcd's ReportUnreachable.

        - Leader: a follower in pipelined replication goes back to probing, so replication
          resumes at its real match point instead of waiting for acks that will never come.
        - Follower whose leader is `peer_id` (fast failover): schedule a pre-vote campaign
          once the leader has been silent for `failover_silence` heartbeat intervals, plus a
          random `failover_delay`, instead of waiting for the election timeout; until the
          leader is heard from again this node also stops defending it (leader stickiness),
          so it grants the other followers' pre-votes. Safe against false reports: a node
          that still hears heartbeats never reaches the silence, keeps its lease and refuses
          pre-votes, and pre-votes change no term or vote, so while a leader reaches a quorum
          the report cannot unseat it (tests: test_core_failover, the simulation)."""
        self.now = now
        if self.role == Role.LEADER:
            pr = self.progress.get(peer_id)
            if pr is not None and pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            return
        if (
            self.role != Role.FOLLOWER
            or peer_id != self.leader_id
            or self.leader_lost
            or not self.cfg.fast_failover
            or not self.is_voter()
        ):
            return
        self.leader_lost = True
        cfg = self.cfg
        quiet_at = self.last_leader_contact + cfg.failover_silence * cfg.heartbeat_interval
        self.election_deadline = min(self.election_deadline, max(now, quiet_at) + self.failover_delay())

    def failover_delay(self) -> float:
        cfg = self.cfg
        return cfg.failover_delay_min + self.rng.random() * (cfg.failover_delay_max - cfg.failover_delay_min)

    def snapshot_due(self) -> bool:
        """A snapshot should be taken: `snapshot_threshold` entries or
        `snapshot_threshold_bytes` payload bytes were applied since the last one."""
        base = self.snapshot.meta.index if self.snapshot else 0
        if self.applied <= base:
            return False
        return (
            self.applied - base >= self.cfg.snapshot_threshold
            or self.log.bytes_between(base + 1, self.applied) >= self.cfg.snapshot_threshold_bytes
        )

    def compact(self, index: int, data: bytes) -> None:
        """The shell snapshotted the state machine at applied index `index`: record the
        snapshot (saved via Ready) and drop log entries older than `trailing_logs` (and
        beyond `trailing_logs_bytes`). With `snapshot_due` this bounds the log in memory
        to about snapshot_threshold_bytes + trailing_logs_bytes + the unapplied entries."""
        base = self.snapshot.meta.index if self.snapshot else 0
        if index <= base:
            return
        if index > self.applied:
            raise ValueError(f"cannot snapshot at {index}: only {self.applied} applied")
        term = self.log.term_at(index)
        if term is None:
            raise ValueError(f"term of entry {index} is unknown")
        snap = Snapshot(SnapshotMeta(index, term, self.config_at(index)), data)
        self.snapshot = snap
        self._snap_to_save = snap
        # keep `trailing_logs` entries behind the snapshot for slow followers, but no more
        # than `trailing_logs_bytes` of payload (older ones are sent as the snapshot)
        by_bytes = self.log.start_for_bytes(index, self.cfg.trailing_logs_bytes)
        trail = max(index - self.cfg.trailing_logs, by_bytes)
        if trail > self.log.offset:
            self.log.compact_to(trail)
            self._compact_to = max(self._compact_to or 0, trail)
            while len(self.configs) > 1 and self.configs[1].index <= self.log.offset:
                self.configs.pop(0)

    def bootstrap(self, servers: Sequence[Server], now: float) -> None:
        """Write the first configuration on a brand-new server (raises CantBootstrapError
        "bootstrap only works on new clusters" if any Raft state exists)."""
        self.now = now
        if self.term != 0 or self.vote is not None or self.log.last_index() != 0 or self.snapshot is not None:
            raise CantBootstrapError()
        check_configuration(servers)
        conf = Configuration(servers=tuple(servers), index=1)
        self.term = 1
        self.append_entry(Entry(1, 1, EntryKind.CONFIG, encode_configuration(conf)))
        self.commit = 1
        self.reset_election_timer(now)

    def status(self) -> Status:
        leader_addr = None
        if self.leader_id is not None:
            s = self.latest_config.get(self.leader_id)
            leader_addr = s.address if s else None
        return Status(
            id=self.id,
            term=self.term,
            commit=self.commit,
            applied=self.applied,
            last_index=self.log.last_index(),
            role=self.role,
            leader_id=self.leader_id,
            leader_address=leader_addr,
            configuration=self.latest_config,
            lease_valid=self.lease_valid(self.now),
            transfer_in_progress=self.transfer_target is not None,
        )

    # ================================================================ elections

    def in_lease(self, now: float) -> bool:
        """True while this node believes a live leader exists (leader stickiness)."""
        if not self.cfg.check_quorum:
            return False
        if self.role == Role.LEADER:
            return self.lease_valid(now)
        if self.leader_id is None:
            return False
        silent = now - self.last_leader_contact
        if self.leader_lost and silent >= self.cfg.failover_silence * self.cfg.heartbeat_interval:
            return False  # reported unreachable and silent since: do not defend it
        return silent < self.cfg.election_timeout

    def campaign(self, now: float, transfer: bool) -> None:
        if not self.is_voter():
            return
        if not self.cfg.pre_vote or transfer:
            self.start_election(now, transfer)
            return
        li, lt = self.log.last_index(), self.log.last_term()
        self.solicit_votes(
            Role.PRE_CANDIDATE, now, lambda v: PreVoteRequest(self.id, v, self.term + 1, li, lt)
        )

    def start_election(self, now: float, transfer: bool) -> None:
        self.term += 1
        self.vote = self.id
        li, lt = self.log.last_index(), self.log.last_term()
        self.solicit_votes(
            Role.CANDIDATE, now, lambda v: VoteRequest(self.id, v, self.term, li, lt, transfer)
        )

    def solicit_votes(self, role: Role, now: float, request: Callable[[str], Message]) -> None:
        """Become (pre-)candidate with our own vote, ask every other voter, count."""
        self.role = role
        self.leader_id = None
        self.votes = {self.id: True}
        self.reset_election_timer(now)
        for v in self.latest_config.voters():
            if v != self.id:
                self.send(request(v))
        self.poll(now)

    def poll(self, now: float) -> None:
        voters = self.latest_config.voters()
        need = quorum_size(len(voters))
        granted = sum(1 for v in voters if self.votes.get(v) is True)
        rejected = sum(1 for v in voters if self.votes.get(v) is False)
        if granted >= need:
            if self.role == Role.PRE_CANDIDATE:
                self.start_election(now, transfer=False)
            else:
                self.become_leader(now)
        elif rejected >= need:
            self.become_follower(self.term, None, now)

    def handle_vote_request(self, m: PreVoteRequest | VoteRequest, now: float) -> None:
        pre = isinstance(m, PreVoteRequest)
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.leader_id is None)
            or (pre and m.term > self.term)
        )
        grant = can_vote and self.log.up_to_date(m.last_index, m.last_term)
        if pre:
            rival = self.role == Role.PRE_CANDIDATE and m.term == self.term + 1
            same_log = (m.last_index, m.last_term) == (self.log.last_index(), self.log.last_term())
            if grant and rival and same_log:
                # two pre-candidates with equal logs would both win their pre-votes and then
                # split the real vote (a whole election timeout lost): the lower id goes on
                grant = m.src < self.id
            if grant and rival:
                # we back the other campaign: stand down, retry soon if it fails
                self.become_follower(self.term, None, now, reset_timer=False)
                self.election_deadline = now + self.failover_delay()
            elif grant and self.leader_lost and self.role == Role.FOLLOWER:
                # fast failover: another follower is already campaigning; let it finish
                # before our own early campaign fires, or the two would split the vote
                self.election_deadline = max(self.election_deadline, now + self.failover_delay())
            self.send(PreVoteResponse(self.id, m.src, m.term if grant else self.term, grant))
            return
        if grant:
            self.vote = m.src
            self.reset_election_timer(now)
        self.send(VoteResponse(self.id, m.src, self.term, grant))

    def handle_vote_response(self, m: PreVoteResponse | VoteResponse, now: float) -> None:
        if isinstance(m, PreVoteResponse):
            if self.role != Role.PRE_CANDIDATE or (m.granted and m.term != self.term + 1):
                return
        elif self.role != Role.CANDIDATE:
            return
        self.votes[m.src] = m.granted
        self.poll(now)

    # ================================================================ follower side

    def leader_contact(self, leader: str, now: float) -> None:
        if self.role != Role.FOLLOWER or self.leader_id != leader:
            self.become_follower(self.term, leader, now)
        else:
            self.reset_election_timer(now)
        self.last_leader_contact = now
        self.leader_lost = False

    def handle_append(self, m: AppendEntries, now: float) -> None:
        self.leader_contact(m.src, now)
        prev, entries = m.prev_index, m.entries
        if prev < self.commit:
            # entries up to our commit index are known to match the leader's
            entries = tuple(e for e in entries if e.index > self.commit)
            if not entries:
                self.send(AppendResponse(self.id, m.src, self.term, True, self.commit, 0, 0))
                return
            prev = self.commit
            matched = True
        else:
            matched = self.log.term_at(prev) == m.prev_term
        if not matched:
            hint = self.log.find_conflict_by_term(min(prev, self.log.last_index()), m.prev_term)
            hint_term = self.log.term_at(hint) or 0
            self.send(AppendResponse(self.id, m.src, self.term, False, prev, hint, hint_term))
            return
        for k, e in enumerate(entries):
            t = self.log.term_at(e.index)
            if t == e.term:
                continue
            if t is not None:
                self.truncate_log(e.index)
            for new in entries[k:]:
                self.append_entry(new)
            break
        last_new = prev + len(entries)
        if m.commit > self.commit:
            self.commit = max(self.commit, min(m.commit, last_new))
        self.send(AppendResponse(self.id, m.src, self.term, True, last_new, 0, 0))

    def handle_heartbeat(self, m: Heartbeat, now: float) -> None:
        self.leader_contact(m.src, now)
        if m.commit > self.commit:
            self.commit = min(m.commit, self.log.last_index())
        self.send(HeartbeatResponse(self.id, m.src, self.term, m.ctx))

    def handle_snapshot(self, m: InstallSnapshot, now: float) -> None:
        self.leader_contact(m.src, now)
        meta = m.snapshot.meta
        if meta.index <= self.commit:
            index = self.commit
        elif self.log.term_at(meta.index) == meta.term:
            self.commit = meta.index  # our log already holds it: fast-forward
            index = meta.index
        else:
            self.install_snapshot(m.snapshot)
            index = meta.index
        self.send(InstallSnapshotResponse(self.id, m.src, self.term, index))
