"""`baton p2p run --l1.rpc … --system-config …`: the unsafe-block signer comes from L1 and rotates.

A fake L1 JSON-RPC (our own HTTP server, in the test's trio loop) answers `eth_getStorageAt` for
SystemConfig's unsafe-block-signer slot. The node process re-reads it every second. When the L1 value
changes, the previous signer stays acceptable (op-node's 3 h grace) until a block from the new signer
verifies; after that, the old signer is refused.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from baton.httpserver import HttpServer
from baton.jsonrpc import Dispatcher, InvalidParams
from p2p.signer_source import UNSAFE_BLOCK_SIGNER_SLOT
from p2p.signing import address_of

from .gossip_bars_helpers import OTHER_KEY, SEQ_KEY, V4_TOPIC, block, make_injector, scrape, signed
from .gossip_helpers import CHAIN_ID, REPO, NodeProc, _read_ready_line, _run_process, wait_for

pytestmark = pytest.mark.slow

SYSTEM_CONFIG = "0x" + "5c" * 20


class FakeL1:
    """Answers `eth_getStorageAt(systemConfig, slot, block)` with the current signer word."""

    def __init__(self, signer: bytes) -> None:
        self.signer = signer
        self.calls = 0

    async def get_storage_at(self, params: Any) -> str:
        address, slot, _block = params
        if address.lower() != SYSTEM_CONFIG or int(slot, 16) != int(UNSAFE_BLOCK_SIGNER_SLOT, 16):
            raise InvalidParams("unexpected storage read")
        self.calls += 1
        return "0x" + (bytes(12) + self.signer).hex()


async def _start_l1_node(nursery: trio.Nursery, workdir: Path, l1_url: str) -> NodeProc:
    args = [
        "--chain-id", str(CHAIN_ID),
        "--p2p.listen.ip", "127.0.0.1", "--p2p.listen.tcp", "0",
        "--p2p.priv.path", str(workdir / "b.key"),
        "--p2p.peerstore.path", "memory",
        "--l1.rpc", l1_url, "--system-config", SYSTEM_CONFIG,
        "--l1.runtime-config-reload-interval", "1s",
        "--rpc.addr", "127.0.0.1", "--rpc.port", "0",
    ]  # fmt: skip
    log_path = workdir / "b.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), BATON_LOG_FORMAT="json")
    with open(log_path, "ab") as log_file:  # noqa: ASYNC230 - test setup
        proc: trio.Process = await nursery.start(
            _run_process, [sys.executable, "-m", "baton", "p2p", "run", *args], env, log_file
        )
    ready = await _read_ready_line(proc, 30)
    addr = ready["addrs"][0]
    port = int(addr.split("/tcp/")[1].split("/")[0])
    return NodeProc("b", proc, ready["peer_id"], addr, ready["rpc"], port, log_path, args)


def _signer_changes(log_path: Path) -> list[dict[str, Any]]:
    out = []
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "signer" in str(rec.get("msg", "")).lower():
            out.append(rec)
    return out


async def test_signer_read_from_l1_and_rotated_with_grace(tmp_path: Path) -> None:
    old, new = address_of(SEQ_KEY), address_of(OTHER_KEY)
    l1 = FakeL1(old)
    dispatcher = Dispatcher()
    dispatcher.register("eth_getStorageAt", l1.get_storage_at)
    server = HttpServer()
    server.mount_jsonrpc(dispatcher)
    with trio.fail_after(45):
        async with trio.open_nursery() as nursery:
            _host, l1_port = await nursery.start(server.serve, "127.0.0.1", 0)
            b = await _start_l1_node(nursery, tmp_path, f"http://127.0.0.1:{l1_port}")
            inj = make_injector()
            await nursery.start(inj.run)
            await inj.connect(b.addr)
            with trio.fail_after(10):
                await inj.wait_for_mesh(ID.from_base58(b.peer_id))
            assert l1.calls >= 1

            async def v4() -> dict[tuple[str, str], float]:
                return (await scrape(b)).messages("v4")

            async def wait_counts(expected: dict[tuple[str, str], float]) -> None:
                async def ok() -> bool:
                    return await v4() == expected

                try:
                    await wait_for(ok, 10)
                except trio.TooSlowError:
                    raise AssertionError(f"B counted {await v4()}, expected {expected}") from None

            async def send(data: bytes) -> None:
                await inj.publish_unchecked(rpc_pb2.Message(data=data, topicIDs=[V4_TOPIC]))

            # 1. The signer L1 reports is the one B accepts; a stranger is refused.
            await send(signed(block(10), SEQ_KEY))
            await send(signed(block(11), OTHER_KEY))
            await wait_counts({("ACCEPT", "valid"): 1, ("REJECT", "wrong_signer"): 1})

            # 2. L1 rotates the signer; after B's next reload the old signer is still accepted (grace).
            calls = l1.calls
            l1.signer = new

            async def reloaded() -> bool:
                return l1.calls >= calls + 2  # at least one full reload after the change

            await wait_for(reloaded, 10)
            await send(signed(block(12), SEQ_KEY))
            await wait_counts({("ACCEPT", "valid"): 2, ("REJECT", "wrong_signer"): 1})

            # 3. A block from the new signer verifies: that ends the grace window …
            await send(signed(block(13), OTHER_KEY))
            await wait_counts({("ACCEPT", "valid"): 3, ("REJECT", "wrong_signer"): 1})
            # … so the old signer is refused from now on.
            await send(signed(block(14), SEQ_KEY))
            await wait_counts({("ACCEPT", "valid"): 3, ("REJECT", "wrong_signer"): 2})

            numbers = sorted(x["number"] for x in await b.recent())
            assert numbers == [10, 12, 13]
            assert await b.stop() == 0
            nursery.cancel_scope.cancel()
    assert _signer_changes(b.log_path), "the signer change was not logged"
