"""``baton p2p run``: the gossip node as a process (flags, env, readiness line, RPC/metrics, signals).

Flags follow op-node's names (spec §7.5). Every flag can also come from the environment: drop the leading
``--``, drop a leading ``p2p.``, replace ``.``/``-`` with ``_``, upper-case, prefix ``BATON_P2P_``
(op-node's ``OP_NODE_P2P_STATIC`` ↔ ``BATON_P2P_STATIC``; ``--chain-id`` ↔ ``BATON_P2P_CHAIN_ID``;
``--rpc.port`` ↔ ``BATON_P2P_RPC_PORT``). A flag on the command line wins over the environment.
Durations accept Go syntax (``60s``, ``10m``, ``1h``).

Contract (used by tests, the bench and the js-interop harness): once the node listens, is subscribed
and its RPC server is up, ONE JSON line is printed to stdout and flushed::

    {"event": "ready", "peer_id": "16Uiu2…", "addrs": ["/ip4/127.0.0.1/tcp/<port>/p2p/<id>"],
     "rpc": "http://127.0.0.1:<port>"}

Logs go to stderr (structlog). A bad configuration prints one ``baton p2p run: error: …`` line on stderr
and exits 2. SIGTERM/SIGINT shut down cleanly (exit 0). JSON-RPC (``opp2p_*`` + ``baton_*``), ``GET
/healthz`` and ``GET /metrics`` are served on ``--rpc.addr``/``--rpc.port``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import trio

from baton import __version__
from baton.httpserver import HttpServer
from baton.jsonrpc import Dispatcher
from p2p.admin import register_admin_api
from p2p.config import ConfigError, GossipConfig, parse_duration
from p2p.keys import KeyFileError, load_or_create_keypair
from p2p.node import GossipNode
from p2p.signing import load_private_key, parse_address
from p2p.topics import RollupConfig, RollupConfigError

__all__ = ["ENV_PREFIX", "add_run_arguments", "config_from_args", "env_name", "run"]

ENV_PREFIX = "BATON_P2P_"

# (flag, default, help). Booleans take an optional value: ``--p2p.ban.peers`` / ``--p2p.ban.peers=false``.
_FLAGS: tuple[tuple[str, str | None, str], ...] = (
    ("--chain-id", None, "L2 chain id (required unless --rollup-config gives l2_chain_id)"),
    ("--rollup-config", None, "rollup.json; picks the publish topic by fork times (default: V4 topic)"),
    ("--p2p.unsafe-block-signer", None, "expected block signer address 0x… (default: the sequencer key's)"),
    ("--l1.rpc", None, "L1 JSON-RPC URL to read the signer from SystemConfig"),
    ("--system-config", None, "SystemConfig address on L1 (default: rollup config's)"),
    ("--l1.runtime-config-reload-interval", "10m", "how often the signer is re-read from L1"),
    ("--p2p.listen.ip", "0.0.0.0", "libp2p bind IP"),
    ("--p2p.listen.tcp", "9222", "libp2p TCP port (0 = any)"),
    ("--p2p.advertise.ip", None, "IP reported in the readiness line when bound to 0.0.0.0"),
    ("--p2p.static", "", "comma-separated static peers: multiaddrs with /p2p/<id>"),
    ("--p2p.priv.path", "opnode_p2p_priv.txt", "libp2p identity key file (32-byte hex, created if missing)"),
    ("--p2p.sequencer.key", None, "block-signing key: hex or a file holding it (sequencer mode)"),
    (
        "--p2p.peerstore.path",
        "opnode_peerstore_db",
        "directory for persisted gater blocks and bans (op-node's name); 'memory' keeps them in memory",
    ),
    ("--p2p.ban.peers", "true", "ban peers whose score falls below the threshold"),
    ("--p2p.ban.threshold", "-100", "ban score threshold"),
    ("--p2p.ban.duration", "1h", "ban duration"),
    ("--p2p.peers.lo", "20", "connection manager low water"),
    ("--p2p.peers.hi", "30", "connection manager high water"),
    ("--p2p.peers.grace", "30s", "connection manager grace period"),
    ("--p2p.scoring", "light", "peer scoring: light or none"),
    ("--p2p.gossip.timestamp.threshold", "60s", "maximum payload age"),
    ("--p2p.gossip.mesh.d", "8", "gossip mesh D"),
    ("--p2p.gossip.mesh.lo", "6", "gossip mesh Dlo"),
    ("--p2p.gossip.mesh.dhi", "12", "gossip mesh Dhi"),
    ("--p2p.gossip.mesh.dlazy", "6", "gossip Dlazy"),
    ("--p2p.sync.req-resp", "true", "serve payload_by_number req/resp"),
    ("--p2p.recent.limit", "1024", "accepted blocks kept for baton_recentBlocks and req/resp (op-baton)"),
    ("--rpc.addr", "127.0.0.1", "JSON-RPC / metrics listen address"),
    ("--rpc.port", "9545", "JSON-RPC / metrics port (0 = any)"),
    ("--metrics.enabled", "true", "export Prometheus metrics on the RPC port's /metrics"),
)
_BOOL_FLAGS = {"--p2p.ban.peers", "--p2p.sync.req-resp", "--metrics.enabled"}


def env_name(flag: str) -> str:
    """``--p2p.static`` → ``BATON_P2P_STATIC``; ``--rpc.port`` → ``BATON_P2P_RPC_PORT``."""
    name = flag.lstrip("-")
    if name.startswith("p2p."):
        name = name[4:]
    return ENV_PREFIX + name.replace(".", "_").replace("-", "_").upper()


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace(".", "_").replace("-", "_")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``baton p2p run``'s flags (all parsed later by :func:`config_from_args`)."""
    parser.description = (
        "Run the OP Stack unsafe-block gossip node. Every flag can be set from the environment as "
        f"{ENV_PREFIX}<NAME> (e.g. --p2p.static → {env_name('--p2p.static')}, --rpc.port → "
        f"{env_name('--rpc.port')}). Prints one JSON 'ready' line on stdout when up."
    )
    for flag, default, text in _FLAGS:
        env = env_name(flag)
        shown = f" (default {default})" if default not in (None, "") else ""
        kwargs: dict[str, Any] = {"dest": _dest(flag), "default": None, "help": f"{text}{shown} [env {env}]"}
        if flag in _BOOL_FLAGS:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        else:
            kwargs.update(metavar="VALUE")
        parser.add_argument(flag, **kwargs)


def _value(args: argparse.Namespace, flag: str) -> str | None:
    v = getattr(args, _dest(flag), None)
    if v is None:
        v = os.environ.get(env_name(flag))
    if v is None:
        v = next(d for f, d, _ in _FLAGS if f == flag)
    return v


def _int(args: argparse.Namespace, flag: str) -> int:
    text = _value(args, flag)
    try:
        return int(str(text), 0)
    except ValueError:
        raise ConfigError(f"{flag}: not an integer: {text!r}")


def _float(args: argparse.Namespace, flag: str) -> float:
    text = _value(args, flag)
    try:
        return float(str(text))
    except ValueError:
        raise ConfigError(f"{flag}: not a number: {text!r}")


def _bool(args: argparse.Namespace, flag: str) -> bool:
    text = str(_value(args, flag)).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{flag}: not a boolean: {text!r}")


def _duration(args: argparse.Namespace, flag: str) -> float:
    return parse_duration(str(_value(args, flag)), name=flag)


@dataclass(frozen=True)
class RunOptions:
    """Settings of the process around the node."""

    rpc_addr: str
    rpc_port: int
    metrics: bool
    l1_rpc: str | None
    system_config: str | None
    reload_interval: float


def config_from_args(args: argparse.Namespace) -> tuple[GossipConfig, RunOptions]:
    """Flags/env → validated config; raises :class:`ConfigError` (or key/rollup errors) with one line."""
    rollup: RollupConfig | None = None
    rollup_path = _value(args, "--rollup-config")
    if rollup_path:
        rollup = RollupConfig.load(rollup_path)
    chain_text = _value(args, "--chain-id")
    if chain_text is None:
        if rollup is None:
            raise ConfigError("--chain-id is required (or --rollup-config with l2_chain_id)")
        chain_id = rollup.l2_chain_id
    else:
        chain_id = _int(args, "--chain-id")
    signer_text = _value(args, "--p2p.unsafe-block-signer")
    signer = None
    if signer_text:
        try:
            signer = parse_address(signer_text)
        except ValueError as exc:
            raise ConfigError(f"--p2p.unsafe-block-signer: {exc}")
    seq_text = _value(args, "--p2p.sequencer.key")
    seq_key = None
    if seq_text:
        try:
            seq_key = load_private_key(seq_text)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"--p2p.sequencer.key: {exc}")
    l1_rpc = _value(args, "--l1.rpc") or None
    system_config = _value(args, "--system-config") or None
    if system_config is None and rollup is not None and rollup.l1_system_config_address is not None:
        system_config = "0x" + rollup.l1_system_config_address.hex()
    if l1_rpc and not system_config:
        raise ConfigError("--l1.rpc needs --system-config (or a rollup config with l1_system_config_address)")
    if l1_rpc and signer is not None:
        raise ConfigError("use either --p2p.unsafe-block-signer or --l1.rpc, not both")
    static = tuple(s.strip() for s in str(_value(args, "--p2p.static") or "").split(",") if s.strip())
    cfg = GossipConfig(
        chain_id=chain_id,
        rollup=rollup,
        unsafe_block_signer=signer,
        sequencer_key=seq_key,
        listen_ip=str(_value(args, "--p2p.listen.ip")),
        listen_port=_int(args, "--p2p.listen.tcp"),
        advertise_ip=_value(args, "--p2p.advertise.ip") or None,
        static_peers=static,
        priv_path=str(_value(args, "--p2p.priv.path")),
        peerstore_path=str(_value(args, "--p2p.peerstore.path")),
        ban_peers=_bool(args, "--p2p.ban.peers"),
        ban_threshold=_float(args, "--p2p.ban.threshold"),
        ban_duration=_duration(args, "--p2p.ban.duration"),
        peers_lo=_int(args, "--p2p.peers.lo"),
        peers_hi=_int(args, "--p2p.peers.hi"),
        peers_grace=_duration(args, "--p2p.peers.grace"),
        scoring=str(_value(args, "--p2p.scoring")),
        timestamp_threshold=_duration(args, "--p2p.gossip.timestamp.threshold"),
        mesh_d=_int(args, "--p2p.gossip.mesh.d"),
        mesh_dlo=_int(args, "--p2p.gossip.mesh.lo"),
        mesh_dhi=_int(args, "--p2p.gossip.mesh.dhi"),
        mesh_dlazy=_int(args, "--p2p.gossip.mesh.dlazy"),
        req_resp=_bool(args, "--p2p.sync.req-resp"),
        recent_blocks_limit=_int(args, "--p2p.recent.limit"),
    ).validate()
    rpc_port = _int(args, "--rpc.port")
    if not 0 <= rpc_port <= 65535:
        raise ConfigError(f"--rpc.port: port out of range: {rpc_port}")
    opts = RunOptions(
        rpc_addr=str(_value(args, "--rpc.addr")),
        rpc_port=rpc_port,
        metrics=_bool(args, "--metrics.enabled"),
        l1_rpc=l1_rpc,
        system_config=system_config,
        reload_interval=_duration(args, "--l1.runtime-config-reload-interval"),
    )
    return cfg, opts


def run(args: argparse.Namespace) -> int:
    """Entry point of ``baton p2p run``; returns the process exit code."""
    try:
        cfg, opts = config_from_args(args)
        key_pair = load_or_create_keypair(cfg.priv_path)
    except (ConfigError, KeyFileError, RollupConfigError) as exc:
        print(f"baton p2p run: error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        trio.run(_serve, cfg, opts, key_pair)
    except OSError as exc:  # e.g. port already in use
        print(f"baton p2p run: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _serve(cfg: GossipConfig, opts: RunOptions, key_pair: Any) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            node = GossipNode(cfg, key_pair=key_pair)
            await nursery.start(node.run)
            if opts.l1_rpc and opts.system_config:
                from p2p.signer_source import run_signer_reload

                await nursery.start(
                    functools.partial(
                        run_signer_reload,
                        node.signers,
                        opts.l1_rpc,
                        opts.system_config,
                        interval=opts.reload_interval,
                    )
                )
            dispatcher = Dispatcher(version=f"op-baton/{__version__}")
            register_admin_api(dispatcher, node)
            server = HttpServer()
            server.mount_jsonrpc(dispatcher)
            server.mount_healthz(f"op-baton/{__version__}")
            if opts.metrics:
                server.mount_metrics(node.metrics.registry)
            rpc_host, rpc_port = await nursery.start(server.serve, opts.rpc_addr, opts.rpc_port)
            shown_host = "127.0.0.1" if rpc_host in ("0.0.0.0", "::") else rpc_host
            ready = {
                "event": "ready",
                "peer_id": node.peer_id.to_base58(),
                "addrs": node.listen_addrs(),
                "rpc": f"http://{shown_host}:{rpc_port}",
            }
            sys.stdout.write(json.dumps(ready) + "\n")
            sys.stdout.flush()
            async for signum in signals:
                print(f"baton p2p run: received signal {signum}, shutting down", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()
                break
