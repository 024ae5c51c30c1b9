"""The in-memory pieces shared by the Raft core tests: the simulated disk (`Disk`, exactly
what Readies asked to persist), a hash-chain state machine, the test configuration, and
`Cluster`, a synchronous harness (instant delivery, manual time, cuttable links,
restartable nodes) for the unit tests. The randomized simulator lives in `sim.py`."""

from __future__ import annotations

import hashlib
import random
import struct

from conductor.raft.core import RaftCore
from conductor.raft.messages import Message, decode_message, encode_message
from conductor.raft.types import (
    Entry,
    EntryKind,
    HardState,
    RaftConfig,
    Ready,
    RestoredState,
    Role,
    Server,
    Snapshot,
    Suffrage,
)

SIM_CONFIG = RaftConfig(
    heartbeat_interval=0.05,
    election_timeout=0.3,
    lease_timeout=0.15,
    max_append_entries=8,
    max_inflight=4,
    max_batch_bytes=2048,
    snapshot_threshold=30,
    trailing_logs=10,
    snapshot_threshold_bytes=1000,  # entries are 2-200 bytes: both limits fire in the simulation
    trailing_logs_bytes=300,
    failover_delay_min=0.0125,  # the defaults scaled like the heartbeat (x 1/4)
    failover_delay_max=0.0625,
)


class SafetyViolation(AssertionError):
    pass


class Disk:
    """A node's durable state: exactly what Readies asked to persist."""

    def __init__(self) -> None:
        self.hard_state = HardState(0, None, 0)
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []

    def persist(self, rd: Ready) -> None:
        if rd.snapshot_to_save is not None:
            self.snapshot = rd.snapshot_to_save
        if rd.compact_to is not None:
            self.entries = [e for e in self.entries if e.index > rd.compact_to]
        if rd.truncate_from is not None:
            self.entries = [e for e in self.entries if e.index < rd.truncate_from]
        for e in rd.entries_to_append:
            expect = (
                self.entries[-1].index + 1
                if self.entries
                else (self.snapshot.meta.index + 1 if self.snapshot else 1)
            )
            if e.index != expect:
                raise SafetyViolation(f"non-contiguous persisted append: {e.index}, expected {expect}")
            self.entries.append(e)
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state

    def term_before(self, pos: int) -> int | None:
        if pos > 0:
            return self.entries[pos - 1].term
        e = self.entries[pos]
        if e.index == 1:
            return 0
        if self.snapshot is not None and self.snapshot.meta.index == e.index - 1:
            return self.snapshot.meta.term
        return None

    def restored(self) -> RestoredState:
        return RestoredState(self.hard_state, self.snapshot, tuple(self.entries))


class StateMachine:
    """A hash chain over applied entries; its snapshot is (index, digest)."""

    def __init__(self, index: int = 0, digest: bytes = b"") -> None:
        self.index = index
        self.digest = digest

    @staticmethod
    def chain(digest: bytes, e: Entry) -> bytes:
        h = hashlib.blake2b(digest, digest_size=16)
        h.update(struct.pack(">QQB", e.index, e.term, e.kind))
        h.update(e.data)
        return h.digest()

    def snapshot_data(self) -> bytes:
        return struct.pack(">Q", self.index) + self.digest

    @classmethod
    def from_snapshot(cls, data: bytes) -> StateMachine:
        return cls(struct.unpack(">Q", data[:8])[0], data[8:])


class Cluster:
    """Synchronous harness for the unit tests: instant delivery, manual time,
    cuttable links, restartable nodes with the same Disk model as `Sim`."""

    def __init__(
        self,
        ids: list[str],
        *,
        voters: list[str] | None = None,
        cfg: RaftConfig = SIM_CONFIG,
        bootstrap: bool = True,
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.now = 0.0
        self.disks = {i: Disk() for i in ids}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[Entry]] = {i: [] for i in ids}
        self.snapshots_applied: dict[str, list[Snapshot]] = {i: [] for i in ids}
        self.reads: dict[str, list[tuple[bytes, int]]] = {i: [] for i in ids}
        self.dropped: dict[str, list[bytes]] = {i: [] for i in ids}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.delivered: list[Message] = []
        for i in ids:
            self.cores[i] = RaftCore(i, cfg, self.disks[i].restored(), random.Random(self.rng.random()), 0.0)
        if bootstrap:
            servers = [Server(i, f"addr-{i}", Suffrage.VOTER) for i in (voters or ids)]
            for i in voters or ids:
                self.cores[i].bootstrap(servers, 0.0)
        self.flush()

    def isolate(self, nid: str) -> None:
        for other in self.cores:
            if other != nid:
                self.cut.add(frozenset((nid, other)))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, nid: str) -> None:
        self.down.add(nid)

    def restart(self, nid: str) -> None:
        self.down.discard(nid)
        rs = self.disks[nid].restored()
        self.cores[nid] = RaftCore(nid, self.cfg, rs, random.Random(self.rng.random()), self.now)
        self.applied[nid] = []
        self.flush()

    def flush(self, limit: int = 100000) -> None:
        """Process readies and deliver messages until quiescent."""
        for _ in range(limit):
            msgs: list[Message] = []
            for nid, c in self.cores.items():
                if nid in self.down:
                    continue
                rd = c.ready()
                if rd is None:
                    continue
                self.disks[nid].persist(rd)
                msgs.extend(rd.messages)  # instant delivery: before or after persist is the same
                if rd.snapshot_to_apply is not None:
                    self.snapshots_applied[nid].append(rd.snapshot_to_apply)
                self.applied[nid].extend(rd.committed_entries)
                self.reads[nid].extend((r.ctx, r.index) for r in rd.read_states)
                self.dropped[nid].extend(rd.dropped_reads)
                c.advance(rd)
            if not msgs:
                return
            for m in msgs:
                if m.dst in self.down or frozenset((m.src, m.dst)) in self.cut or m.dst not in self.cores:
                    continue
                self.delivered.append(decode_message(encode_message(m)))
                self.cores[m.dst].step(m, self.now)
        raise AssertionError("cluster did not quiesce")

    def run(self, seconds: float, step: float = 0.01) -> None:
        end = self.now + seconds
        while self.now < end - 1e-12:
            self.now = min(end, self.now + step)
            for nid, c in self.cores.items():
                d = c.next_deadline()
                if nid not in self.down and d is not None and d <= self.now:
                    c.tick(self.now)
            self.flush()

    def leaders(self) -> list[str]:
        return [i for i, c in self.cores.items() if i not in self.down and c.role == Role.LEADER]

    def leader(self) -> str:
        ls = self.leaders()
        assert len(ls) == 1, f"expected one leader, got {ls}"
        return ls[0]

    def elect(self, timeout: float = 3.0) -> str:
        end = self.now + timeout
        while self.now < end:
            self.run(0.05)
            ls = self.leaders()
            if len(ls) == 1 and self.cores[ls[0]].commit >= self.cores[ls[0]].log.last_index():
                return ls[0]
        raise AssertionError(f"no leader elected within {timeout}s: {self.leaders()}")

    def propose(self, data: bytes) -> int:
        idx = self.cores[self.leader()].propose(data, self.now)
        self.flush()
        return idx

    def data_applied(self, nid: str) -> list[bytes]:
        return [e.data for e in self.applied[nid] if e.kind == EntryKind.NORMAL]
