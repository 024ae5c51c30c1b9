"""Every py-libp2p 0.8.1 workaround op-baton needs to gossip like op-node, in one place.

py-libp2p's pubsub differs from go-libp2p-pubsub as configured by op-node (StrictNoSign, content
addressed message ids, tri-state validation, 10 MiB messages, 256-deep peer queues). Each fix below is
one clearly named class or function whose comment names the 0.8.1 behaviour it replaces (see
``/work/shared/specs/py-libp2p-interop.md`` and spec §9 of ``p2p.md``):

* :class:`NoSignPubsub` — publishes ``Message{data, topic}`` only (0.8.1 always sets from/seqno);
  refuses inbound messages carrying from/seqno/signature/key (StrictNoSign, 0.8.1 accepts them);
  three-way verdicts ACCEPT / IGNORE / REJECT (0.8.1 validators are boolean: False always penalises);
  per-peer outbound queue depth 256 and 10 MiB RPCs both ways (0.8.1: 32 and 1 MiB, not configurable);
  writes each peer's stream with backpressure and re-opens a failed one keeping the router state (0.8.1
  dies after 5 s of a shut yamux window and forgets the peer's subscriptions — a silently dead link);
  reads each peer's stream through :class:`RpcReader` (0.8.1 reads the length prefix byte by byte, and
  every yamux read sends a WINDOW_UPDATE), handles messages in order inline, and verifies a peer's
  signed peer record only when it changes (0.8.1: on every RPC, twice for control RPCs).
* :class:`NoEquivocationGossipSub` — skips py-libp2p's from+seqno "equivocation" check for unsigned
  messages (0.8.1 drops every unsigned message after the first) and keys the message cache by the
  custom id (:class:`MessageIdCache`; 0.8.1 keys it by from+seqno so IHAVE advertises ``b""``); honours
  Dlazy (0.8.1 hard-codes 6); its
  ``publish`` attaches no signed peer record (0.8.1 builds one per RPC, ~0.8 ms), sends IDONTWANT the
  go way (before validation, received messages ≥ 1 KiB only), queues an RPC without copying/splitting
  it per peer, and reports every dropped outbound RPC (``on_drop``; 0.8.1 logs it at DEBUG only).
* :func:`op_gossipsub_router` — the router with op-node's parameters and the non-standard
  adaptive-gossip / spam / eclipse protections off.
* :func:`light_score_params` — op-node's "light" peer-score profile mapped onto py-libp2p's scorer, whose
  penalty weights are *positive* numbers that get subtracted (go uses negative weights).
* :func:`set_agent_version` — identify's agent string (0.8.1 hard-codes ``py-libp2p/<version>``).
"""

from p2p.compat.host import gate_secured_connections, set_agent_version
from p2p.compat.pubsub import (
    MAX_RPC_SIZE,
    OUTBOUND_QUEUE_SIZE,
    Disposition,
    NoSignPubsub,
    RpcReader,
    SizedPeerQueues,
)
from p2p.compat.router import (
    IDONTWANT_THRESHOLD,
    MessageIdCache,
    NoEquivocationGossipSub,
    light_score_params,
    no_score_params,
    op_gossipsub_router,
    score_decay,
)

__all__ = [
    "IDONTWANT_THRESHOLD",
    "MAX_RPC_SIZE",
    "OUTBOUND_QUEUE_SIZE",
    "Disposition",
    "MessageIdCache",
    "NoEquivocationGossipSub",
    "NoSignPubsub",
    "RpcReader",
    "SizedPeerQueues",
    "gate_secured_connections",
    "light_score_params",
    "no_score_params",
    "op_gossipsub_router",
    "score_decay",
    "set_agent_version",
]
