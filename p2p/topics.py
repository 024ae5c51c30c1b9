"""Block-gossip topics and the rollup-config facts that pick a topic version.

Topics are ``/optimism/<L2 chain id>/<version index>/blocks`` with index 0–3 for payload versions
V1–V4 (spec §1). A publisher picks the version from the payload timestamp: Isthmus → V4, Ecotone →
V3, Canyon → V2, else V1, where a fork is active when ``ts >= <fork>_time``; a fork missing from
``rollup.json`` (or null) never activates, time 0 means active from genesis. Jovian adds no topic but
changes one validation rule (V3/V4 ``blobGasUsed`` may be non-zero), hence :meth:`is_jovian`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p.payload import BlockVersion

__all__ = [
    "FORK_NAMES",
    "RollupConfig",
    "RollupConfigError",
    "all_block_topics",
    "block_topic",
    "parse_block_topic",
]

# Forks in activation order, as named by the ``<fork>_time`` keys of op-node's rollup.json.
FORK_NAMES = (
    "regolith",
    "canyon",
    "delta",
    "ecotone",
    "fjord",
    "granite",
    "holocene",
    "isthmus",
    "jovian",
    "karst",
    "interop",
)

_TOPIC_RE = re.compile(r"/optimism/(0|[1-9][0-9]*)/([0-3])/blocks")


def block_topic(chain_id: int, version: BlockVersion) -> str:
    """Return the gossip topic of ``version`` blocks on ``chain_id``."""
    return f"/optimism/{chain_id}/{int(version)}/blocks"


def all_block_topics(chain_id: int) -> tuple[str, ...]:
    """Return the four block topics of ``chain_id`` (V1…V4), the node's subscription allow-list."""
    return tuple(block_topic(chain_id, v) for v in BlockVersion)


def parse_block_topic(topic: str) -> tuple[int, BlockVersion] | None:
    """Return ``(chain_id, version)`` for a well-formed block topic, else None."""
    match = _TOPIC_RE.fullmatch(topic)
    if match is None:
        return None
    return int(match.group(1)), BlockVersion(int(match.group(2)))


class RollupConfigError(ValueError):
    """rollup.json is missing, unreadable or malformed."""


def _opt_time(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 64:
        raise RollupConfigError(f"{key} must be a non-negative integer (unix seconds) or null, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RollupConfig:
    """The parts of op-node's rollup.json the gossip layer needs."""

    l2_chain_id: int
    block_time: int = 2
    fork_times: Mapping[str, int] = field(default_factory=dict)
    l1_system_config_address: bytes | None = None
    genesis: Mapping[str, Any] = field(default_factory=dict)

    def fork_time(self, fork: str) -> int | None:
        """Activation time of ``fork`` (e.g. ``"isthmus"``), None if it never activates."""
        return self.fork_times.get(fork)

    def is_active(self, fork: str, timestamp: int) -> bool:
        """True when ``fork`` is active at L2 ``timestamp``."""
        t = self.fork_times.get(fork)
        return t is not None and timestamp >= t

    @property
    def canyon_time(self) -> int | None:
        return self.fork_times.get("canyon")

    @property
    def ecotone_time(self) -> int | None:
        return self.fork_times.get("ecotone")

    @property
    def isthmus_time(self) -> int | None:
        return self.fork_times.get("isthmus")

    @property
    def jovian_time(self) -> int | None:
        return self.fork_times.get("jovian")

    def is_jovian(self, timestamp: int) -> bool:
        """True when Jovian is active at ``timestamp``."""
        return self.is_active("jovian", timestamp)

    def version_for_timestamp(self, timestamp: int) -> BlockVersion:
        """The payload/topic version a block with this timestamp is published on."""
        if self.is_active("isthmus", timestamp):
            return BlockVersion.V4
        if self.is_active("ecotone", timestamp):
            return BlockVersion.V3
        if self.is_active("canyon", timestamp):
            return BlockVersion.V2
        return BlockVersion.V1

    def topic_for_timestamp(self, timestamp: int) -> str:
        """The topic a block with this timestamp is published on."""
        return block_topic(self.l2_chain_id, self.version_for_timestamp(timestamp))

    @classmethod
    def from_forks(cls, l2_chain_id: int, block_time: int = 2, **times: int | None) -> RollupConfig:
        """Build a config from keyword fork times, e.g. ``from_forks(10, canyon=0, isthmus=None)``."""
        unknown = set(times) - set(FORK_NAMES)
        if unknown:
            raise RollupConfigError(f"unknown fork(s): {', '.join(sorted(unknown))}")
        forks = {k: v for k, v in times.items() if v is not None}
        return cls(l2_chain_id=l2_chain_id, block_time=block_time, fork_times=forks)

    @classmethod
    def from_json(cls, obj: object) -> RollupConfig:
        """Build from a parsed rollup.json object; raise RollupConfigError on malformed input."""
        if not isinstance(obj, dict):
            raise RollupConfigError("rollup config must be a JSON object")
        chain_id = obj.get("l2_chain_id")
        if isinstance(chain_id, str) and chain_id.isdigit():
            chain_id = int(chain_id)
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 0:
            raise RollupConfigError(f"l2_chain_id must be a non-negative integer, got {chain_id!r}")
        block_time = obj.get("block_time", 2)
        if isinstance(block_time, bool) or not isinstance(block_time, int) or block_time < 0:
            raise RollupConfigError(f"block_time must be a non-negative integer, got {block_time!r}")
        forks: dict[str, int] = {}
        for name in FORK_NAMES:
            t = _opt_time(obj, f"{name}_time")
            if t is not None:
                forks[name] = t
        sys_cfg = obj.get("l1_system_config_address")
        sys_addr: bytes | None = None
        if sys_cfg is not None:
            if not isinstance(sys_cfg, str):
                raise RollupConfigError("l1_system_config_address must be a hex string")
            body = sys_cfg[2:] if sys_cfg[:2] in ("0x", "0X") else sys_cfg
            try:
                sys_addr = bytes.fromhex(body)
            except ValueError:
                raise RollupConfigError(f"l1_system_config_address is not hex: {sys_cfg!r}")
            if len(sys_addr) != 20:
                raise RollupConfigError("l1_system_config_address must be 20 bytes")
        genesis = obj.get("genesis", {})
        if not isinstance(genesis, dict):
            raise RollupConfigError("genesis must be a JSON object")
        return cls(
            l2_chain_id=chain_id,
            block_time=block_time,
            fork_times=forks,
            l1_system_config_address=sys_addr,
            genesis=genesis,
        )

    @classmethod
    def load(cls, path: str | Path) -> RollupConfig:
        """Load rollup.json from ``path``; raise RollupConfigError naming the file on any problem."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RollupConfigError(f"cannot read rollup config {p}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            raise RollupConfigError(f"rollup config {p} is not UTF-8 text")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RollupConfigError(f"rollup config {p} is not valid JSON: {exc}")
        try:
            return cls.from_json(obj)
        except RollupConfigError as exc:
            raise RollupConfigError(f"rollup config {p}: {exc}")
