"""Drive the js-libp2p interop peer (``tests/interop/js/peer.mjs``) from trio.

The peer speaks a line-based JSON protocol: it prints one event object per stdout line (``ready``,
``message``, ``reject``, ``result``, …) and reads one command object per stdin line. :class:`JsPeer`
runs it as a subprocess, collects every event, and offers ``command()`` (send + await the matching
``result``) and ``wait_for()`` (await an event matching a predicate). stderr goes to a log file so a
failing test can show it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

__all__ = [
    "JS_DIR",
    "NODE_MODULES",
    "PEER_SCRIPT",
    "JsPeer",
    "JsPeerError",
    "js_missing_reason",
    "open_js_peer",
]

JS_DIR = Path(__file__).resolve().parent / "js"
PEER_SCRIPT = JS_DIR / "peer.mjs"
NODE_MODULES = JS_DIR / "node_modules"

Event = dict[str, Any]


class JsPeerError(RuntimeError):
    """The js peer failed a command, died, or did not produce an expected event in time."""


def js_missing_reason() -> str | None:
    """Why the js peer cannot run here (None when node and the installed js dependencies exist)."""
    node = shutil.which("node")
    if node is None:
        return "node (Node.js ≥ 20) is not on PATH"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
        major = int(version.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return "cannot determine the node version"
    if major < 20:
        return f"Node.js ≥ 20 is required, found {version.strip()}"
    if shutil.which("npm") is None:
        return "npm is not on PATH"
    markers = ("libp2p", "@chainsafe/libp2p-gossipsub", "@noble/secp256k1", "snappyjs")
    if not all((NODE_MODULES / m / "package.json").is_file() for m in markers):
        return f"js dependencies are not installed (run: npm ci --prefix {JS_DIR})"
    return None


class JsPeer:
    """One running ``peer.mjs`` process; create with :func:`open_js_peer`."""

    def __init__(self, name: str, process: trio.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        self.events: list[Event] = []
        self.ready: Event = {}
        self._changed = trio.Event()
        self._ids = itertools.count(1)
        self._eof = False

    # -- properties ----------------------------------------------------------------------------

    @property
    def peer_id(self) -> str:
        return str(self.ready["peerId"])

    @property
    def addr(self) -> str:
        """First listen address, with the ``/p2p/<id>`` suffix."""
        addr = str(self.ready["addrs"][0])
        return addr if "/p2p/" in addr else f"{addr}/p2p/{self.peer_id}"

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def messages(self) -> list[Event]:
        return self.of_kind("message")

    @property
    def rejects(self) -> list[Event]:
        return self.of_kind("reject")

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    # -- I/O -----------------------------------------------------------------------------------

    async def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        buf = b""
        while True:
            chunk = await self.process.stdout.receive_some(1 << 16)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = {"event": "unparsed", "line": line.decode(errors="replace")}
                self.events.append(event)
            self._notify()
        self._eof = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(
        self, predicate: Callable[[Event], bool], within: float = 10.0, *, what: str = "event"
    ) -> Event:
        """Return the first event (already received or future) for which ``predicate`` holds."""
        index = 0
        with trio.move_on_after(within):
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                if self._eof:
                    tail = self.stderr_tail()
                    raise JsPeerError(f"js peer {self.name} exited while waiting for {what}\n{tail}")
                await self._changed.wait()
        raise JsPeerError(f"js peer {self.name}: timed out after {within}s waiting for {what}")

    async def wait_quiet(self, predicate: Callable[[Event], bool], duration: float) -> list[Event]:
        """Sleep ``duration`` and return the events matching ``predicate`` that arrived meanwhile."""
        start = len(self.events)
        await trio.sleep(duration)
        return [e for e in self.events[start:] if predicate(e)]

    async def command(self, cmd: str, *, within: float = 15.0, **args: Any) -> Event:
        """Send ``{"cmd": cmd, **args}``; return its successful result or raise JsPeerError."""
        assert self.process.stdin is not None
        req_id = next(self._ids)
        line = json.dumps({"cmd": cmd, "id": req_id, **args}) + "\n"
        await self.process.stdin.send_all(line.encode())
        result = await self.wait_for(
            lambda e: e.get("event") == "result" and e.get("id") == req_id, within, what=f"result of {cmd}"
        )
        if not result.get("ok"):
            raise JsPeerError(f"js peer {self.name}: {cmd} failed: {result.get('error')}")
        return result

    # -- commands ------------------------------------------------------------------------------

    async def dial(self, addr: str) -> Event:
        return await self.command("dial", addr=addr)

    async def publish(self, topic: str, data: bytes) -> Event:
        return await self.command("publish", topic=topic, data="0x" + data.hex())

    async def peers(self) -> list[Event]:
        return list((await self.command("peers"))["peers"])

    async def stats(self) -> Event:
        return await self.command("stats")


def _node_command(args: Sequence[str]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise JsPeerError("node is not on PATH")
    return [node, str(PEER_SCRIPT), *args]


@asynccontextmanager
async def open_js_peer(
    nursery: trio.Nursery,
    name: str,
    *,
    chain_id: int,
    signer: str | None,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    ready_within: float = 20.0,
) -> AsyncIterator[JsPeer]:
    """Start ``peer.mjs`` for ``chain_id`` trusting ``signer``; yield it once it printed ``ready``.

    The stdout reader runs in ``nursery`` (it ends by itself when the process exits). On exit the
    peer is asked to quit, then killed if it has not exited within a few seconds.
    """
    args = ["--chain-id", str(chain_id), "--listen", "/ip4/127.0.0.1/tcp/0", *extra_args]
    if signer is not None:
        args += ["--signer", signer]
    log_path = log_dir / f"js-{name}.log"
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            _node_command(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=JS_DIR,
            # DEBUG: js-libp2p's error-level log lines (any component) go to the stderr log file.
            env={**os.environ, "NODE_NO_WARNINGS": "1", "DEBUG": os.environ.get("BATON_JS_DEBUG", "*:error")},
        )
    peer = JsPeer(name, process, log_path)
    nursery.start_soon(peer._pump_stdout)
    try:
        peer.ready = await peer.wait_for(lambda e: e.get("event") == "ready", ready_within, what="ready")
        yield peer
        with trio.move_on_after(3):
            try:
                await peer.command("quit", within=2)
            except (JsPeerError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            with trio.move_on_after(2):
                await process.wait()
