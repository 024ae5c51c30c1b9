"""Topic strings, topic parsing and fork-based topic selection from rollup.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2p.payload import BlockVersion
from p2p.topics import RollupConfig, RollupConfigError, all_block_topics, block_topic, parse_block_topic


@pytest.mark.parametrize(
    ("version", "index"),
    [(BlockVersion.V1, 0), (BlockVersion.V2, 1), (BlockVersion.V3, 2), (BlockVersion.V4, 3)],
)
def test_block_topic(version: BlockVersion, index: int) -> None:
    assert block_topic(10, version) == f"/optimism/10/{index}/blocks"
    assert parse_block_topic(block_topic(10, version)) == (10, version)


def test_all_block_topics() -> None:
    assert all_block_topics(8453) == tuple(f"/optimism/8453/{i}/blocks" for i in range(4))


@pytest.mark.parametrize(
    "topic",
    [
        "/optimism/10/4/blocks",
        "/optimism/10/3/blocks/",
        "optimism/10/3/blocks",
        "/optimism/010/3/blocks",
        "/optimism/-1/3/blocks",
        "/optimism//3/blocks",
        "/optimism/10/03/blocks",
        "/optimism/10/3/block",
        "/optimism/１０/3/blocks",
        "",
    ],
)
def test_parse_block_topic_rejects(topic: str) -> None:
    assert parse_block_topic(topic) is None


def test_version_for_timestamp_all_forks() -> None:
    cfg = RollupConfig.from_forks(10, canyon=100, ecotone=200, isthmus=300, jovian=400)
    assert cfg.version_for_timestamp(99) is BlockVersion.V1
    assert cfg.version_for_timestamp(100) is BlockVersion.V2
    assert cfg.version_for_timestamp(199) is BlockVersion.V2
    assert cfg.version_for_timestamp(200) is BlockVersion.V3
    assert cfg.version_for_timestamp(300) is BlockVersion.V4
    assert cfg.version_for_timestamp(10**12) is BlockVersion.V4
    assert not cfg.is_jovian(399)
    assert cfg.is_jovian(400)
    assert cfg.topic_for_timestamp(250) == "/optimism/10/2/blocks"


def test_missing_fork_never_active_and_zero_is_genesis() -> None:
    cfg = RollupConfig.from_forks(10, canyon=0, ecotone=0)
    assert cfg.version_for_timestamp(0) is BlockVersion.V3
    assert cfg.version_for_timestamp(2**40) is BlockVersion.V3
    assert not cfg.is_jovian(2**40)
    assert RollupConfig.from_forks(1).version_for_timestamp(5) is BlockVersion.V1


def test_from_forks_rejects_unknown() -> None:
    with pytest.raises(RollupConfigError):
        RollupConfig.from_forks(10, shanghai=0)


def _write(tmp_path: Path, obj: object) -> Path:
    p = tmp_path / "rollup.json"
    p.write_text(json.dumps(obj))
    return p


def test_load_real_shaped_rollup_json(tmp_path: Path) -> None:
    obj = {
        "genesis": {"l1": {"hash": "0x00", "number": 1}, "l2_time": 1686068903},
        "block_time": 2,
        "max_sequencer_drift": 600,
        "l1_chain_id": 1,
        "l2_chain_id": 10,
        "regolith_time": 0,
        "canyon_time": 1704992401,
        "delta_time": 1708560000,
        "ecotone_time": 1710374401,
        "fjord_time": 1720627201,
        "granite_time": 1726070401,
        "holocene_time": 1736445601,
        "isthmus_time": 1746806401,
        "jovian_time": None,
        "l1_system_config_address": "0x229047fed2591dbec1eF1118d64F7aF3dB9EB290",
    }
    cfg = RollupConfig.load(_write(tmp_path, obj))
    assert cfg.l2_chain_id == 10
    assert cfg.block_time == 2
    assert cfg.canyon_time == 1704992401
    assert cfg.isthmus_time == 1746806401
    assert cfg.jovian_time is None
    assert cfg.l1_system_config_address == bytes.fromhex("229047fed2591dbec1ef1118d64f7af3db9eb290")
    assert cfg.version_for_timestamp(1710374400) is BlockVersion.V2
    assert cfg.version_for_timestamp(1710374401) is BlockVersion.V3
    assert cfg.version_for_timestamp(1746806401) is BlockVersion.V4


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ([], "JSON object"),
        ({}, "l2_chain_id"),
        ({"l2_chain_id": "ten"}, "l2_chain_id"),
        ({"l2_chain_id": 10, "canyon_time": -1}, "canyon_time"),
        ({"l2_chain_id": 10, "ecotone_time": "0x10"}, "ecotone_time"),
        ({"l2_chain_id": 10, "isthmus_time": True}, "isthmus_time"),
        ({"l2_chain_id": 10, "block_time": "2"}, "block_time"),
        ({"l2_chain_id": 10, "l1_system_config_address": "0x12"}, "l1_system_config_address"),
    ],
)
def test_load_bad_rollup_config_gives_clear_error(tmp_path: Path, obj: object, needle: str) -> None:
    path = _write(tmp_path, obj)
    with pytest.raises(RollupConfigError) as exc:
        RollupConfig.load(path)
    assert needle in str(exc.value)
    assert str(path) in str(exc.value)


def test_load_missing_and_non_json(tmp_path: Path) -> None:
    with pytest.raises(RollupConfigError, match="cannot read"):
        RollupConfig.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RollupConfigError, match="not valid JSON"):
        RollupConfig.load(bad)


def test_chain_id_as_decimal_string_accepted() -> None:
    assert RollupConfig.from_json({"l2_chain_id": "901"}).l2_chain_id == 901
