"""Time each peer has spent in our gossipsub mesh, per topic (op-node's `timeInMesh`, in seconds).

py-libp2p's scorer keeps `time_in_mesh` as a counter that grows by one per mesh join and decays, which
is not a duration; op-node's admin API reports seconds. This sans-IO tracker is fed periodic snapshots
of the router's mesh (`topic → set of peers`) and the current time, and answers how long a peer has
been continuously in the mesh of a topic (resolution: the sampling interval).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping


class MeshTimes:
    """Continuous mesh membership start times, keyed by (peer, topic)."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since: dict[tuple[Hashable, str], float] = {}

    def observe(self, mesh: Mapping[str, Iterable[Hashable]], now: float) -> None:
        """Record a snapshot: peers newly in a topic's mesh start their clock, absent peers reset."""
        present = {(peer, topic) for topic, peers in mesh.items() for peer in peers}
        for key in list(self._since):
            if key not in present:
                del self._since[key]
        for key in present:
            self._since.setdefault(key, now)

    def seconds(self, peer: Hashable, topics: Iterable[str], now: float) -> float:
        """Longest continuous time `peer` has been in the mesh of any of `topics` (0.0 if none)."""
        best = 0.0
        for topic in topics:
            since = self._since.get((peer, topic))
            if since is not None:
                best = max(best, now - since)
        return best
