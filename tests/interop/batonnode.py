"""Run ``baton p2p run`` as a subprocess for the interop tests.

Contract used (see ``p2p/node_cli.py``): once listening, the node prints ONE JSON line on stdout::

    {"event": "ready", "peer_id": "<base58>", "addrs": ["/ip4/127.0.0.1/tcp/<port>/p2p/<id>"],
     "rpc": "http://127.0.0.1:<port>"}

Logs go to stderr, which is written to a file so a failing test can show its tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from baton.rpcclient import RpcClient

__all__ = ["BatonNode", "BatonNodeError", "open_baton_node"]


class BatonNodeError(RuntimeError):
    """The node did not start or died."""


@dataclass
class BatonNode:
    """A running ``baton p2p run`` process."""

    process: trio.Process
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)
    rpc: RpcClient | None = None

    @property
    def peer_id(self) -> str:
        return str(self.ready["peer_id"])

    @property
    def addr(self) -> str:
        return str(self.ready["addrs"][0])

    async def call(self, method: str, *params: Any) -> Any:
        assert self.rpc is not None
        return await self.rpc.call(method, *params)

    def log_tail(self, limit: int = 6000) -> str:
        return _tail(self.log_path, limit)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


async def _read_ready(process: trio.Process, log_path: Path, within: float) -> dict[str, Any]:
    """Read stdout lines until the ready JSON object; anything else on stdout is ignored."""
    assert process.stdout is not None
    buf = b""
    with trio.move_on_after(within):
        while True:
            chunk = await process.stdout.receive_some(1 << 16)
            if not chunk:
                await process.wait()
                raise BatonNodeError(
                    f"baton p2p run exited (code {process.returncode}) before ready:\n{_tail(log_path)}"
                )
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and obj.get("event") == "ready":
                    return obj
    raise BatonNodeError(f"baton p2p run not ready after {within}s:\n{_tail(log_path)}")


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    """Keep reading stdout after ready so the child never blocks on a full pipe."""
    while await stream.receive_some(1 << 16):
        pass


@asynccontextmanager
async def open_baton_node(
    nursery: trio.Nursery, args: Sequence[str], *, log_dir: Path, ready_within: float = 30.0
) -> AsyncIterator[BatonNode]:
    """Start ``python -m baton p2p run <args>``; yield it with an RPC client once it printed ready."""
    log_path = log_dir / "baton-node.log"
    cmd = [sys.executable, "-m", "baton", "--log.format", "json", "--log.level", "debug", "p2p", "run", *args]
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    node = BatonNode(process, log_path)
    try:
        node.ready = await _read_ready(process, log_path, ready_within)
        assert process.stdout is not None
        nursery.start_soon(_drain, process.stdout)
        async with RpcClient(str(node.ready["rpc"]), timeout=10.0) as rpc:
            node.rpc = rpc
            yield node
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(2):
                    await process.wait()
