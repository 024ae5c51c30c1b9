"""``GossipConfig``: everything a :class:`p2p.node.GossipNode` needs, validated with one clear error.

Defaults follow op-node (spec §4.3, §7.5). Durations are seconds (floats); :func:`parse_duration`
accepts Go-style strings (``60s``, ``1h``, ``10m``, ``1h30m``, ``500ms``) for the CLI.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from p2p.topics import RollupConfig

__all__ = ["ConfigError", "GossipConfig", "parse_duration"]


class ConfigError(ValueError):
    """Invalid configuration; the message is a single line meant for the operator."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, *, name: str = "duration") -> float:
    """Parse a Go ``time.Duration`` string (or a bare number of seconds) into seconds."""
    s = text.strip()
    if not s:
        raise ConfigError(f"{name}: empty duration")
    try:
        return float(s)
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ConfigError(f"{name}: invalid duration {text!r} (use e.g. 60s, 10m, 1h)")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total


@dataclass
class GossipConfig:
    """Configuration of one gossip node (library form of ``baton p2p run``'s flags)."""

    chain_id: int
    rollup: RollupConfig | None = None
    # Expected unsafe-block signer (20 bytes). None: taken from the sequencer key if set, else every
    # block is IGNOREd until a signer source provides one.
    unsafe_block_signer: bytes | None = None
    sequencer_key: bytes | None = None  # 32-byte secp256k1 block-signing key (sequencer mode)
    listen_ip: str = "0.0.0.0"
    listen_port: int = 9222
    advertise_ip: str | None = None
    static_peers: tuple[str, ...] = ()
    priv_path: str = "opnode_p2p_priv.txt"
    # Library default: in memory (tests/embedders never write to the cwd). ``baton p2p run`` defaults to
    # op-node's persisted ``opnode_peerstore_db`` (p2p.node_cli) so blocks and bans survive restarts.
    peerstore_path: str = "memory"
    ban_peers: bool = True
    ban_threshold: float = -100.0
    ban_duration: float = 3600.0
    peers_lo: int = 20
    peers_hi: int = 30
    peers_grace: float = 30.0
    scoring: str = "light"
    timestamp_threshold: float = 60.0
    mesh_d: int = 8
    mesh_dlo: int = 6
    mesh_dhi: int = 12
    mesh_dlazy: int = 6
    req_resp: bool = True
    heartbeat: float = 0.5
    fanout_ttl: int = 24
    history_length: int = 12
    history_gossip: int = 3
    seen_ttl: int = 65
    outbound_queue_size: int = 256
    muxers: tuple[str, ...] = ("yamux", "mplex")
    recent_blocks_limit: int = 1024
    signer_grace_period: int = 3 * 3600
    extra: dict[str, object] = field(default_factory=dict)

    def validate(self) -> GossipConfig:
        """Raise :class:`ConfigError` naming the first bad field; return self for chaining."""
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int) or self.chain_id <= 0:
            raise ConfigError(f"--chain-id must be a positive integer, got {self.chain_id!r}")
        if self.rollup is not None and self.rollup.l2_chain_id != self.chain_id:
            raise ConfigError(
                f"--chain-id {self.chain_id} does not match the rollup config's l2_chain_id "
                f"{self.rollup.l2_chain_id}"
            )
        if self.unsafe_block_signer is not None and len(self.unsafe_block_signer) != 20:
            raise ConfigError("--p2p.unsafe-block-signer must be a 20-byte address")
        if self.sequencer_key is not None and len(self.sequencer_key) != 32:
            raise ConfigError("--p2p.sequencer.key must be a 32-byte private key")
        try:
            ipaddress.ip_address(self.listen_ip)
        except ValueError:
            raise ConfigError(f"--p2p.listen.ip: not an IP address: {self.listen_ip!r}")
        if not 0 <= self.listen_port <= 65535:
            raise ConfigError(f"--p2p.listen.tcp: port out of range: {self.listen_port}")
        for addr in self.static_peers:
            if "/p2p/" not in addr or not addr.startswith("/"):
                raise ConfigError(f"--p2p.static: {addr!r} is not a multiaddr with /p2p/<peer id>")
        if self.scoring not in ("light", "none"):
            raise ConfigError(f"--p2p.scoring must be 'light' or 'none', got {self.scoring!r}")
        if self.ban_duration <= 0:
            raise ConfigError("--p2p.ban.duration must be positive")
        if self.timestamp_threshold <= 0:
            raise ConfigError("--p2p.gossip.timestamp.threshold must be positive")
        if not 0 < self.peers_lo <= self.peers_hi:
            raise ConfigError(f"--p2p.peers.lo ({self.peers_lo}) must be 1..--p2p.peers.hi ({self.peers_hi})")
        if not 0 < self.mesh_dlo <= self.mesh_d <= self.mesh_dhi:
            raise ConfigError(
                f"gossip mesh degrees must satisfy 0 < lo ({self.mesh_dlo}) <= d ({self.mesh_d}) "
                f"<= dhi ({self.mesh_dhi})"
            )
        if self.mesh_dlazy < 0:
            raise ConfigError("--p2p.gossip.mesh.dlazy must not be negative")
        if self.heartbeat <= 0:
            raise ConfigError("heartbeat interval must be positive")
        if not self.muxers or any(m not in ("yamux", "mplex") for m in self.muxers):
            raise ConfigError(f"muxers must be a non-empty subset of yamux,mplex, got {self.muxers!r}")
        if self.recent_blocks_limit <= 0:
            raise ConfigError("recent_blocks_limit must be positive")
        return self
