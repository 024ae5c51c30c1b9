"""The Raft node: drives the sans-IO `RaftCore` with durable storage, the TCP transport,
timers and a state machine, and exposes the async API the conductor uses.

One task (`_main_loop`) owns the Ready/advance cycle: persist (fsync, in a worker thread)
→ send messages (a leader sends its appends before its own fsync, see
`Ready.send_before_persist`) → restore/apply to the state machine (resolving waiting proposals with the
FSM's result) → answer reads → advance → take a snapshot when due. Every other entry point
(inbound messages, API calls, timer ticks) only touches the core while holding `_lock`, which
the cycle also holds, so the core never sees input while a Ready is being handled.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from conductor.raft.core import RaftCore
from conductor.raft.fsm import StateMachine
from conductor.raft.storage import RaftStorage
from conductor.raft.transport import RaftTransport, TransportConfig, check_reachable, split_host_port
from conductor.raft.types import (
    CantBootstrapError,
    Configuration,
    EntryKind,
    NotLeaderError,
    RaftConfig,
    RaftError,
    Ready,
    Role,
    Server,
    Suffrage,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = structlog.get_logger(__name__)


class RaftTimeoutError(RaftError, TimeoutError):
    """The operation did not complete in time (it may still take effect later)."""


class LeadershipLostError(RaftError):
    def __init__(self, msg: str = "leadership lost while committing log") -> None:
        super().__init__(msg)


class RaftShutdownError(RaftError):
    def __init__(self, msg: str = "raft is already shutdown") -> None:
        super().__init__(msg)


@dataclass(slots=True)
class IOStats:
    """Durable-write counters (for metrics and benchmarks)."""

    persists: int = 0
    persist_seconds: float = 0.0
    persist_max: float = 0.0
    snapshots_installed: int = 0  # state machine reset from a leader's snapshot


@dataclass(slots=True)
class _Waiter:
    term: int = 0
    done: trio.Event = field(default_factory=trio.Event)
    result: object = None
    error: BaseException | None = None

    def resolve(self, result: object = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


class LeaderChanges:
    """hashicorp's LeaderCh: a buffer of one, the latest value wins. Async-iterate for bools."""

    def __init__(self) -> None:
        self._value: bool | None = None
        self._event = trio.Event()

    def push(self, value: bool) -> None:
        self._value = value
        self._event.set()

    def receive_nowait(self) -> bool | None:
        v, self._value = self._value, None
        self._event = trio.Event()
        return v

    async def receive(self) -> bool:
        while self._value is None:
            await self._event.wait()
            if self._value is None:
                self._event = trio.Event()
        v = self.receive_nowait()
        assert v is not None
        return v

    def __aiter__(self) -> LeaderChanges:
        return self

    async def __anext__(self) -> bool:
        return await self.receive()


class RaftNode:
    """One Raft server. ``await nursery.start(node.run)``; cancel the nursery to stop it."""

    def __init__(
        self,
        server_id: str,
        bind_addr: str,
        advertised_addr: str | None,
        storage_dir: str | os.PathLike[str],
        fsm: StateMachine,
        config: RaftConfig | None = None,
        *,
        secret: bytes | None = None,
        bootstrap: bool = False,
        clock: Callable[[], float] = trio.current_time,
        transport_config: TransportConfig | None = None,
        storage_sync: bool = True,
        segment_bytes: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        self.id = server_id
        self.fsm = fsm
        self.cfg = config or RaftConfig()
        self.bootstrap_flag = bootstrap
        self.fresh_bootstrap = False  # True when this start bootstrapped a new cluster
        self._clock = clock
        self._rng = rng or random.Random(os.urandom(16))
        self._storage_dir = Path(storage_dir)
        self._storage_args: dict[str, Any] = {"sync": storage_sync, "segment_bytes": segment_bytes}
        host, port = split_host_port(bind_addr)
        self.transport = RaftTransport(
            server_id,
            host,
            port,
            secret=secret,
            config=transport_config,
            advertised_addr=advertised_addr,
            on_unreachable=self._on_unreachable,
        )
        self._unreachable: set[str] = set()
        self.io_stats = IOStats()
        self.storage: RaftStorage | None = None
        self._core: RaftCore | None = None
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self._proposals: dict[int, _Waiter] = {}
        self._reads: dict[bytes, _Waiter] = {}
        self._read_ctr = itertools.count(1)
        self._leader_event = trio.Event()
        self._subscribers: list[LeaderChanges] = []
        self._role = Role.FOLLOWER
        self._leader_id: str | None = None
        self._applied = 0
        self._peers_conf: Configuration | None = None
        self._running = False
        self.log = log.bind(server_id=server_id)

    # ---------------------------------------------------------------- lifecycle

    @property
    def core(self) -> RaftCore:
        if self._core is None or not self._running:
            raise RaftShutdownError()
        return self._core

    @property
    def advertised_addr(self) -> str:
        return self.transport.advertised_addr or ""

    @property
    def port(self) -> int:
        return self.transport.port

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open storage, restore the state machine, listen, and run until cancelled."""
        storage = await trio.to_thread.run_sync(
            lambda: RaftStorage(self._storage_dir, self.id, **self._storage_args)
        )
        self.storage = storage
        try:
            is_new = storage.is_new()
            restored = await trio.to_thread.run_sync(storage.load)
            if restored.snapshot is not None:
                self.fsm.restore(restored.snapshot.data)
                self._applied = restored.snapshot.meta.index
            self._core = RaftCore(self.id, self.cfg, restored, self._rng, self._clock())
            async with trio.open_nursery() as nursery:
                await nursery.start(self.transport.run)
                self._running = True
                self._maybe_bootstrap(is_new)
                self._update_peers()
                nursery.start_soon(self._inbound_loop)
                nursery.start_soon(self._main_loop)
                self.log.info(
                    "raft node started",
                    addr=self.advertised_addr,
                    term=restored.hard_state.term,
                    last_index=restored.entries[-1].index if restored.entries else None,
                    snapshot=restored.snapshot.meta.index if restored.snapshot else None,
                )
                task_status.started()
        finally:
            self._running = False
            self._fail_all(RaftShutdownError())
            if self._role == Role.LEADER:
                self._notify(False)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(storage.close)

    def _maybe_bootstrap(self, is_new: bool) -> None:
        if not self.bootstrap_flag:
            return
        me = Server(self.id, self.advertised_addr, Suffrage.VOTER)
        if not is_new:
            self.log.info("raft bootstrap skipped", reason=str(CantBootstrapError()))
            return
        try:
            self.core.bootstrap([me], self._clock())
        except CantBootstrapError as e:
            self.log.info("raft bootstrap skipped", reason=str(e))
            return
        self.fresh_bootstrap = True
        self.log.info("raft bootstrapped a new single-voter cluster", addr=me.address)

    # ---------------------------------------------------------------- loops

    async def _inbound_loop(self) -> None:
        inbound = self.transport.inbound
        async for msg in inbound:
            async with self._lock:
                now = self._clock()
                self.core.step(msg, now)
                while True:
                    try:
                        more = inbound.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    self.core.step(more, now)
            self._wake.set()

    def _on_unreachable(self, peer_id: str) -> None:
        self._unreachable.add(peer_id)
        self._wake.set()

    def _report_unreachable(self) -> None:
        """Messages to these peers may have been lost, or the connection to them closed: a
        pipelining leader falls back to probing, and a follower that lost its leader's
        connection campaigns early (fast failover); see RaftCore.report_unreachable."""
        now = self._clock()
        for peer in sorted(self._unreachable):
            self.core.report_unreachable(peer, now)
        self._unreachable.clear()

    async def _main_loop(self) -> None:
        while True:
            async with self._lock:
                if self._unreachable:
                    self._report_unreachable()
                now = self._clock()
                deadline = self.core.next_deadline()
                if deadline is not None and now >= deadline:
                    self.core.tick(now)
                await self._drain_ready()
                deadline = self.core.next_deadline()
            delay = float("inf") if deadline is None else deadline - self._clock()
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._wake.wait()
            self._wake = trio.Event()

    async def _drain_ready(self) -> None:
        core = self.core
        while (rd := core.ready()) is not None:
            if rd.send_before_persist:
                # a leader's appends: the followers' fsyncs overlap ours (the transport's
                # sender tasks run while the fsync runs in a worker thread)
                for m in rd.messages:
                    self.transport.send(m)
            await self._persist(rd)
            if not rd.send_before_persist:
                for m in rd.messages:
                    self.transport.send(m)
            self._apply(rd)
            core.advance(rd)
            if rd.soft_state is not None:
                self._on_soft_state(rd)
            if rd.entries_to_append or rd.truncate_from is not None or rd.snapshot_to_apply is not None:
                self._update_peers()
            if core.snapshot_due():
                data = self.fsm.snapshot()
                core.compact(self._applied, data)
                self.log.info("raft snapshot taken", index=self._applied, size=len(data))

    async def _persist(self, rd: Ready) -> None:
        storage = self.storage
        assert storage is not None
        stable = storage.stable.state
        hs = rd.hard_state
        needs_io = bool(
            rd.entries_to_append
            or rd.snapshot_to_save is not None
            or rd.truncate_from is not None
            or rd.compact_to is not None
            or (hs is not None and (hs.term, hs.vote) != (stable.term, stable.vote))
            or (hs is not None and not storage.stable.exists())
        )

        def work() -> None:
            storage.persist(
                hard_state=hs,
                snapshot=rd.snapshot_to_save,
                compact_to=rd.compact_to,
                truncate_from=rd.truncate_from,
                entries=rd.entries_to_append,
            )

        if needs_io:
            t0 = time.perf_counter()
            await trio.to_thread.run_sync(work)
            dt = time.perf_counter() - t0
            self.io_stats.persists += 1
            self.io_stats.persist_seconds += dt
            self.io_stats.persist_max = max(self.io_stats.persist_max, dt)
        else:
            work()

    def _apply(self, rd: Ready) -> None:
        if rd.snapshot_to_apply is not None:
            meta = rd.snapshot_to_apply.meta
            self.fsm.restore(rd.snapshot_to_apply.data)
            self._applied = meta.index
            for idx in [i for i in self._proposals if i <= meta.index]:
                self._proposals.pop(idx).resolve(error=LeadershipLostError())
            self.io_stats.snapshots_installed += 1
            self.log.info("raft restored state machine from snapshot", index=meta.index, term=meta.term)
        for e in rd.committed_entries:
            result: object = None
            if e.kind == EntryKind.NORMAL:
                try:
                    result = self.fsm.apply(e)
                except Exception as exc:  # the FSM's error is the proposal's response
                    self.log.error("raft state machine apply failed", index=e.index, error=repr(exc))
                    result = exc
            self._applied = e.index
            w = self._proposals.pop(e.index, None)
            if w is not None:
                if w.term == e.term:
                    w.resolve(result)
                else:
                    w.resolve(error=LeadershipLostError())
        for rs in rd.read_states:
            rw = self._reads.pop(rs.ctx, None)
            if rw is not None:
                rw.resolve(self._applied)
        for ctx in rd.dropped_reads:
            rw = self._reads.pop(ctx, None)
            if rw is not None:
                rw.resolve(error=LeadershipLostError("leadership lost while confirming reads"))

    def _on_soft_state(self, rd: Ready) -> None:
        ss = rd.soft_state
        assert ss is not None
        was_leader = self._role == Role.LEADER
        if ss.role != self._role:
            self.log.debug("raft role change", role=ss.role.name.lower(), term=ss.term, leader=ss.leader_id)
        self._role = ss.role
        if ss.leader_id != self._leader_id:
            self._leader_id = ss.leader_id
            self._leader_event.set()
            self._leader_event = trio.Event()
        is_leader = ss.role == Role.LEADER
        if is_leader and not was_leader:
            self.log.info("raft: became leader", term=ss.term)
            self._notify(True)
        elif was_leader and not is_leader:
            self.log.info("raft: lost leadership", term=ss.term, leader=ss.leader_id)
            self._notify(False)
            for w in self._proposals.values():
                w.resolve(error=LeadershipLostError())
            self._proposals.clear()

    def _notify(self, value: bool) -> None:
        for sub in self._subscribers:
            sub.push(value)

    def _update_peers(self) -> None:
        conf = self.core.latest_config
        if conf != self._peers_conf:
            self._peers_conf = conf
            self.transport.set_peers({s.id: s.address for s in conf.servers})

    def _fail_all(self, err: BaseException) -> None:
        for w in [*self._proposals.values(), *self._reads.values()]:
            w.resolve(error=err)
        self._proposals.clear()
        self._reads.clear()

    # ---------------------------------------------------------------- API helpers

    async def _submit(self, fn: Callable[[float], int]) -> _Waiter:
        """Call a core API under the lock; register a waiter for the entry it returns."""
        async with self._lock:
            core = self.core
            index = fn(self._clock())
            w = _Waiter(term=core.term)
            self._proposals[index] = w
        self._wake.set()
        return w

    @staticmethod
    async def _wait(w: _Waiter, timeout: float, what: str) -> object:  # noqa: ASYNC109
        with trio.move_on_after(timeout):
            await w.done.wait()
        if not w.done.is_set():
            raise RaftTimeoutError(f"timed out waiting for {what}")
        if w.error is not None:
            raise w.error
        return w.result

    # ---------------------------------------------------------------- public API

    async def propose(self, data: bytes, timeout: float = 5.0) -> object:  # noqa: ASYNC109
        """Replicate ``data``; return the FSM's result once it is committed and applied here.
        Raises NotLeaderError, LeadershipTransferInProgressError, LeadershipLostError,
        RaftTimeoutError (a TimeoutError: the entry may still commit later)."""
        w = await self._submit(lambda now: self.core.propose(data, now))
        try:
            return await self._wait(w, timeout, "the entry to commit")
        finally:
            self._drop_waiter(w)

    def _drop_waiter(self, w: _Waiter) -> None:
        for idx, other in list(self._proposals.items()):
            if other is w:
                del self._proposals[idx]

    def leader_changes(self) -> LeaderChanges:
        """A new subscription to leadership changes (True = became leader, False = lost)."""
        sub = LeaderChanges()
        self._subscribers.append(sub)
        return sub

    def is_leader(self) -> bool:
        return self._running and self._role == Role.LEADER

    def leader(self) -> tuple[str, str] | None:
        if not self._running:
            return None
        st = self.core.status()
        if st.leader_id is None:
            return None
        return st.leader_id, self._leader_address(st.leader_id, st.leader_address)

    def _leader_address(self, leader_id: str | None, addr: str | None) -> str:
        if leader_id is None:
            return ""
        if leader_id == self.id:
            return self.advertised_addr
        return addr or self.transport.address_of(leader_id) or ""

    async def add_voter(self, server_id: str, addr: str, prev_index: int = 0, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._precheck(addr)
        w = await self._submit(lambda now: self.core.add_voter(server_id, addr, prev_index, now))
        await self._wait(w, timeout, "the configuration change to commit")

    async def add_nonvoter(
        self,
        server_id: str,
        addr: str,
        prev_index: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        await self._precheck(addr)
        w = await self._submit(lambda now: self.core.add_nonvoter(server_id, addr, prev_index, now))
        await self._wait(w, timeout, "the configuration change to commit")

    async def demote_voter(self, server_id: str, prev_index: int = 0, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        w = await self._submit(lambda now: self.core.demote_voter(server_id, prev_index, now))
        await self._wait(w, timeout, "the configuration change to commit")

    async def remove_server(self, server_id: str, prev_index: int = 0, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        w = await self._submit(lambda now: self.core.remove_server(server_id, prev_index, now))
        await self._wait(w, timeout, "the configuration change to commit")

    async def _precheck(self, addr: str) -> None:
        try:
            await check_reachable(addr, 5.0)
        except (OSError, ValueError) as e:
            raise RaftError(f"dial tcp {addr}: {e}") from e

    def membership(self) -> tuple[list[Server], int]:
        """The latest configuration (this node's view) and its version (log index)."""
        conf = self.core.status().configuration
        return list(conf.servers), conf.index

    async def transfer_leadership(
        self,
        target_id: str | None = None,
        target_addr: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Hand leadership to ``target_id`` (None: the most up-to-date voter); returns the new
        leader's id once this node has seen it. ``target_addr`` is accepted for API parity."""
        async with self._lock:
            now = self._clock()
            self.core.transfer_leadership(target_id, now)
        self._wake.set()
        with trio.move_on_after(timeout):
            while self._leader_id in (None, self.id):
                await self._leader_event.wait()
            assert self._leader_id is not None
            return self._leader_id
        raise RaftTimeoutError("timed out waiting for the leadership transfer")

    async def barrier(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Leader only: wait until every entry committed before the call is applied here
        (read-index with a quorum check). Returns the applied index."""
        ctx = f"{self.id}/{next(self._read_ctr)}".encode()
        w = _Waiter()
        async with self._lock:
            if not self.is_leader():
                raise NotLeaderError()
            self._reads[ctx] = w
            try:
                self.core.read_index(ctx, self._clock())
            except BaseException:
                self._reads.pop(ctx, None)
                raise
        self._wake.set()
        try:
            res = await self._wait(w, timeout, "the barrier")
        finally:
            self._reads.pop(ctx, None)
        assert isinstance(res, int)
        return res

    def status(self) -> dict[str, Any]:
        st = self.core.status()
        return {
            "id": self.id,
            "term": st.term,
            "commit_index": st.commit,
            "applied_index": self._applied,
            "role": st.role.name.lower(),
            "leader_id": st.leader_id,
            "leader_addr": self._leader_address(st.leader_id, st.leader_address) or None,
            "last_log_index": st.last_index,
            "configuration": {
                "version": st.configuration.index,
                "servers": [
                    {"id": s.id, "addr": s.address, "suffrage": int(s.suffrage)}
                    for s in st.configuration.servers
                ],
            },
        }

    @property
    def applied_index(self) -> int:
        return self._applied
