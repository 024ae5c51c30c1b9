"""Deterministic simulation of an in-memory RaftCore cluster.

A seeded scheduler with simulated time drives several `RaftCore`s. The network
delays, drops, duplicates and reorders messages (all of them round-trip through the
binary codec) and can be partitioned; nodes crash and restart from their simulated
disk, which holds only what a Ready asked to persist (a node crashes between its
steps, before its pending Ready is persisted, between persist and send, or — a leader
that sends its appends before its own fsync — after sending but before persisting).
An fsync takes simulated time, during which the node keeps stepping input. The
transport's "unreachable" reports are modelled too: crashed peers are reported to the
others, some losses to the sender, and spurious reports arrive in every mix.
Clients propose continuously; the fault schedule changes membership, transfers
leadership and issues read-index requests.

After every event the checker asserts: at most one leader per term, log matching
(same index+term => same entry and same predecessor term, checked on every persisted
append), leader completeness (every committed entry is in every leader's log),
state-machine safety (no two nodes apply different entries at one index, snapshot
contents match), applied index never goes backwards within a node's lifetime, reads
return an index >= everything committed before they were asked. At the end it heals
everything and checks liveness: a leader commits a new entry, every member applies
it, and acknowledged proposals (committed and applied on their leader) survive.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from conductor.raft.core import RaftCore
from conductor.raft.messages import Message, decode_message, encode_message
from conductor.raft.types import (
    ConfigurationChangedError,
    Entry,
    EntryKind,
    RaftConfig,
    RaftError,
    Ready,
    RestoredState,
    Role,
    Server,
    Suffrage,
)

from .cluster import SIM_CONFIG, Disk, SafetyViolation, StateMachine

CoreFactory = Callable[[str, RaftConfig, RestoredState, random.Random, float], RaftCore]


@dataclass(frozen=True, slots=True)
class Mix:
    name: str
    partitions: bool = False
    crashes: bool = False
    membership: bool = False
    transfers: bool = False
    reads: bool = True
    unreachable: bool = True  # spurious "peer unreachable" reports from the transport
    drop: float = 0.02
    dup: float = 0.02
    bootstrap_all: bool = True


MIXES: tuple[Mix, ...] = (
    Mix("lossy", drop=0.1, dup=0.05),
    Mix("partitions", partitions=True),
    Mix("crashes", crashes=True),
    Mix("membership", membership=True, bootstrap_all=False),
    Mix("transfers", transfers=True, partitions=True),
    Mix("chaos", partitions=True, crashes=True, membership=True, transfers=True),
)


@dataclass
class SimNode:
    id: str
    disk: Disk = field(default_factory=Disk)
    core: RaftCore | None = None
    sm: StateMachine = field(default_factory=StateMachine)
    io_pending: bool = False
    incarnation: int = 0
    tick_gen: int = 0
    tick_at: float | None = None
    pending: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, data)


class Sim:
    def __init__(
        self,
        seed: int,
        mix: Mix | None = None,
        *,
        core_factory: CoreFactory = RaftCore,
        voters: int = 3,
        spares: int = 2,
        duration: float = 2.5,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.mix = mix if mix is not None else MIXES[seed % len(MIXES)]
        self.factory = core_factory
        self.duration = duration
        self.now = 0.0
        self.events: list[tuple[float, int, str, object]] = []
        self.seq = 0
        self.trace: deque[str] = deque(maxlen=60)
        self.faults_on = True
        self.groups: dict[str, int] = {}
        self.crashed: set[str] = set()
        ids = [f"n{k}" for k in range(1, voters + spares + 1)]
        self.nodes = {i: SimNode(i) for i in ids}
        # checker state
        self.leaders: dict[int, str] = {}
        self.committed: dict[int, tuple[int, EntryKind, bytes]] = {}
        self.digests: dict[int, bytes] = {0: b""}
        self.seen: dict[tuple[int, int], tuple[EntryKind, bytes, int | None]] = {}
        self.completeness: dict[tuple[str, int], int] = {}
        self.acked: dict[int, tuple[int, bytes]] = {}
        self.max_commit = 0
        self.commit_floor: dict[int, int] = {}
        self.reads: dict[bytes, int] = {}
        self.counter = 0
        self.stats: Counter[str] = Counter()
        for i in ids:
            self.start(i)
        servers = [Server(i, f"addr-{i}", Suffrage.VOTER) for i in ids[:voters]]
        first = self.core(ids[0])
        if self.mix.bootstrap_all:
            for i in ids[:voters]:
                self.core(i).bootstrap(servers, 0.0)
                self.after_input(i)
        else:
            first.bootstrap(servers[:1], 0.0)
            self.after_input(ids[0])
        self.push(0.0, "fault", None)
        self.push(0.0, "propose", None)

    # ------------------------------------------------------------ plumbing

    def core(self, nid: str) -> RaftCore:
        c = self.nodes[nid].core
        assert c is not None, f"{nid} is down"
        return c

    def push(self, t: float, kind: str, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:8.4f} {text}")

    def fail(self, why: str) -> SafetyViolation:
        tail = "\n".join(self.trace)
        return SafetyViolation(
            f"seed {self.seed} (mix {self.mix.name}): {why}\n"
            f"replay: pytest tests/unit/raft/test_simulation.py --seed {self.seed}\n"
            f"--- trace tail ---\n{tail}"
        )

    def start(self, nid: str) -> None:
        node = self.nodes[nid]
        rs = node.disk.restored()
        node.core = self.factory(nid, SIM_CONFIG, rs, random.Random(self.rng.random()), self.now)
        node.sm = StateMachine()
        if rs.snapshot is not None:
            node.sm = StateMachine.from_snapshot(rs.snapshot.data)
            self.check_snapshot(nid, node.sm, rs.snapshot.meta.index)
        node.io_pending = False
        node.incarnation += 1
        node.pending = {}
        self.crashed.discard(nid)
        self.after_input(nid)

    def crash(self, nid: str) -> None:
        node = self.nodes[nid]
        node.core = None
        node.tick_gen += 1
        node.tick_at = None
        self.crashed.add(nid)
        self.stats["crash"] += 1
        self.log(f"CRASH {nid}")
        for other in sorted(self.nodes):
            # the kernel closes a dead process's connections: peers notice (mostly) at once
            if other != nid and other not in self.crashed and self.rng.random() < 0.9:
                self.push(self.now + self.rng.uniform(0.0005, 0.005), "unreachable", (other, nid))

    def after_input(self, nid: str) -> None:
        node = self.nodes[nid]
        c = node.core
        if c is None:
            return
        if not node.io_pending and c.has_ready():
            node.io_pending = True
            self.push(self.now + self.rng.uniform(0.0, 0.002), "io", nid)
        d = c.next_deadline()
        if d != node.tick_at:
            node.tick_gen += 1
            node.tick_at = d
            if d is not None:
                self.push(max(d, self.now), "tick", (nid, node.tick_gen))

    def send(self, m: Message) -> None:
        if self.rng.random() < self.mix.drop:
            if self.rng.random() < 0.3:  # some losses are noticed by the sender's transport
                self.push(self.now + self.rng.uniform(0.0, 0.005), "unreachable", (m.src, m.dst))
            return
        wire = encode_message(m)
        copies = 2 if self.rng.random() < self.mix.dup else 1
        for _ in range(copies):
            self.push(self.now + self.rng.uniform(0.0005, 0.015), "msg", wire)

    def connected(self, a: str, b: str) -> bool:
        return self.groups.get(a, 0) == self.groups.get(b, 0)

    def leaders_now(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.core is not None and n.core.role == Role.LEADER]

    # ------------------------------------------------------------ main loop

    def run(self) -> None:
        self.run_until(self.duration)
        self.faults_on = False
        self.groups = {}
        for nid in sorted(self.crashed):
            self.start(nid)
        self.log("HEAL ALL")
        self.run_until(self.duration + 1.5)
        self.check_liveness()

    def run_until(self, t_end: float) -> None:
        while self.events and self.events[0][0] <= t_end:
            t, _, kind, payload = heapq.heappop(self.events)
            self.now = t
            self.dispatch(kind, payload)
            self.check_step()
        self.now = t_end

    def dispatch(self, kind: str, payload: object) -> None:
        if kind == "msg":
            assert isinstance(payload, bytes)
            m = decode_message(payload)
            node = self.nodes[m.dst]
            if node.core is None or not self.connected(m.src, m.dst):
                if not self.connected(m.src, m.dst) and self.rng.random() < 0.2:
                    self.push(self.now + self.rng.uniform(0.0, 0.005), "unreachable", (m.src, m.dst))
                return
            self.log(f"{m.src}->{m.dst} {m}")
            node.core.step(m, self.now)
            self.after_input(m.dst)
        elif kind == "tick":
            assert isinstance(payload, tuple)
            nid, gen = payload
            assert isinstance(nid, str) and isinstance(gen, int)
            node = self.nodes[nid]
            if node.core is None or gen != node.tick_gen:
                return
            node.tick_at = None
            node.core.tick(self.now)
            self.after_input(nid)
        elif kind == "io":
            assert isinstance(payload, str)
            self.do_io(payload)
        elif kind == "propose":
            self.do_propose()
        elif kind == "fault":
            if self.faults_on:
                self.do_fault()
                self.push(self.now + self.rng.uniform(0.05, 0.3), "fault", None)
        elif kind == "heal":
            if self.groups:
                self.log("heal partition")
            self.groups = {}
        elif kind == "unreachable":
            assert isinstance(payload, tuple)
            nid, peer = payload
            assert isinstance(nid, str) and isinstance(peer, str)
            c = self.nodes[nid].core
            if c is not None:
                self.log(f"{nid}: {peer} unreachable")
                self.stats["unreachable"] += 1
                c.report_unreachable(peer, self.now)
                self.after_input(nid)
        elif kind == "io_done":
            assert isinstance(payload, tuple)
            nid, inc, rd = payload
            assert isinstance(nid, str) and isinstance(rd, Ready)
            node = self.nodes[nid]
            if node.core is not None and node.incarnation == inc:
                self.finish_io(node, rd)
        elif kind == "restart":
            assert isinstance(payload, str)
            if payload in self.crashed:
                self.log(f"RESTART {payload}")
                self.start(payload)

    def do_io(self, nid: str) -> None:
        """Take a Ready. Its fsync takes simulated time, during which the node keeps
        stepping messages and API calls (but takes no other Ready): a leader's early
        appends can be acknowledged before its own entries are durable."""
        node = self.nodes[nid]
        c = node.core
        if c is None:
            node.io_pending = False
            return
        rd = c.ready()
        if rd is None:
            node.io_pending = False
            return
        if rd.send_before_persist:
            self.stats["send_before_persist"] += 1
            for m in rd.messages:
                self.send(m)
        if rd.entries_to_append or rd.hard_state is not None or rd.snapshot_to_save is not None:
            self.push(self.now + self.rng.uniform(0.0005, 0.004), "io_done", (nid, node.incarnation, rd))
        else:
            self.finish_io(node, rd)

    def finish_io(self, node: SimNode, rd: Ready) -> None:
        nid = node.id
        c = node.core
        assert c is not None
        node.io_pending = False
        crashes = self.faults_on and self.mix.crashes
        if rd.send_before_persist and crashes and rd.entries_to_append and self.rng.random() < 0.02:
            self.stats["crash_before_own_fsync"] += 1
            self.crash(nid)  # the leader's appends are out, its own fsync never happened
            self.push(self.now + self.rng.uniform(0.05, 0.5), "restart", nid)
            return
        self.persist(node, rd)
        if crashes and self.rng.random() < 0.003:
            self.crash(nid)  # between fsync and send
            self.push(self.now + self.rng.uniform(0.05, 0.5), "restart", nid)
            return
        if not rd.send_before_persist:
            for m in rd.messages:
                self.send(m)
        if rd.snapshot_to_apply is not None:
            idx = rd.snapshot_to_apply.meta.index
            if idx <= node.sm.index:
                raise self.fail(f"{nid} snapshot {idx} would move applied back from {node.sm.index}")
            node.sm = StateMachine.from_snapshot(rd.snapshot_to_apply.data)
            self.check_snapshot(nid, node.sm, idx)
            self.stats["snapshot_installed"] += 1
        for e in rd.committed_entries:
            self.apply(node, e)
        for r in rd.read_states:
            floor = self.reads.pop(r.ctx)
            if r.index < floor:
                raise self.fail(f"{nid} read index {r.index} < commit {floor} seen when the read was asked")
            if node.sm.index < r.index:
                raise self.fail(f"{nid} read state {r.index} released before apply ({node.sm.index})")
            self.stats["read_ok"] += 1
        for ctx in rd.dropped_reads:
            self.reads.pop(ctx, None)
        c.advance(rd)
        if c.snapshot_due():
            c.compact(c.applied, node.sm.snapshot_data())
            self.log(f"{nid} compact at {c.applied}")
            self.stats["compact"] += 1
        self.after_input(nid)

    def persist(self, node: SimNode, rd: Ready) -> None:
        disk = node.disk
        if rd.truncate_from is not None and rd.snapshot_to_save is None:
            self.stats["truncate"] += 1
        disk.persist(rd)
        n_new = len(rd.entries_to_append)
        for pos in range(len(disk.entries) - n_new, len(disk.entries)):
            e = disk.entries[pos]
            prev = disk.term_before(pos)
            key = (e.index, e.term)
            old = self.seen.get(key)
            if old is None:
                self.seen[key] = (e.kind, e.data, prev)
            elif (
                old[0] != e.kind
                or old[1] != e.data
                or (old[2] is not None and prev is not None and old[2] != prev)
            ):
                raise self.fail(f"log matching: {node.id} holds a different entry at {key}")

    def apply(self, node: SimNode, e: Entry) -> None:
        if e.index != node.sm.index + 1:
            raise self.fail(f"{node.id} applies {e.index} after {node.sm.index}")
        got = (e.term, e.kind, e.data)
        old = self.committed.setdefault(e.index, got)
        if old != got:
            raise self.fail(f"state machine safety: {node.id} applies {got} at {e.index}, others {old}")
        node.sm.digest = StateMachine.chain(node.sm.digest, e)
        node.sm.index = e.index
        d = self.digests.setdefault(e.index, node.sm.digest)
        if d != node.sm.digest:
            raise self.fail(f"{node.id} state digest differs at {e.index}")
        want = node.pending.pop(e.index, None)
        if want is not None and want == (e.term, e.data):
            self.acked[e.index] = want
            self.stats["acked"] += 1

    def check_snapshot(self, nid: str, sm: StateMachine, index: int) -> None:
        if sm.index != index or self.digests.get(index) != sm.digest:
            raise self.fail(f"{nid} snapshot at {index} does not match the applied history")

    # ------------------------------------------------------------ checks

    def check_step(self) -> None:
        for n in self.nodes.values():
            c = n.core
            if c is None:
                continue
            self.max_commit = max(self.max_commit, c.commit)
            # a node in term T with commit index C: a leader of some term <= T committed C
            if c.commit > self.commit_floor.get(c.term, 0):
                self.commit_floor[c.term] = c.commit
            if c.role != Role.LEADER:
                continue
            if c.term not in self.leaders:
                self.stats["elected"] += 1
            other = self.leaders.setdefault(c.term, n.id)
            if other != n.id:
                raise self.fail(f"two leaders in term {c.term}: {other} and {n.id}")
            # leader completeness: entries committed in earlier terms are in this leader's log
            floor = max((v for t, v in self.commit_floor.items() if t < c.term), default=0)
            top = min(floor, len(self.committed))
            key = (n.id, c.term)
            upto = self.completeness.get(key, 0)
            for i in range(max(upto, c.log.offset) + 1, top + 1):
                if c.log.term_at(i) != self.committed[i][0]:
                    raise self.fail(f"leader completeness: leader {n.id} term {c.term} lacks committed {i}")
            self.completeness[key] = max(upto, top)

    def check_liveness(self) -> None:
        leaders = [n for n in self.leaders_now() if self.core(n).lease_valid(self.now)]
        if len(leaders) != 1:
            raise self.fail(f"no single leader after heal: {self.leaders_now()}")
        lid = leaders[0]
        self.counter += 1
        data = f"final-{self.seed}".encode()
        try:
            idx = self.core(lid).propose(data, self.now)
        except RaftError as exc:
            raise self.fail(f"final proposal refused by {lid}: {exc}") from None
        self.nodes[lid].pending[idx] = (self.core(lid).term, data)
        self.after_input(lid)
        self.run_until(self.now + 1.0)
        if idx not in self.acked:
            raise self.fail(f"final proposal {idx} was not committed")
        for s in self.core(lid).latest_config.servers:
            if self.nodes[s.id].sm.index < idx:
                raise self.fail(f"member {s.id} applied only {self.nodes[s.id].sm.index} < {idx}")
        for i, (term, d) in self.acked.items():
            if self.committed.get(i) != (term, EntryKind.NORMAL, d):
                raise self.fail(f"acknowledged proposal at {i} lost")

    # ------------------------------------------------------------ workload and faults

    def do_propose(self) -> None:
        self.push(self.now + self.rng.uniform(0.005, 0.04), "propose", None)
        leaders = self.leaders_now()
        if not leaders:
            return
        lid = self.rng.choice(leaders)
        c = self.core(lid)
        self.counter += 1
        data = f"p{self.counter}".encode() * self.rng.choice((1, 1, 1, 40))
        try:
            idx = c.propose(data, self.now)
        except RaftError:
            return
        self.nodes[lid].pending[idx] = (c.term, data)
        self.after_input(lid)

    def do_fault(self) -> None:
        mix, rng = self.mix, self.rng
        options: list[Callable[[], None]] = []
        if mix.partitions:
            options += [self.fault_partition, self.fault_isolate_leader]
        if mix.crashes:
            options += [self.fault_crash, self.fault_crash]
        if mix.membership:
            options += [self.fault_membership] * 3
        if mix.transfers:
            options += [self.fault_transfer]
        if mix.reads:
            options += [self.fault_read]
        if mix.unreachable:
            options += [self.fault_unreachable]
        rng.choice(options)()

    def fault_partition(self) -> None:
        ids = sorted(self.nodes)
        self.groups = {i: self.rng.randrange(2) for i in ids}
        self.log(f"partition {self.groups}")
        self.stats["partition"] += 1
        self.push(self.now + self.rng.uniform(0.2, 1.0), "heal", None)

    def fault_isolate_leader(self) -> None:
        leaders = self.leaders_now()
        if not leaders:
            return
        lid = self.rng.choice(leaders)
        self.groups = {lid: 1}
        self.log(f"isolate leader {lid}")
        self.stats["partition"] += 1
        self.push(self.now + self.rng.uniform(0.2, 1.0), "heal", None)

    def fault_crash(self) -> None:
        alive = [i for i in sorted(self.nodes) if i not in self.crashed]
        if len(self.crashed) >= 2:
            return
        leaders = self.leaders_now()
        victim = self.rng.choice(leaders if leaders and self.rng.random() < 0.4 else alive)
        self.crash(victim)
        self.push(self.now + self.rng.uniform(0.05, 0.8), "restart", victim)

    def fault_transfer(self) -> None:
        for lid in self.leaders_now():
            c = self.core(lid)
            voters = [v for v in c.latest_config.voters() if v != lid]
            target = self.rng.choice([None, *voters])
            try:
                got = c.transfer_leadership(target, self.now)
                self.log(f"transfer {lid} -> {got}")
                self.stats["transfer"] += 1
            except RaftError as exc:
                self.log(f"transfer refused: {exc}")
            self.after_input(lid)

    def fault_unreachable(self) -> None:
        """A spurious report: a random node is told its leader (or a random peer) is
        unreachable, whether or not it is."""
        alive = [i for i in sorted(self.nodes) if i not in self.crashed]
        nid = self.rng.choice(alive)
        c = self.core(nid)
        peer = c.leader_id if c.leader_id is not None and self.rng.random() < 0.7 else self.rng.choice(alive)
        if peer != nid:
            self.push(self.now, "unreachable", (nid, peer))

    def fault_read(self) -> None:
        for lid in self.leaders_now():
            self.counter += 1
            ctx = f"r{self.counter}".encode()
            try:
                self.core(lid).read_index(ctx, self.now)
            except RaftError:
                continue
            self.reads[ctx] = self.max_commit
            self.after_input(lid)

    def fault_membership(self) -> None:
        leaders = self.leaders_now()
        if not leaders:
            return
        lid = self.rng.choice(leaders)
        c = self.core(lid)
        conf = c.latest_config
        voters = conf.voters()
        nonvoters = [s.id for s in conf.servers if s.suffrage == Suffrage.NONVOTER]
        outside = [i for i in sorted(self.nodes) if conf.get(i) is None]
        rng = self.rng
        prev = conf.index if rng.random() < 0.8 else rng.choice((0, max(conf.index - 1, 1)))
        try:
            if outside and (len(voters) < 3 or rng.random() < 0.3):
                nid = rng.choice(outside)
                c.add_nonvoter(nid, f"addr-{nid}", prev, self.now)
                op = f"add_nonvoter {nid}"
            elif nonvoters and (len(voters) < 3 or rng.random() < 0.5):
                nid = rng.choice(nonvoters)
                c.add_voter(nid, f"addr-{nid}", prev, self.now)
                op = f"promote {nid}"
            elif len(voters) > 3 or rng.random() < 0.3:
                nid = rng.choice(list(voters))
                if rng.random() < 0.5:
                    c.demote_voter(nid, prev, self.now)
                    op = f"demote {nid}"
                else:
                    c.remove_server(nid, prev, self.now)
                    op = f"remove {nid}"
            elif nonvoters:
                nid = rng.choice(nonvoters)
                c.remove_server(nid, prev, self.now)
                op = f"remove {nid}"
            else:
                return
            if prev not in (0, conf.index):
                raise self.fail(f"stale prev_index {prev} (latest {conf.index}) accepted")
            self.log(f"{lid} membership {op} (prev {prev})")
            self.stats["membership"] += 1
        except ConfigurationChangedError as exc:
            if str(exc) != f"configuration changed since {prev} (latest is {conf.index})":
                raise self.fail(f"bad guard text: {exc}") from None
            self.stats["stale_guard"] += 1
        except RaftError as exc:
            self.log(f"membership refused: {exc}")
        self.after_input(lid)
