"""Static peers: parse ``--p2p.static``, protect them, dial at start and keep re-dialling (spec §7.2).

op-node protects every static peer in the connection manager (tag ``static``), dials them at start and
re-dials a disconnected one every minute (30 s dial timeout). py-libp2p has neither protection-driven
reconnects nor a re-dial loop (spec §9), so :class:`StaticPeerDialer` runs one task per static peer:

* connected → wait until it disconnects (a network notifee wakes the task at once; a slow poll backs it up);
* disconnected → dial (``dial_timeout``, 30 s); on failure wait with exponential backoff ``min_backoff``
  (0.5 s) doubling to ``max_backoff`` (30 s); the backoff resets only after a connection stayed up for
  ``stable_after`` (10 s), so a peer that accepts and immediately drops us is not hammered. This is
  faster than op-node's fixed 1 min re-dial, so a restarted peer is back within seconds;
* a peer blocked/banned by the gater (or all of whose addresses are) is not dialled until unblocked
  (re-checked every ``poll_interval``, or at once after :meth:`StaticPeerDialer.wake`).

It also keeps the ``api-protected`` set for ``opp2p_protectPeer``/``opp2p_unprotectPeer``; static and
api-protected peers are exempt from score bans (:meth:`is_protected`) and tagged in py-libp2p's connection
manager when the swarm supports ``protect``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from baton.log import get_logger
from p2p.gater import ConnectionGater
from p2p.notifee import NullNotifee

if TYPE_CHECKING:
    # mypy does not see trio's re-export of TaskStatus
    from trio_typing import TaskStatus

__all__ = [
    "API_PROTECTED_TAG",
    "STATIC_TAG",
    "StaticPeer",
    "StaticPeerConfigError",
    "StaticPeerDialer",
    "parse_peer_multiaddr",
    "parse_static_peers",
]

log = get_logger("p2p.peers")

STATIC_TAG = "static"
API_PROTECTED_TAG = "api-protected"


class StaticPeerConfigError(ValueError):
    """A ``--p2p.static`` entry is not a usable multiaddr with ``/p2p/<peer id>``."""


@dataclass(frozen=True, slots=True)
class StaticPeer:
    peer_id: ID
    addr: Multiaddr  # transport part, without /p2p
    text: str

    @property
    def ip(self) -> str | None:
        for proto in ("ip4", "ip6"):
            try:
                return str(self.addr.value_for_protocol(proto))
            except Exception:
                continue
        return None


def parse_peer_multiaddr(text: str) -> StaticPeer:
    """``/ip4/1.2.3.4/tcp/9222/p2p/16Uiu2…`` → :class:`StaticPeer`; ``StaticPeerConfigError`` otherwise."""
    s = text.strip()
    try:
        maddr = Multiaddr(s)
    except Exception as exc:
        raise StaticPeerConfigError(f"bad static peer address {text!r}: {exc}") from None
    try:
        peer_str = maddr.value_for_protocol("p2p")
    except Exception:
        peer_str = None
    if not peer_str:
        raise StaticPeerConfigError(f"bad static peer address {text!r}: missing /p2p/<peer id>")
    try:
        peer_id = ID.from_base58(str(peer_str))
    except Exception:
        raise StaticPeerConfigError(f"bad static peer address {text!r}: bad peer id") from None
    transport = maddr.decapsulate(Multiaddr(f"/p2p/{peer_str}"))
    if not str(transport) or str(transport) == "/":
        raise StaticPeerConfigError(f"bad static peer address {text!r}: no transport address before /p2p")
    return StaticPeer(peer_id=peer_id, addr=transport, text=s)


def parse_static_peers(entries: Iterable[str], self_id: ID | None = None) -> list[StaticPeer]:
    """Parse ``--p2p.static`` entries (comma-separated strings allowed); own address dropped, dups merged."""
    out: list[StaticPeer] = []
    seen: set[tuple[bytes, str]] = set()
    for entry in entries:
        for part in entry.split(","):
            if not part.strip():
                continue
            peer = parse_peer_multiaddr(part)
            if self_id is not None and peer.peer_id == self_id:
                log.info("static_peer_self_ignored", addr=peer.text)
                continue
            key = (peer.peer_id.to_bytes(), str(peer.addr))
            if key not in seen:
                seen.add(key)
                out.append(peer)
    return out


class StaticPeerDialer(NullNotifee):
    """Keeps static peers connected; tracks static + api-protected peers. Run with ``nursery.start``."""

    def __init__(
        self,
        host: Any,
        peers: Sequence[str | StaticPeer],
        gater: ConnectionGater | None = None,
        *,
        clock: Callable[[], float] = time.time,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        dial_timeout: float = 30.0,
        poll_interval: float = 5.0,
        stable_after: float = 10.0,
    ) -> None:
        self.host = host
        self.gater = gater
        self.clock = clock
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.dial_timeout = dial_timeout
        self.poll_interval = poll_interval
        self.stable_after = stable_after
        self_id: ID = host.get_id()
        parsed: list[StaticPeer] = []
        for p in peers:
            if isinstance(p, StaticPeer):
                if p.peer_id != self_id:
                    parsed.append(p)
            else:
                parsed.extend(parse_static_peers([p], self_id))
        self._by_peer: dict[ID, list[StaticPeer]] = {}
        for sp in parsed:
            self._by_peer.setdefault(sp.peer_id, []).append(sp)
        self._api_protected: set[str] = set()
        self._wake: dict[ID, trio.Event] = {pid: trio.Event() for pid in self._by_peer}
        self.dial_attempts: dict[ID, int] = dict.fromkeys(self._by_peer, 0)
        network = host.get_network()
        for pid in self._by_peer:
            _cm_call(network, "protect", pid, STATIC_TAG)

    # -- protection ---------------------------------------------------------------------------------

    @property
    def static_peers(self) -> list[StaticPeer]:
        return [sp for group in self._by_peer.values() for sp in group]

    def static_peer_ids(self) -> set[str]:
        return {pid.to_base58() for pid in self._by_peer}

    def is_static(self, peer_id: str | ID) -> bool:
        return _b58(peer_id) in self.static_peer_ids()

    def protected_peers(self) -> set[str]:
        """Static ∪ api-protected peer ids (base58)."""
        return self.static_peer_ids() | self._api_protected

    def is_protected(self, peer_id: str | ID) -> bool:
        return _b58(peer_id) in self.protected_peers()

    def protect(self, peer_id: str | ID) -> None:
        """``opp2p_protectPeer``: tag ``api-protected``."""
        pid = _b58(peer_id)
        self._api_protected.add(pid)
        _cm_call(self.host.get_network(), "protect", ID.from_base58(pid), API_PROTECTED_TAG)

    def unprotect(self, peer_id: str | ID) -> None:
        """``opp2p_unprotectPeer``: drop the ``api-protected`` tag (static protection stays)."""
        pid = _b58(peer_id)
        self._api_protected.discard(pid)
        _cm_call(self.host.get_network(), "unprotect", ID.from_base58(pid), API_PROTECTED_TAG)

    # -- state --------------------------------------------------------------------------------------

    def is_connected(self, peer_id: ID) -> bool:
        conns = self.host.get_network().connections.get(peer_id) or []
        return any(not getattr(c, "is_closed", False) for c in conns)

    def _dial_allowed(self, peer_id: ID, addrs: Sequence[StaticPeer]) -> list[StaticPeer]:
        if self.gater is None:
            return list(addrs)
        now = self.clock()
        if self.gater.is_peer_blocked(peer_id, now):
            return []
        return [sp for sp in addrs if self.gater.allow_dial(None, sp.ip, now)]

    # -- notifee (wakes the per-peer task on disconnect) ---------------------------------------------

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer_id = getattr(getattr(conn, "muxed_conn", None), "peer_id", None)
        event = self._wake.get(peer_id) if peer_id is not None else None
        if event is not None:
            event.set()

    def wake(self, peer_id: ID | None = None) -> None:
        """Re-check now (e.g. after ``opp2p_unblockPeer``): one peer, or all when ``None``."""
        for pid, event in self._wake.items():
            if peer_id is None or pid == peer_id:
                event.set()

    # -- loop ---------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Dial every static peer now and keep them connected until cancelled."""
        network = self.host.get_network()
        network.register_notifee(self)
        try:
            async with trio.open_nursery() as nursery:
                for pid, addrs in self._by_peer.items():
                    nursery.start_soon(self._keep_connected, pid, addrs)
                task_status.started()
        finally:
            remove = getattr(network, "remove_notifee", None)
            if remove is not None:
                remove(self)

    async def _sleep_or_wake(self, peer_id: ID, seconds: float) -> None:
        event = self._wake[peer_id]
        with trio.move_on_after(seconds):
            await event.wait()
        self._wake[peer_id] = trio.Event()

    async def _keep_connected(self, peer_id: ID, addrs: list[StaticPeer]) -> None:
        backoff = self.min_backoff
        while True:
            if self.is_connected(peer_id):
                since = trio.current_time()
                while self.is_connected(peer_id):
                    await self._sleep_or_wake(peer_id, self.poll_interval)
                if trio.current_time() - since >= self.stable_after:
                    backoff = self.min_backoff  # a long-lived connection dropped: re-dial at once
                    continue
                # the connection did not last (peer restarting, or it refuses us): back off
            else:
                allowed = self._dial_allowed(peer_id, addrs)
                if not allowed:
                    log.debug("static_peer_blocked", peer=str(peer_id))
                    await self._sleep_or_wake(peer_id, self.poll_interval)  # re-check: may get unblocked
                    continue
                if await self._dial(peer_id, allowed):
                    continue
            delay = backoff * random.uniform(0.8, 1.2)
            backoff = min(backoff * 2, self.max_backoff)
            await self._sleep_or_wake(peer_id, delay)

    async def _dial(self, peer_id: ID, addrs: list[StaticPeer]) -> bool:
        network = self.host.get_network()
        # py-libp2p refuses re-dials for 60 s after a failure (negative cache); our own backoff rules here.
        _cm_call(network, "unblock_peer", peer_id)
        # py-libp2p dials only one address per transport class from the peerstore; stale addresses (an old
        # port learned earlier) could shadow the configured one forever, so the static addresses rule.
        _cm_call(self.host.get_peerstore(), "clear_addrs", peer_id)
        self.dial_attempts[peer_id] = self.dial_attempts.get(peer_id, 0) + 1
        info = PeerInfo(peer_id, [sp.addr for sp in addrs])
        with trio.move_on_after(self.dial_timeout) as scope:
            try:
                await self.host.connect(info)
            except Exception as exc:
                log.debug("static_peer_dial_failed", peer=str(peer_id), error=str(exc))
                return False
        if scope.cancelled_caught:
            log.debug("static_peer_dial_timeout", peer=str(peer_id), timeout=self.dial_timeout)
            return False
        connected = self.is_connected(peer_id)
        if connected:
            log.info("static_peer_connected", peer=str(peer_id))
        return connected


def _b58(peer_id: str | ID) -> str:
    return peer_id.to_base58() if isinstance(peer_id, ID) else str(peer_id)


def _cm_call(network: Any, method: str, *args: Any) -> None:
    fn = getattr(network, method, None)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as exc:  # connection-manager bookkeeping is best-effort
        log.debug("conn_manager_call_failed", method=method, error=str(exc))
