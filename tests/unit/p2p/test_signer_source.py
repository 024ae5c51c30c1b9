"""p2p.signer_source: storage-word parsing, and the reload loop against a tiny fake L1 JSON-RPC server."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from baton.httpserver import HttpServer
from baton.jsonrpc import Dispatcher, Params, ServerError
from p2p.signer_source import (
    UNSAFE_BLOCK_SIGNER_SLOT,
    SignerSourceError,
    fetch_unsafe_block_signer,
    parse_address_word,
    run_signer_reload,
)
from p2p.validator import SignerSet

SYSTEM_CONFIG = "0x229047fed2591dbec1ef1118d64f7af3db9eb290"
SIGNER_A = bytes.fromhex("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
SIGNER_B = bytes.fromhex("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")


def word(addr: bytes) -> str:
    return "0x" + addr.rjust(32, b"\x00").hex()


def test_slot_is_keccak_of_the_name() -> None:
    from p2p.signing import keccak256

    assert "0x" + keccak256(b"systemconfig.unsafeblocksigner").hex() == UNSAFE_BLOCK_SIGNER_SLOT


def test_parse_address_word() -> None:
    assert parse_address_word(word(SIGNER_A)) == SIGNER_A
    assert parse_address_word("0x" + SIGNER_A.hex()) == SIGNER_A  # short quantity, left-padded
    assert parse_address_word("0x" + "00" * 32) is None
    assert parse_address_word("0x0") is None
    for bad in ["", "0x" + "11" * 33, "0xzz", "aa" * 32, "0x01" + "00" * 31]:
        with pytest.raises(SignerSourceError):
            parse_address_word(bad)


class FakeL1:
    """Serves eth_getStorageAt for one contract; ``fail`` makes the next calls error."""

    def __init__(self, signer: bytes | None) -> None:
        self.signer = signer
        self.fail = 0
        self.calls: list[list[Any]] = []
        self.dispatcher = Dispatcher()
        self.dispatcher.register("eth_getStorageAt", self.get_storage_at)

    async def get_storage_at(self, params: Params) -> Any:
        assert isinstance(params, list)
        self.calls.append(params)
        if self.fail:
            self.fail -= 1
            raise ServerError("header not found")
        if params[0] != SYSTEM_CONFIG or params[1] != UNSAFE_BLOCK_SIGNER_SLOT:
            return "0x" + "00" * 32
        return word(self.signer or bytes(20))

    async def serve(self, nursery: trio.Nursery) -> str:
        server = HttpServer()
        server.mount_jsonrpc(self.dispatcher)
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        return f"http://{host}:{port}"


async def test_fetch_over_http() -> None:
    l1 = FakeL1(SIGNER_A)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await l1.serve(nursery)
            from p2p.signer_source import RpcStorageReader

            reader = RpcStorageReader(url)
            try:
                assert await fetch_unsafe_block_signer(reader, SYSTEM_CONFIG) == SIGNER_A
                assert l1.calls[-1] == [SYSTEM_CONFIG, UNSAFE_BLOCK_SIGNER_SLOT, "latest"]
                l1.fail = 1
                with pytest.raises(SignerSourceError, match="header not found"):
                    await fetch_unsafe_block_signer(reader, SYSTEM_CONFIG)
            finally:
                await reader.aclose()
            nursery.cancel_scope.cancel()


async def test_reload_loop_updates_signer_set_with_grace_and_survives_errors() -> None:
    l1 = FakeL1(SIGNER_A)
    signers = SignerSet(grace_period=10_800)
    changes: list[tuple[bytes | None, bytes | None]] = []
    rotated = trio.Event()

    def on_change(old: bytes | None, new: bytes | None) -> None:
        changes.append((old, new))
        if new == SIGNER_B:
            rotated.set()

    now = [1_000_000.0]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await l1.serve(nursery)
            await nursery.start(
                lambda task_status: run_signer_reload(
                    signers,
                    url,
                    SYSTEM_CONFIG,
                    interval=0.05,
                    retry_interval=0.02,
                    clock=lambda: now[0],
                    on_change=on_change,
                    task_status=task_status,
                )
            )
            # started() comes after the first (successful) load
            assert signers.current == SIGNER_A
            l1.fail = 3  # L1 hiccups: logged, retried, signer kept
            await trio.sleep(0.1)
            assert signers.current == SIGNER_A
            now[0] = 2_000_000.0
            l1.signer = SIGNER_B
            await rotated.wait()
            assert signers.current == SIGNER_B
            # rotation grace: the old signer is still acceptable for 3 h from the change
            assert signers.previous_at(2_000_000 + 10_800) == SIGNER_A
            assert signers.previous_at(2_000_000 + 10_801) is None
            nursery.cancel_scope.cancel()
    assert changes == [(None, SIGNER_A), (SIGNER_A, SIGNER_B)]
    assert l1.fail == 0 and len(l1.calls) >= 5  # 1 load + 3 failed retries + the change


async def test_reload_starts_even_when_l1_is_down() -> None:
    signers = SignerSet()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            # nothing listens on this port (bound then closed)
            sock = trio.socket.socket()
            await sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            sock.close()
            await nursery.start(
                lambda task_status: run_signer_reload(
                    signers,
                    f"http://127.0.0.1:{port}",
                    SYSTEM_CONFIG,
                    interval=0.05,
                    retry_interval=0.02,
                    task_status=task_status,
                )
            )
            assert signers.current is None
            await trio.sleep(0.1)  # keeps retrying without crashing the nursery
            nursery.cancel_scope.cancel()


async def test_bad_system_config_address_fails_fast() -> None:
    with trio.fail_after(5), pytest.raises(ValueError, match="bad address"):
        await run_signer_reload(SignerSet(), "http://127.0.0.1:1", "0x1234")
