"""Connection gater: manual blocks + expiring bans (sans-IO decisions), JSON persistence, host hook.

Mirrors op-node's gater stack (spec §7.3): go-libp2p's ``BasicConnectionGater`` (persistent manual blocks of
peer ids, IPs and subnets) under the expiry gater (temporary peer / IP bans with auto-unban once expired).

* :class:`ConnectionGater` is a pure decision object; every time-dependent call takes ``now`` (unix seconds,
  wall clock — bans are persisted and must survive restarts). Decisions:

  - ``allow_dial(peer_id, ip, now)``  — outbound dial: peer not blocked/banned, IP not blocked/banned and
    not in a blocked subnet;
  - ``allow_accept(ip, now)``         — inbound accept by remote IP;
  - ``allow_secured(peer_id, direction, now)`` — after the handshake: inbound needs the peer not
    blocked/banned; outbound is always allowed (it was already filtered at dial time), like op-node.

* State is written to ``<peerstore.path>/gater.json`` (atomic: temp file + fsync + rename + dir fsync) on
  every change; ``peerstore.path == "memory"`` keeps it in memory only.

* :func:`install_gater` enforces a gater on a running py-libp2p host through two public hooks, no
  monkey-patching: the swarm's ``connection_gate`` attribute (py-libp2p calls ``is_allowed(maddr)`` for every
  dial address and every inbound connection) and a network notifee whose ``connected`` callback closes
  connections of blocked/banned peers (py-libp2p has no secured-connection interception point, so the
  peer-id check runs just after the connection is registered). :class:`HostGate` also closes existing
  connections when a peer is blocked/banned (op-node ``BanPeer``/``BanIP``) — ``block_addr``/``block_subnet``
  do not close existing connections, as op-node's ``opp2p_blockAddr``/``opp2p_blockSubnet`` document.

Invalid input raises ``ValueError("invalid request: …")`` (the admin API maps it to op-node's error text).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import base58
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.peer.id import ID

from baton.log import get_logger
from p2p.notifee import NullNotifee

__all__ = [
    "GATER_FILE",
    "ConnectionGater",
    "Direction",
    "HostGate",
    "IPAddress",
    "IPNetwork",
    "install_gater",
    "parse_ip",
    "parse_peer_id",
    "parse_subnet",
]

log = get_logger("p2p.gater")

GATER_FILE = "gater.json"
_FORMAT_VERSION = 1

Direction = Literal["inbound", "outbound", "unknown"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---------------------------------------------------------------------------------------------- parsing


def parse_peer_id(value: object) -> ID:
    """A base58 libp2p peer id (identity or sha2-256 multihash) → ``ID``; else ``ValueError``."""
    if isinstance(value, ID):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("invalid request: peer id must be a non-empty string")
    try:
        raw = base58.b58decode(value)
    except ValueError:
        raise ValueError(f"invalid request: bad peer id {value!r}") from None
    # multihash: <code varint><len varint><digest>; both codes used by libp2p are single-byte varints.
    if len(raw) < 2 or raw[0] not in (0x00, 0x12) or raw[1] != len(raw) - 2 or raw[1] == 0:
        raise ValueError(f"invalid request: bad peer id {value!r}")
    if raw[0] == 0x12 and raw[1] != 32:
        raise ValueError(f"invalid request: bad peer id {value!r}")
    if raw[0] == 0x00:  # inlined key: the digest must be a protobuf-encoded public key
        try:
            deserialize_public_key(raw[2:])
        except Exception:
            raise ValueError(f"invalid request: bad peer id {value!r}") from None
    return ID(raw)


def parse_ip(value: object) -> IPAddress:
    """An IPv4/IPv6 address (IPv4-mapped IPv6 is normalised to IPv4, like go's ``net.IP``)."""
    if not isinstance(value, str):
        raise ValueError("invalid request: ip must be a string")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"invalid request: bad ip {value!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_subnet(value: object) -> IPNetwork:
    """A CIDR subnet ``a.b.c.d/nn`` or ``x::/nn``; host bits are masked off (go ``net.ParseCIDR``)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"invalid request: bad subnet {value!r} (want CIDR, e.g. 10.0.0.0/8)")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"invalid request: bad subnet {value!r}") from None


# ---------------------------------------------------------------------------------------------- gater


class ConnectionGater:
    """Manual blocks (peers/IPs/subnets) + expiring bans (peers/IPs); decisions take ``now``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        """``path`` = the JSON file to persist to (loaded if present), or ``None`` for memory only."""
        self._path = Path(path) if path is not None else None
        self._blocked_peers: set[str] = set()
        self._blocked_addrs: set[IPAddress] = set()
        self._blocked_subnets: set[IPNetwork] = set()
        self._peer_bans: dict[str, float] = {}
        self._ip_bans: dict[IPAddress, float] = {}
        if self._path is not None and self._path.exists():
            self._load(self._path)

    @classmethod
    def open(cls, peerstore_path: str | os.PathLike[str]) -> ConnectionGater:
        """op-node's ``--p2p.peerstore.path``: ``"memory"`` → in memory, else ``<dir>/gater.json``."""
        if str(peerstore_path) == "memory":
            return cls(None)
        directory = Path(peerstore_path)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory / GATER_FILE)

    @property
    def path(self) -> Path | None:
        return self._path

    # -- manual blocks (BasicConnectionGater) -------------------------------------------------------

    def block_peer(self, peer_id: str | ID) -> None:
        self._blocked_peers.add(parse_peer_id(peer_id).to_base58())
        self._save()

    def unblock_peer(self, peer_id: str | ID) -> None:
        """Remove a manual block and any ban of the peer (op-node's disconnect also unblocks)."""
        pid = parse_peer_id(peer_id).to_base58()
        changed = pid in self._blocked_peers or pid in self._peer_bans
        self._blocked_peers.discard(pid)
        self._peer_bans.pop(pid, None)
        if changed:
            self._save()

    def list_blocked_peers(self) -> list[str]:
        return sorted(self._blocked_peers)

    def block_addr(self, ip: str | IPAddress) -> None:
        self._blocked_addrs.add(ip if not isinstance(ip, str) else parse_ip(ip))
        self._save()

    def unblock_addr(self, ip: str | IPAddress) -> None:
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        changed = addr in self._blocked_addrs or addr in self._ip_bans
        self._blocked_addrs.discard(addr)
        self._ip_bans.pop(addr, None)
        if changed:
            self._save()

    def list_blocked_addrs(self) -> list[str]:
        return [str(a) for a in sorted(self._blocked_addrs, key=_addr_key)]

    def block_subnet(self, subnet: str | IPNetwork) -> None:
        self._blocked_subnets.add(subnet if not isinstance(subnet, str) else parse_subnet(subnet))
        self._save()

    def unblock_subnet(self, subnet: str | IPNetwork) -> None:
        net = subnet if not isinstance(subnet, str) else parse_subnet(subnet)
        if net in self._blocked_subnets:
            self._blocked_subnets.discard(net)
            self._save()

    def list_blocked_subnets(self) -> list[str]:
        return [str(n) for n in sorted(self._blocked_subnets, key=_net_key)]

    # -- expiring bans (ExpiryConnectionGater) ------------------------------------------------------

    def ban_peer(self, peer_id: str | ID, until: float) -> None:
        """Ban a peer until ``until`` (unix seconds). ``until <= 0`` deletes the ban."""
        pid = parse_peer_id(peer_id).to_base58()
        if until <= 0:
            if self._peer_bans.pop(pid, None) is not None:
                self._save()
            return
        self._peer_bans[pid] = float(until)
        self._save()

    def ban_addr(self, ip: str | IPAddress, until: float) -> None:
        """Ban an IP until ``until`` (unix seconds). ``until <= 0`` deletes the ban."""
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        if until <= 0:
            if self._ip_bans.pop(addr, None) is not None:
                self._save()
            return
        self._ip_bans[addr] = float(until)
        self._save()

    def peer_ban_expiry(self, peer_id: str | ID) -> float | None:
        return self._peer_bans.get(parse_peer_id(peer_id).to_base58())

    def addr_ban_expiry(self, ip: str | IPAddress) -> float | None:
        return self._ip_bans.get(ip if not isinstance(ip, str) else parse_ip(ip))

    def banned_peers(self, now: float) -> list[str]:
        """Peers with an unexpired ban (expired bans are dropped as a side effect)."""
        self.prune(now)
        return sorted(self._peer_bans)

    def banned_addrs(self, now: float) -> list[str]:
        self.prune(now)
        return [str(a) for a in sorted(self._ip_bans, key=_addr_key)]

    def prune(self, now: float) -> bool:
        """Drop expired bans (auto-unban); returns whether anything changed (and was persisted)."""
        expired_peers = [p for p, t in self._peer_bans.items() if t <= now]
        expired_ips = [a for a, t in self._ip_bans.items() if t <= now]
        for p in expired_peers:
            del self._peer_bans[p]
        for a in expired_ips:
            del self._ip_bans[a]
        if expired_peers or expired_ips:
            self._save()
            return True
        return False

    # -- decisions ------------------------------------------------------------------------------------

    def is_peer_blocked(self, peer_id: str | ID, now: float) -> bool:
        """Manually blocked, or banned with an expiry still in the future."""
        pid = peer_id.to_base58() if isinstance(peer_id, ID) else peer_id
        if pid in self._blocked_peers:
            return True
        expiry = self._peer_bans.get(pid)
        return expiry is not None and expiry > now

    def is_addr_blocked(self, ip: str | IPAddress | None, now: float) -> bool:
        """Manually blocked IP, IP inside a blocked subnet, or IP with an unexpired ban."""
        if ip is None:
            return False
        if isinstance(ip, str):
            try:
                addr = parse_ip(ip)
            except ValueError:
                return False
        else:
            addr = ip
        if addr in self._blocked_addrs:
            return True
        expiry = self._ip_bans.get(addr)
        if expiry is not None and expiry > now:
            return True
        return any(addr.version == net.version and addr in net for net in self._blocked_subnets)

    def allow_dial(self, peer_id: str | ID | None, ip: str | IPAddress | None, now: float) -> bool:
        """Outbound dial (InterceptPeerDial + InterceptAddrDial)."""
        if peer_id is not None and self.is_peer_blocked(peer_id, now):
            return False
        return not self.is_addr_blocked(ip, now)

    def allow_accept(self, ip: str | IPAddress | None, now: float) -> bool:
        """Inbound connection by remote IP (InterceptAccept)."""
        return not self.is_addr_blocked(ip, now)

    def allow_secured(self, peer_id: str | ID, direction: Direction, now: float) -> bool:
        """After the security handshake (InterceptSecured): outbound always allowed."""
        if direction == "outbound":
            return True
        return not self.is_peer_blocked(peer_id, now)

    # -- persistence ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _FORMAT_VERSION,
            "blockedPeers": self.list_blocked_peers(),
            "blockedAddrs": self.list_blocked_addrs(),
            "blockedSubnets": self.list_blocked_subnets(),
            "peerBans": {p: self._peer_bans[p] for p in sorted(self._peer_bans)},
            "ipBans": {str(a): self._ip_bans[a] for a in sorted(self._ip_bans, key=_addr_key)},
        }

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("version") != _FORMAT_VERSION:
                raise ValueError(
                    f"unsupported format version {doc.get('version') if isinstance(doc, dict) else doc!r}"
                )
            self._blocked_peers = {parse_peer_id(p).to_base58() for p in doc.get("blockedPeers", [])}
            self._blocked_addrs = {parse_ip(a) for a in doc.get("blockedAddrs", [])}
            self._blocked_subnets = {parse_subnet(n) for n in doc.get("blockedSubnets", [])}
            self._peer_bans = {
                parse_peer_id(p).to_base58(): float(t) for p, t in doc.get("peerBans", {}).items()
            }
            self._ip_bans = {parse_ip(a): float(t) for a, t in doc.get("ipBans", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"gater state {path}: cannot load: {exc}") from None

    def _save(self) -> None:
        if self._path is None:
            return
        _atomic_write(self._path, json.dumps(self.to_json(), indent=1, sort_keys=True).encode())


def _addr_key(a: IPAddress) -> tuple[int, int]:
    return (a.version, int(a))


def _net_key(n: IPNetwork) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file in the same dir, fsync, rename)."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------- host hook


def _ip_of_multiaddr(addr: Any) -> str | None:
    for proto in ("ip4", "ip6"):
        try:
            value = addr.value_for_protocol(proto)
        except Exception:
            continue
        if value:
            return str(value)
    return None


def conn_remote_ip(conn: Any) -> str | None:
    """Remote IP of a py-libp2p ``INetConn`` (muxed → secured → transport addresses)."""
    muxed = getattr(conn, "muxed_conn", None)
    for obj in (muxed, getattr(muxed, "secured_conn", None)):
        getter = getattr(obj, "get_remote_address", None)
        if getter is None:
            continue
        try:
            remote = getter()
        except Exception:
            remote = None
        if remote:
            return str(remote[0])
    try:
        addrs = conn.get_transport_addresses()
    except Exception:
        addrs = []
    for addr in addrs:
        ip = _ip_of_multiaddr(addr)
        if ip is not None:
            return ip
    return None


def conn_direction(conn: Any) -> Direction:
    value = getattr(conn, "direction", None)
    name = str(getattr(value, "name", value)).lower()
    if name in ("inbound", "outbound"):
        return name  # type: ignore[return-value]
    return "unknown"


class HostGate(NullNotifee):
    """Enforces a :class:`ConnectionGater` on a py-libp2p host (see module docstring).

    Installed as ``swarm.connection_gate`` (duck-typed ``is_allowed``/``is_in_allow_list``) and as a
    network notifee. Also offers the closing operations op-node performs on peer/IP bans.
    """

    def __init__(self, host: Any, gater: ConnectionGater, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.gater = gater
        self.clock = clock
        self._network = host.get_network()
        # keep py-libp2p's own IP allow/deny gate (empty by default) for the connection pruner
        self._inner = getattr(self._network, "connection_gate", None)
        self.refused_addresses = 0  # dial addresses / inbound connections refused by IP (for metrics)
        # connections refused because the peer is blocked/banned: inbound at the handshake
        # (allow_secured_inbound) or, outbound/unhooked, closed once registered (connected)
        self.refused_connections = 0

    # -- swarm.connection_gate protocol ----------------------------------------------------------------

    async def is_allowed(self, remote_addr: Any) -> bool:
        """py-libp2p asks this for every dial address and every inbound connection."""
        ip = _ip_of_multiaddr(remote_addr)
        if ip is not None and self.gater.is_addr_blocked(ip, self.clock()):
            log.debug("gater_refused_address", addr=str(remote_addr))
            self.refused_addresses += 1
            return False
        if self._inner is not None:
            return bool(await self._inner.is_allowed(remote_addr))
        return True

    def is_in_allow_list(self, remote_addr: Any) -> bool:
        if self._inner is not None:
            return bool(self._inner.is_in_allow_list(remote_addr))
        return False

    def allow_secured_inbound(self, peer_id: ID) -> bool:
        """The post-handshake check for an inbound connection (``p2p.compat.gate_secured_connections``):
        refuses a blocked/banned peer and counts it in ``refused_connections`` like :meth:`connected`
        does — the connection never reaches the notifee then."""
        if self.gater.allow_secured(peer_id, "inbound", self.clock()):
            return True
        log.info("gater_refused_connection", peer=str(peer_id), direction="inbound")
        self.refused_connections += 1
        return False

    # -- notifee protocol ----------------------------------------------------------------------------

    async def connected(self, network: Any, conn: Any) -> None:
        now = self.clock()
        peer_id = conn.muxed_conn.peer_id
        direction = conn_direction(conn)
        refused = not self.gater.allow_secured(peer_id, direction, now) or (
            direction != "inbound" and not self.gater.allow_dial(peer_id, None, now)
        )
        if not refused and direction == "inbound":
            refused = not self.gater.allow_accept(conn_remote_ip(conn), now)
        if refused:
            log.info("gater_closed_connection", peer=str(peer_id), direction=direction)
            self.refused_connections += 1
            await _close_quietly(conn)

    # -- operations that also close connections ------------------------------------------------------

    async def block_peer(self, peer_id: str | ID) -> None:
        """Manual block + close the peer's connections."""
        pid = parse_peer_id(peer_id)
        self.gater.block_peer(pid)
        await self.close_peer(pid)

    async def ban_peer(self, peer_id: str | ID, until: float) -> None:
        """Temporary ban + close the peer's connections (op-node ``BanPeer``)."""
        pid = parse_peer_id(peer_id)
        self.gater.ban_peer(pid, until)
        await self.close_peer(pid)

    async def ban_addr(self, ip: str | IPAddress, until: float) -> int:
        """Temporary IP ban + close every connection from that IP (op-node ``BanIP``)."""
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        self.gater.ban_addr(addr, until)
        return await self.close_ip(addr)

    async def close_peer(self, peer_id: str | ID) -> None:
        pid = parse_peer_id(peer_id)
        try:
            await self._network.close_peer(pid)
        except Exception as exc:
            log.debug("gater_close_peer_failed", peer=str(pid), error=str(exc))

    async def close_ip(self, ip: str | IPAddress) -> int:
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        closed = 0
        for conn in list(_all_conns(self._network)):
            remote = conn_remote_ip(conn)
            if remote is None:
                continue
            try:
                if parse_ip(remote) != addr:
                    continue
            except ValueError:
                continue
            await _close_quietly(conn)
            closed += 1
        return closed

    async def close_blocked(self) -> int:
        """Close connections of every currently blocked/banned peer or address; returns the count."""
        now = self.clock()
        closed = 0
        for conn in list(_all_conns(self._network)):
            peer_id = conn.muxed_conn.peer_id
            if self.gater.is_peer_blocked(peer_id, now) or self.gater.is_addr_blocked(
                conn_remote_ip(conn), now
            ):
                await _close_quietly(conn)
                closed += 1
        return closed


def _all_conns(network: Any) -> Iterable[Any]:
    conns: dict[Any, list[Any]] = getattr(network, "connections", {})
    for peer_conns in list(conns.values()):
        yield from list(peer_conns)


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception as exc:
        log.debug("gater_close_failed", error=str(exc))


def install_gater(host: Any, gater: ConnectionGater, clock: Callable[[], float] = time.time) -> HostGate:
    """Hook ``gater`` into ``host`` (swarm ``connection_gate`` + notifee); returns the :class:`HostGate`."""
    gate = HostGate(host, gater, clock)
    network = host.get_network()
    network.connection_gate = gate
    network.register_notifee(gate)
    return gate
