"""Host-level py-libp2p workarounds (see :mod:`p2p.compat`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libp2p.peer.id import ID

__all__ = ["gate_secured_connections", "set_agent_version"]


def set_agent_version(agent: str) -> None:
    """Set identify's agent version (process-wide).

    py-libp2p 0.8.1 reads the module constant ``identify.AGENT_VERSION`` (``py-libp2p/<version>``) when
    it builds each identify response and offers no host option for it.
    """
    from libp2p.identity.identify import identify as _identify

    _identify.AGENT_VERSION = agent


def gate_secured_connections(host: Any, allow_inbound: Callable[[ID], bool]) -> None:
    """Refuse inbound connections from blocked peers right after the Noise handshake.

    py-libp2p 0.8.1 has no ``InterceptSecured`` hook (go-libp2p ConnectionGater): the swarm's
    ``connection_gate`` only sees the remote address, so a blocked *peer id* could only be closed after
    the connection was registered (visible, briefly usable). This wraps the host's upgrader so a
    handshake with a refused peer fails like a security failure; outbound dials are left alone (they are
    gated before dialling, as in op-node).
    """
    from libp2p.transport.exceptions import SecurityUpgradeFailure

    upgrader = host.get_network().upgrader
    inner = upgrader.upgrade_security

    async def upgrade_security(raw_conn: Any, is_initiator: bool, peer_id: Any = None) -> Any:
        secured = await inner(raw_conn, is_initiator, peer_id)
        if not is_initiator:
            remote = secured.get_remote_peer()
            if not allow_inbound(remote):
                await secured.close()
                raise SecurityUpgradeFailure(f"peer {remote} is blocked by the connection gater")
        return secured

    upgrader.upgrade_security = upgrade_security
