"""Prometheus metrics of one gossip node (own ``CollectorRegistry`` so several nodes fit in a process).

Names use the ``baton_p2p_`` prefix:

* ``baton_p2p_gossip_messages_total{version, result, reason}`` — every validated or refused message,
  by topic version (``v1``…``v4``, ``unknown``), ACCEPT/IGNORE/REJECT and the validator's reason;
* ``baton_p2p_validation_seconds`` — validator latency histogram;
* ``baton_p2p_equivocations_total`` — heights where a 2nd distinct signed block was seen;
* ``baton_p2p_published_total{version}`` — blocks this node published;
* ``baton_p2p_peers`` — connected peers; ``baton_p2p_bandwidth_bytes_total{direction}`` — gossip bytes
  in (messages received) and out (RPCs queued to peers).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GossipMetrics"]

_VALIDATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GossipMetrics:
    """The node's metrics; ``registry`` is what ``/metrics`` serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "baton_p2p_gossip_messages",
            "Gossip messages by topic version, validation result and reason",
            ["version", "result", "reason"],
            registry=r,
        )
        self.validation_seconds = Histogram(
            "baton_p2p_validation_seconds",
            "Time spent validating one gossip message",
            buckets=_VALIDATION_BUCKETS,
            registry=r,
        )
        self.equivocations = Counter(
            "baton_p2p_equivocations", "Heights with two different validly signed blocks", registry=r
        )
        self.published = Counter(
            "baton_p2p_published", "Blocks published by this node", ["version"], registry=r
        )
        self.bandwidth = Counter(
            "baton_p2p_bandwidth_bytes", "Gossip bytes received and sent", ["direction"], registry=r
        )
        self.peers = Gauge("baton_p2p_peers", "Connected libp2p peers", registry=r)

    def set_peer_count_fn(self, fn: Callable[[], float]) -> None:
        self.peers.set_function(fn)

    def verdict(self, version: str, result: str, reason: str) -> None:
        self.messages.labels(version=version, result=result, reason=reason).inc()

    def count(self, version: str, result: str, reason: str | None = None) -> float:
        """Current value of the message counter, summed over reasons unless ``reason`` is given."""
        total = 0.0
        for metric in self.messages.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                if labels.get("version") != version and version != "*":
                    continue
                if labels.get("result") != result:
                    continue
                if reason is not None and labels.get("reason") != reason:
                    continue
                total += sample.value
        return total
