"""Build the libp2p host the way op-node does (spec §7.1): TCP, Noise only, yamux then mplex, identify, ping.

py-libp2p's ``new_host`` default security set also offers TLS, SECIO and *plaintext*; op-baton passes an
explicit ``sec_opt`` with Noise XX (``/noise``) alone. Muxers are ``/yamux/1.0.0`` (preferred) and
``/mplex/6.7.0``. Identify (``/ipfs/id/1.0.0``, agent ``op-baton/<version>``) and ping
(``/ipfs/ping/1.0.0``) are py-libp2p's defaults. The identity is a secp256k1 key pair (op-node key file,
loaded by :mod:`p2p.keys`), so peer ids are the go-compatible ``16Uiu2…`` form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import multiaddr
from libp2p import new_host
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from baton import __version__
from p2p.compat import set_agent_version

__all__ = [
    "AGENT_VERSION",
    "MUXERS",
    "SECURITY_PROTOCOLS",
    "build_host",
    "listen_multiaddr",
    "listen_port_of",
    "peer_multiaddrs",
]

AGENT_VERSION = f"op-baton/{__version__}"
SECURITY_PROTOCOLS = (str(NOISE_PROTOCOL_ID),)
MUXERS = {"yamux": (TProtocol(YAMUX_PROTOCOL_ID), Yamux), "mplex": (TProtocol(MPLEX_PROTOCOL_ID), Mplex)}


def listen_multiaddr(ip: str, port: int) -> Any:
    """``/ip4/<ip>/tcp/<port>`` (or ``/ip6/...`` for an IPv6 literal)."""
    family = "ip6" if ":" in ip else "ip4"
    return multiaddr.Multiaddr(f"/{family}/{ip}/tcp/{port}")


def build_host(
    key_pair: KeyPair,
    *,
    muxers: Sequence[str] = ("yamux", "mplex"),
    agent_version: str = AGENT_VERSION,
    negotiate_timeout: int = 10,
    peers_hi: int = 30,
    peers_grace: float = 30.0,
) -> Any:
    """A py-libp2p ``BasicHost`` with op-node's transport stack; start it with ``host.run(listen_addrs)``.

    Connection manager: py-libp2p's auto-connector (which re-dials every peerstore peer while below
    ``low_watermark`` = 100 by default) is turned off with a zero low watermark — op-node dials only
    static peers (and discovery), and a blocked/disconnected peer must stay gone. ``peers_hi`` is the
    trim high-water mark (op-node ``--p2p.peers.hi``); the hard cap leaves headroom above it.
    """
    unknown = [m for m in muxers if m not in MUXERS]
    if unknown or not muxers:
        raise ValueError(f"unknown muxer(s) {unknown}; choose from {sorted(MUXERS)}")
    set_agent_version(agent_version)
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    muxer_opt: dict[TProtocol, Any] = {MUXERS[m][0]: MUXERS[m][1] for m in muxers}
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=muxer_opt,
        enable_tcp=True,
        enable_mDNS=False,
        enable_upnp=False,
        negotiate_timeout=negotiate_timeout,
        connection_config=ConnectionConfig(
            min_connections=0,
            low_watermark=0,
            high_watermark=peers_hi,
            max_connections=max(2 * peers_hi, peers_hi + 16),
            grace_period=peers_grace,
            max_connections_per_peer=3,
        ),
    )


def listen_port_of(host: Any) -> int:
    """The TCP port the host is actually listening on (resolves a requested port 0)."""
    for addr in host.get_transport_addrs():
        port = addr.value_for_protocol("tcp")
        if port:
            return int(port)
    raise RuntimeError("host is not listening on TCP")


def peer_multiaddrs(host: Any, advertise_ip: str | None = None) -> list[str]:
    """Dialable ``/ip4/<ip>/tcp/<port>/p2p/<id>`` strings for this host.

    When listening on 0.0.0.0 the loopback address is reported unless ``advertise_ip`` is given.
    """
    peer_id = host.get_id().to_base58()
    out: list[str] = []
    for addr in host.get_transport_addrs():
        text = str(addr)
        for wildcard, repl in (("/ip4/0.0.0.0/", "/ip4/127.0.0.1/"), ("/ip6/::/", "/ip6/::1/")):
            if text.startswith(wildcard):
                text = text.replace(wildcard, f"/ip4/{advertise_ip}/" if advertise_ip else repl, 1)
        if "/p2p/" not in text:
            text = f"{text}/p2p/{peer_id}"
        if text not in out:
            out.append(text)
    return out
