"""Score-based peer banning (op-node's peer monitor, spec §7.3).

Every ``interval`` (1 s) the monitor looks at the *next* connected peer, round-robin; if its total peer score
is below ``threshold`` (−100) and the peer is not static/protected, it is banned until ``now + duration``
(1 h) and disconnected. :class:`BanMonitor` is the pure policy (fed the connected set, scores and time);
:func:`run_ban_monitor` is the trio loop that drives it with callbacks supplied by the node.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from baton.log import get_logger

if TYPE_CHECKING:
    # mypy does not see trio's re-export of TaskStatus
    from trio_typing import TaskStatus

__all__ = ["DEFAULT_BAN_DURATION", "DEFAULT_BAN_THRESHOLD", "BanDecision", "BanMonitor", "run_ban_monitor"]

log = get_logger("p2p.banning")

DEFAULT_BAN_THRESHOLD = -100.0
DEFAULT_BAN_DURATION = 3600.0
DEFAULT_CHECK_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class BanDecision:
    peer_id: str
    score: float
    until: float


class BanMonitor:
    """Round-robin score check. Pure: no I/O, no clock."""

    def __init__(
        self, threshold: float = DEFAULT_BAN_THRESHOLD, duration: float = DEFAULT_BAN_DURATION
    ) -> None:
        if duration <= 0:
            raise ValueError("ban duration must be positive")
        self.threshold = threshold
        self.duration = duration
        self._last: str | None = None

    def next_peer(self, connected: Sequence[str]) -> str | None:
        """The peer to check now: the first in sorted order after the last one checked (wrapping)."""
        if not connected:
            return None
        ordered = sorted(set(connected))
        if self._last is not None:
            for pid in ordered:
                if pid > self._last:
                    self._last = pid
                    return pid
        self._last = ordered[0]
        return ordered[0]

    def decide(self, peer_id: str, score: float | None, protected: bool, now: float) -> BanDecision | None:
        """Ban until ``now + duration`` iff the score is below threshold and the peer is not protected."""
        if protected or score is None or math.isnan(score):
            return None
        if score < self.threshold:
            return BanDecision(peer_id, score, now + self.duration)
        return None

    def step(
        self,
        connected: Sequence[str],
        score_of: Callable[[str], float | None],
        is_protected: Callable[[str], bool],
        now: float,
    ) -> BanDecision | None:
        """One tick: pick the next peer and decide."""
        pid = self.next_peer(connected)
        if pid is None:
            return None
        return self.decide(pid, score_of(pid), is_protected(pid), now)


async def run_ban_monitor(
    monitor: BanMonitor,
    *,
    connected_peers: Callable[[], Sequence[str]],
    score_of: Callable[[str], float | None],
    is_protected: Callable[[str], bool],
    ban: Callable[[str, float], Awaitable[None]],
    clock: Callable[[], float] = time.time,
    interval: float = DEFAULT_CHECK_INTERVAL,
    task_status: TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run forever: every ``interval`` s, :meth:`BanMonitor.step`, and ``await ban(peer_id, until)`` on a ban.

    ``ban`` is expected to record the ban in the gater and close the peer (``HostGate.ban_peer``).
    Errors from the callbacks are logged, never fatal.
    """
    task_status.started()
    while True:
        await trio.sleep(interval)
        try:
            decision = monitor.step(connected_peers(), score_of, is_protected, clock())
            if decision is not None:
                log.warning(
                    "peer_banned_low_score",
                    peer=decision.peer_id,
                    score=decision.score,
                    threshold=monitor.threshold,
                    until=decision.until,
                )
                await ban(decision.peer_id, decision.until)
        except Exception:
            log.exception("ban_monitor_tick_failed")
