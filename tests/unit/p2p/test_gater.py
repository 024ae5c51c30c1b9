"""p2p.gater.ConnectionGater: decisions, expiry, validation, persistence (pure, no network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from p2p.gater import GATER_FILE, ConnectionGater, parse_ip, parse_peer_id, parse_subnet


def pid(n: int) -> str:
    return ID.from_pubkey(create_new_key_pair(bytes([n]) * 32).public_key).to_base58()


A, B = pid(1), pid(2)
NOW = 1_700_000_000.0


def test_peer_block_refuses_dial_and_inbound_secured_but_not_outbound_secured() -> None:
    g = ConnectionGater()
    assert g.allow_dial(A, "10.0.0.1", NOW)
    g.block_peer(A)
    assert not g.allow_dial(A, "10.0.0.1", NOW)
    assert not g.allow_secured(A, "inbound", NOW)
    assert g.allow_secured(A, "outbound", NOW)  # like op-node: outbound was filtered at dial time
    assert g.allow_dial(B, "10.0.0.1", NOW)
    assert g.allow_accept("10.0.0.1", NOW)  # a peer block is not an IP block
    assert g.list_blocked_peers() == [A]
    g.unblock_peer(A)
    assert g.allow_dial(A, None, NOW)
    assert g.list_blocked_peers() == []


def test_addr_block_ipv4_and_ipv6_normalised() -> None:
    g = ConnectionGater()
    g.block_addr("192.168.1.7")
    g.block_addr("2001:DB8:0:0::1")
    assert not g.allow_accept("192.168.1.7", NOW)
    assert not g.allow_accept("::ffff:192.168.1.7", NOW)  # IPv4-mapped is the same address
    assert not g.allow_dial(None, "2001:db8::1", NOW)
    assert g.allow_accept("192.168.1.8", NOW)
    assert g.list_blocked_addrs() == ["192.168.1.7", "2001:db8::1"]
    g.unblock_addr("2001:db8::1")
    assert g.allow_accept("2001:db8::1", NOW)


def test_subnet_block_masks_host_bits_and_matches_family() -> None:
    g = ConnectionGater()
    g.block_subnet("10.1.2.3/16")
    g.block_subnet("fd00::/8")
    assert g.list_blocked_subnets() == ["10.1.0.0/16", "fd00::/8"]
    assert not g.allow_accept("10.1.255.1", NOW)
    assert g.allow_accept("10.2.0.1", NOW)
    assert not g.allow_dial(B, "fd12::5", NOW)
    assert g.allow_dial(B, "fe80::1", NOW)
    g.unblock_subnet("10.1.0.0/16")
    assert g.allow_accept("10.1.255.1", NOW)


def test_peer_ban_expires() -> None:
    g = ConnectionGater()
    g.ban_peer(A, NOW + 3600)
    assert g.is_peer_blocked(A, NOW)
    assert not g.allow_dial(A, None, NOW + 3599)
    assert not g.allow_secured(A, "inbound", NOW + 3599)
    assert g.banned_peers(NOW) == [A]
    assert g.list_blocked_peers() == []  # bans are not manual blocks
    assert g.allow_dial(A, None, NOW + 3600)  # expired exactly at the deadline
    assert g.banned_peers(NOW + 3600) == []  # auto-unban
    assert g.peer_ban_expiry(A) is None


def test_ip_ban_expires_and_zero_deletes() -> None:
    g = ConnectionGater()
    g.ban_addr("1.2.3.4", NOW + 10)
    assert not g.allow_accept("1.2.3.4", NOW + 5)
    assert g.banned_addrs(NOW) == ["1.2.3.4"]
    assert g.allow_accept("1.2.3.4", NOW + 11)
    g.ban_addr("1.2.3.4", NOW + 10)
    g.ban_addr("1.2.3.4", 0)
    assert g.allow_accept("1.2.3.4", NOW)


def test_unblock_peer_also_lifts_ban() -> None:
    g = ConnectionGater()
    g.ban_peer(A, NOW + 100)
    g.unblock_peer(A)
    assert g.allow_dial(A, None, NOW)


@pytest.mark.parametrize("bad", ["", "not-a-peer", "Qm123", "0OIl", 42, None])
def test_bad_peer_id_is_invalid_request(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^invalid request"):
        parse_peer_id(bad)
    with pytest.raises(ValueError, match=r"^invalid request"):
        ConnectionGater().block_peer(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["1.2.3", "1.2.3.4/24", "::g", "", "example.com"])
def test_bad_ip_is_invalid_request(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid request"):
        parse_ip(bad)


@pytest.mark.parametrize("bad", ["1.2.3.4", "1.2.3.4/33", "x/8", "::/129"])
def test_bad_subnet_is_invalid_request(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid request"):
        parse_subnet(bad)


def test_sha256_peer_ids_are_accepted() -> None:
    legacy = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
    assert parse_peer_id(legacy).to_base58() == legacy


def test_persistence_round_trip(tmp_path: Path) -> None:
    g = ConnectionGater.open(tmp_path / "ps")
    assert g.path == tmp_path / "ps" / GATER_FILE
    g.block_peer(A)
    g.block_addr("1.2.3.4")
    g.block_subnet("10.0.0.0/8")
    g.ban_peer(B, NOW + 60)
    g.ban_addr("5.6.7.8", NOW + 60)
    reloaded = ConnectionGater.open(tmp_path / "ps")
    assert reloaded.list_blocked_peers() == [A]
    assert reloaded.list_blocked_addrs() == ["1.2.3.4"]
    assert reloaded.list_blocked_subnets() == ["10.0.0.0/8"]
    assert reloaded.peer_ban_expiry(B) == NOW + 60
    assert not reloaded.allow_accept("5.6.7.8", NOW)
    assert reloaded.allow_accept("5.6.7.8", NOW + 61)
    # expiry pruning is persisted too
    reloaded.prune(NOW + 61)
    assert ConnectionGater.open(tmp_path / "ps").peer_ban_expiry(B) is None
    # no temp files left behind
    assert sorted(os.listdir(tmp_path / "ps")) == [GATER_FILE]


def test_unblock_is_persisted(tmp_path: Path) -> None:
    g = ConnectionGater(tmp_path / GATER_FILE)
    g.block_peer(A)
    g.unblock_peer(A)
    assert ConnectionGater(tmp_path / GATER_FILE).list_blocked_peers() == []


def test_memory_does_not_touch_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    g = ConnectionGater.open("memory")
    g.block_peer(A)
    assert g.path is None
    assert os.listdir(tmp_path) == []


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / GATER_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="gater state"):
        ConnectionGater(tmp_path / GATER_FILE)
    (tmp_path / GATER_FILE).write_text(json.dumps({"version": 1, "blockedPeers": ["bogus"]}))
    with pytest.raises(ValueError, match="gater state"):
        ConnectionGater(tmp_path / GATER_FILE)


def test_cli_peerstore_default_is_op_nodes_persisted_db(monkeypatch: pytest.MonkeyPatch) -> None:
    """``baton p2p run`` persists blocks/bans by default (op-node: ``opnode_peerstore_db``); ``memory``
    opts out."""
    import argparse

    from p2p.node_cli import add_run_arguments, config_from_args, env_name

    monkeypatch.delenv(env_name("--p2p.peerstore.path"), raising=False)
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    cfg, _ = config_from_args(parser.parse_args(["--chain-id", "10"]))
    assert cfg.peerstore_path == "opnode_peerstore_db"
    cfg, _ = config_from_args(parser.parse_args(["--chain-id", "10", "--p2p.peerstore.path", "memory"]))
    assert cfg.peerstore_path == "memory"
    assert ConnectionGater.open(cfg.peerstore_path).path is None
