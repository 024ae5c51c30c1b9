"""The unsafe-block signer from L1: read SystemConfig's storage slot and keep a :class:`SignerSet` current.

op-node reads the "unsafe block signer" (P2P sequencer address) with
``eth_getStorageAt(<l1_system_config_address>, keccak256("systemconfig.unsafeblocksigner"), <block>)``
on start and every ``--l1.runtime-config-reload-interval`` (10 min), spec §3.1. The storage word holds the
address right-aligned in 32 bytes. :func:`run_signer_reload` does the same against any L1 JSON-RPC
endpoint (plain JSON-RPC over HTTP, no web3), updating the :class:`~p2p.validator.SignerSet` — which
starts the 3 h grace window on a change — and logging every change with its reason. Failures are
logged and retried after ``retry_interval``; the loop never crashes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from baton.log import get_logger
from baton.rpcclient import RpcCallFailed, RpcClient
from p2p.validator import SignerSet

if TYPE_CHECKING:
    # mypy does not see trio's re-export of TaskStatus
    from trio_typing import TaskStatus

__all__ = [
    "DEFAULT_RELOAD_INTERVAL",
    "UNSAFE_BLOCK_SIGNER_SLOT",
    "RpcStorageReader",
    "SignerSourceError",
    "StorageReader",
    "fetch_unsafe_block_signer",
    "parse_address",
    "parse_address_word",
    "run_signer_reload",
]

log = get_logger("p2p.signer_source")

# keccak256("systemconfig.unsafeblocksigner")
UNSAFE_BLOCK_SIGNER_SLOT = "0x65a7ed542fb37fe237fdfbdd70b31598523fe5b32879e307bae27a0bd9581c08"
DEFAULT_RELOAD_INTERVAL = 600.0
DEFAULT_RETRY_INTERVAL = 10.0
ZERO_ADDRESS = bytes(20)

_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")


class SignerSourceError(Exception):
    """The L1 answer could not be used (bad word, RPC error, transport failure)."""


class StorageReader(Protocol):
    """Anything that can do ``eth_getStorageAt``; returns the 0x-hex storage word."""

    async def get_storage_at(self, address: str, slot: str, block: str) -> str: ...


class RpcStorageReader:
    """:class:`StorageReader` over JSON-RPC HTTP (``baton.rpcclient.RpcClient``)."""

    def __init__(self, l1_url: str, *, timeout: float = 10.0, client: RpcClient | None = None) -> None:
        self._client = client if client is not None else RpcClient(l1_url, timeout=timeout)
        self._owns = client is None

    async def get_storage_at(self, address: str, slot: str, block: str) -> str:
        result: Any = await self._client.call("eth_getStorageAt", address, slot, block)
        if not isinstance(result, str):
            raise SignerSourceError(f"eth_getStorageAt returned {type(result).__name__}, want hex string")
        return result

    async def aclose(self) -> None:
        if self._owns:
            await self._client.aclose()


def parse_address(value: str) -> str:
    """Validate a 20-byte hex address (optional 0x) and return it 0x-prefixed, lower case."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value.strip()):
        raise ValueError(f"bad address {value!r}: want 20-byte hex")
    v = value.strip().lower()
    return v if v.startswith("0x") else "0x" + v


def parse_address_word(word: str) -> bytes | None:
    """The address in a 32-byte storage word (right-aligned); ``None`` for the zero address (unset).

    Accepts geth's 0x + 64 hex digits; shorter quantities are left-padded. A word whose top 12 bytes are
    not zero is not an address → :class:`SignerSourceError`.
    """
    if not isinstance(word, str) or not _HEX.fullmatch(word) or len(word) > 66:
        raise SignerSourceError(f"bad storage word {word!r}")
    digits = word[2:]
    if len(digits) % 2:
        digits = "0" + digits
    raw = bytes.fromhex(digits).rjust(32, b"\x00")
    if any(raw[:12]):
        raise SignerSourceError(f"storage word {word} is not an address (high bytes set)")
    addr = raw[12:]
    return None if addr == ZERO_ADDRESS else addr


async def fetch_unsafe_block_signer(
    reader: StorageReader, system_config: str, block: str = "latest"
) -> bytes | None:
    """Read the unsafe block signer from L1 (``None`` = unset)."""
    try:
        word = await reader.get_storage_at(parse_address(system_config), UNSAFE_BLOCK_SIGNER_SLOT, block)
    except RpcCallFailed as exc:
        raise SignerSourceError(f"eth_getStorageAt failed: {exc}") from None
    return parse_address_word(word)


def _fmt(addr: bytes | None) -> str:
    return "0x" + addr.hex() if addr is not None else "none"


async def run_signer_reload(
    signers: SignerSet,
    l1: str | StorageReader,
    system_config: str,
    *,
    interval: float = DEFAULT_RELOAD_INTERVAL,
    retry_interval: float = DEFAULT_RETRY_INTERVAL,
    clock: Callable[[], float] = time.time,
    on_change: Callable[[bytes | None, bytes | None], None] | None = None,
    task_status: TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Load the signer now and every ``interval`` s until cancelled (``l1`` = URL or a reader).

    ``task_status.started()`` is called after the first attempt, successful or not (startup is not held
    hostage by L1). Failures retry after ``min(retry_interval, interval)``. ``on_change(old, new)`` is
    called after the SignerSet was updated with a different signer (e.g. for metrics).
    """
    parse_address(system_config)  # config error: fail loudly at start
    reader: StorageReader
    owned: RpcStorageReader | None = None
    if isinstance(l1, str):
        owned = RpcStorageReader(l1)
        reader = owned
    else:
        reader = l1
    started = False
    first = True
    try:
        while True:
            delay = interval
            try:
                new = await fetch_unsafe_block_signer(reader, system_config)
            except (SignerSourceError, OSError, trio.TooSlowError) as exc:
                log.warning("signer_reload_failed", error=str(exc), system_config=system_config)
                delay = min(retry_interval, interval)
            except Exception as exc:  # never crash the node over L1 weirdness
                log.error("signer_reload_failed", error=repr(exc), system_config=system_config)
                delay = min(retry_interval, interval)
            else:
                old = signers.current
                if new != old:
                    reason = "initial load" if first else "SystemConfig unsafe block signer changed on L1"
                    signers.update(new, int(clock()))
                    log.info(
                        "unsafe_block_signer_updated",
                        old=_fmt(old),
                        new=_fmt(new),
                        reason=reason,
                        grace_until=signers.previous_deadline,
                    )
                    if on_change is not None:
                        on_change(old, new)
                elif first:
                    log.info(
                        "unsafe_block_signer_loaded", signer=_fmt(new), reason="initial load (unchanged)"
                    )
                first = False
            if not started:
                started = True
                task_status.started()
            await trio.sleep(delay)
    finally:
        if owned is not None:
            with trio.CancelScope(shield=True):
                await owned.aclose()
