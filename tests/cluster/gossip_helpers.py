"""Run ``baton p2p run`` processes on 127.0.0.1 and talk to them (cluster tests and ``bench/gossip.py``).

Each node is a child process started with ``python -m baton p2p run``; its readiness JSON line on stdout
gives the peer id, the dialable multiaddr and the RPC URL. stderr goes to a log file next to the key.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from baton.rpcclient import RpcClient
from p2p.blockbuilder import build_envelope
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, envelope_to_json

__all__ = [
    "SEQ_KEY_HEX",
    "NodeProc",
    "free_port",
    "make_block_json",
    "start_node",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
SEQ_KEY_HEX = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SEQ_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
CHAIN_ID = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NodeProc:
    """One running ``baton p2p run`` process."""

    name: str
    proc: trio.Process
    peer_id: str
    addr: str
    rpc_url: str
    port: int
    log_path: Path
    args: list[str] = field(default_factory=list)
    _client: RpcClient | None = None

    async def call(self, method: str, *params: Any, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        if self._client is None:
            self._client = RpcClient(self.rpc_url, timeout=timeout)
        return await self._client.call(method, *params)

    async def recent(self, limit: int = 1000) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("baton_recentBlocks", limit)
        return result

    async def connected_peers(self) -> set[str]:
        dump = await self.call("opp2p_peers", True)
        return set(dump["peers"].keys())

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            with trio.move_on_after(10):
                await self.proc.wait()
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)


async def _read_ready_line(proc: trio.Process, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(timeout):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError("node exited before printing its ready line")
            buf += chunk
    line = buf.split(b"\n", 1)[0]
    ready: dict[str, Any] = json.loads(line)
    if ready.get("event") != "ready":
        raise RuntimeError(f"unexpected first stdout line: {line!r}")
    return ready


async def start_node(
    nursery: trio.Nursery,
    workdir: Path,
    name: str,
    *,
    static: Sequence[str] = (),
    sequencer: bool = False,
    port: int = 0,
    extra: Sequence[str] = (),
    timeout: float = 30.0,  # noqa: ASYNC109
) -> NodeProc:
    """Start a node (key file ``<workdir>/<name>.key`` is reused across restarts)."""
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup
    args = [
        "--chain-id",
        str(CHAIN_ID),
        "--p2p.listen.ip",
        "127.0.0.1",
        "--p2p.listen.tcp",
        str(port),
        "--p2p.priv.path",
        str(workdir / f"{name}.key"),
        "--p2p.unsafe-block-signer",
        SEQ_ADDR,
        "--rpc.addr",
        "127.0.0.1",
        "--rpc.port",
        "0",
        "--p2p.peerstore.path",
        "memory",
    ]
    if static:
        args += ["--p2p.static", ",".join(static)]
    if sequencer:
        args += ["--p2p.sequencer.key", SEQ_KEY_HEX]
    args += list(extra)
    log_path = workdir / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), BATON_LOG_FORMAT="json")
    with open(log_path, "ab") as log_file:  # noqa: ASYNC230 - test setup
        proc: trio.Process = await nursery.start(
            _run_process, [sys.executable, "-m", "baton", "p2p", "run", *args], env, log_file
        )
    try:
        ready = await _read_ready_line(proc, timeout)
    except BaseException:
        proc.kill()
        raise
    addr = ready["addrs"][0]
    port_used = int(addr.split("/tcp/")[1].split("/")[0])
    return NodeProc(name, proc, ready["peer_id"], addr, ready["rpc"], port_used, log_path, args)


async def _run_process(
    cmd: list[str], env: dict[str, str], log_file: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    await trio.run_process(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log_file,
        env=env,
        cwd=str(REPO),
        check=False,
        task_status=task_status,
    )


def make_block(number: int, *, n_txs: int = 2, tx_size: int = 200, seed: int = 0) -> ExecutionPayloadEnvelope:
    return build_envelope(
        BlockVersion.V4,
        number=number,
        timestamp=int(time.time()),
        chain_id=CHAIN_ID,
        n_txs=n_txs,
        tx_size=tx_size,
        seed=seed,
    )


def make_block_json(number: int, **kw: Any) -> dict[str, Any]:
    return envelope_to_json(make_block(number, **kw))


async def wait_for(pred: Any, timeout: float, interval: float = 0.1) -> Any:  # noqa: ASYNC109
    """Poll ``await pred()`` until truthy; return its value (TooSlowError on timeout)."""
    with trio.fail_after(timeout):
        while True:
            value = await pred()
            if value:
                return value
            await trio.sleep(interval)
