"""Prometheus metrics of one gossip node (own ``CollectorRegistry`` so several nodes fit in a process).

Names use the ``baton_p2p_`` prefix:

* ``baton_p2p_gossip_messages_total{version, result, reason}`` — every validated or refused message,
  by topic version (``v1``…``v4``, ``unknown``), ACCEPT/IGNORE/REJECT and the validator's reason;
* ``baton_p2p_validation_seconds`` — validator latency histogram;
* ``baton_p2p_equivocations_total`` — heights where a 2nd distinct signed block was seen;
* ``baton_p2p_published_total{version}`` — blocks this node published;
* ``baton_p2p_peers`` — connected peers; ``baton_p2p_bandwidth_bytes_total{direction}`` — gossip bytes
  in (messages received) and out (RPCs queued to peers);
* ``baton_p2p_outbound_rpc_dropped_total{reason, kind}`` — RPCs py-libp2p dropped instead of sending
  (``queue_full``: the peer's 256-deep outbound queue was full; ``oversized``; ``no_stream``: the peer
  has no outbound pubsub stream), ``kind`` ``publish`` or ``control``;
  ``baton_p2p_outbound_messages_dropped_total{reason}`` — gossip messages inside them;
* ``baton_p2p_pubsub_events_total{event}`` — other pubsub-level outcomes that never reach the validator:
  ``duplicate`` (already seen), ``graylisted`` (sender below the graylist score), ``inbound_rpc_too_large``
  (stream reset), ``inbound_rpc_error`` (malformed RPC), and the outbound stream's health:
  ``outbound_stream_failed`` (write failed: reset/closed), ``outbound_stream_reopened`` (replaced, state
  kept), ``outbound_stream_reopen_failed`` and ``outbound_stream_stalled`` (no send-window progress for
  30 s) — both of which close the peer's connections;
* ``baton_p2p_outbound_queue_max`` — the deepest per-peer outbound queue right now.
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
        self.outbound_dropped = Counter(
            "baton_p2p_outbound_rpc_dropped",
            "Outbound pubsub RPCs dropped before sending, by reason and kind (publish/control)",
            ["reason", "kind"],
            registry=r,
        )
        self.outbound_messages_dropped = Counter(
            "baton_p2p_outbound_messages_dropped",
            "Gossip messages inside dropped outbound RPCs",
            ["reason"],
            registry=r,
        )
        self.pubsub_events = Counter(
            "baton_p2p_pubsub_events",
            "Pubsub outcomes before validation (duplicate, graylisted, inbound_rpc_too_large, ...)",
            ["event"],
            registry=r,
        )
        self.outbound_queue_max = Gauge(
            "baton_p2p_outbound_queue_max", "Deepest per-peer outbound RPC queue", registry=r
        )

    def set_peer_count_fn(self, fn: Callable[[], float]) -> None:
        self.peers.set_function(fn)

    def set_outbound_queue_fn(self, fn: Callable[[], float]) -> None:
        self.outbound_queue_max.set_function(fn)

    def dropped(self, reason: str, kind: str, messages: int) -> None:
        """An outbound RPC was dropped (hook for :attr:`p2p.compat.NoEquivocationGossipSub.on_drop`)."""
        self.outbound_dropped.labels(reason=reason, kind=kind).inc()
        if messages:
            self.outbound_messages_dropped.labels(reason=reason).inc(messages)

    def event(self, name: str) -> None:
        """A pubsub event (hook for :attr:`p2p.compat.NoSignPubsub.on_event`)."""
        self.pubsub_events.labels(event=name).inc()

    def total(self, name: str, **labels: str) -> float:
        """Sum of the ``_total`` samples of counter family ``name`` matching ``labels`` (tests, bench)."""
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name != name + "_total":
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

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
