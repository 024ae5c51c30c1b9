"""``baton p2p validate|encode|keygen|demo`` through the real ``baton`` entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from gossip_factory import CHAIN_ID, NOW, OTHER_KEY, SEQUENCER_ADDRESS, SEQUENCER_KEY, make_gossip

from baton.cli import main
from p2p.blockbuilder import build_envelope
from p2p.encoding import message_id
from p2p.payload import BlockVersion, envelope_to_json
from p2p.signing import address_of, load_private_key

SIGNER = "0x" + SEQUENCER_ADDRESS.hex()
BASE = ["p2p", "validate", "--chain-id", str(CHAIN_ID), "--signer", SIGNER, "--now", str(NOW)]


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str
) -> tuple[int, list[dict[str, object]], str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return rc, lines, captured.err


def line(topic: str, data: bytes, **extra: object) -> str:
    return json.dumps({"topic": topic, "data": "0x" + data.hex(), **extra}) + "\n"


def test_validate_accept_duplicate_and_error_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = make_gossip(BlockVersion.V4, number=42)
    stdin = line(msg.topic, msg.data) + "not json\n\n" + '{"topic": "x"}\n' + line(msg.topic, msg.data)
    rc, out, _ = run_cli(monkeypatch, capsys, BASE, stdin)
    assert rc == 0
    assert len(out) == 4  # blank line skipped
    assert out[0] == {
        "result": "ACCEPT",
        "reason": "valid",
        "message_id": "0x" + message_id(msg.topic, msg.data).hex(),
        "block_hash": "0x" + msg.block_hash.hex(),
        "block_number": 42,
    }
    assert out[1]["result"] == "ERROR" and out[1]["reason"] == "invalid_json"
    assert out[2]["result"] == "ERROR" and out[2]["reason"] == "missing_key"
    assert out[3]["result"] == "IGNORE" and out[3]["reason"] == "duplicate"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"topic": "/optimism/10/3/blocks", "data": "0xzz"}', "invalid_hex"),
        ('{"topic": "/optimism/10/3/blocks", "data": "0xabc"}', "invalid_hex"),
        ('{"topic": "/optimism/10/3/blocks", "data": "ab cd"}', "invalid_hex"),
        ('{"topic": "/optimism/10/3/blocks", "data": 12}', "invalid_hex"),
        ('{"topic": 3, "data": "0x00"}', "invalid_topic"),
        ('{"topic": "/optimism/10/3/blocks", "data": "0x00", "now": "soon"}', "invalid_now"),
        ("[1, 2]", "invalid_json"),
    ],
)
def test_validate_bad_lines_are_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raw: str, reason: str
) -> None:
    rc, out, _ = run_cli(monkeypatch, capsys, BASE, raw + "\n")
    assert rc == 0
    assert out[0]["result"] == "ERROR"
    assert out[0]["reason"] == reason


def test_validate_reports_claimed_hash_when_decoded_and_null_otherwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = make_gossip(BlockVersion.V4, timestamp=NOW - 100, number=7)
    forged = make_gossip(BlockVersion.V4, key=OTHER_KEY)
    stdin = line(stale.topic, stale.data) + line(forged.topic, forged.data) + line(stale.topic, b"\xff")
    _, out, _ = run_cli(monkeypatch, capsys, BASE, stdin)
    assert (out[0]["result"], out[0]["reason"]) == ("REJECT", "timestamp_too_old")
    assert out[0]["block_hash"] == "0x" + stale.block_hash.hex()
    assert out[0]["block_number"] == 7
    assert (out[1]["reason"], out[1]["block_hash"], out[1]["block_number"]) == ("wrong_signer", None, None)
    assert out[2]["reason"] == "snappy_invalid_length"
    assert out[2]["message_id"] == "0x" + message_id(stale.topic, b"\xff").hex()


def test_validate_per_line_now_override(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = make_gossip(BlockVersion.V4, timestamp=NOW + 1000)
    _, out, _ = run_cli(monkeypatch, capsys, BASE, line(msg.topic, msg.data, now=NOW + 1000))
    assert out[0]["result"] == "ACCEPT"


def test_validate_without_signer_ignores(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = make_gossip(BlockVersion.V4)
    argv = ["p2p", "validate", "--chain-id", "10", "--now", str(NOW)]
    _, out, _ = run_cli(monkeypatch, capsys, argv, line(msg.topic, msg.data))
    assert (out[0]["result"], out[0]["reason"]) == ("IGNORE", "no_signer")


def test_validate_prev_signer_grace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new = "0x" + address_of(OTHER_KEY).hex()
    old_signed = make_gossip(BlockVersion.V4, number=1)
    argv = [
        "p2p",
        "validate",
        "--chain-id",
        "10",
        "--signer",
        new,
        "--prev-signer",
        SIGNER,
        "--now",
        str(NOW),
    ]
    _, out, _ = run_cli(monkeypatch, capsys, argv, line(old_signed.topic, old_signed.data))
    assert out[0]["result"] == "ACCEPT"  # no deadline = within grace
    expired = [*argv, "--prev-signer-deadline", str(NOW - 1)]
    _, out, _ = run_cli(monkeypatch, capsys, expired, line(old_signed.topic, old_signed.data))
    assert (out[0]["result"], out[0]["reason"]) == ("REJECT", "wrong_signer")


def test_validate_jovian_from_flags_and_rollup_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    msg = make_gossip(BlockVersion.V4, blob_gas_used=5)
    _, out, _ = run_cli(monkeypatch, capsys, BASE, line(msg.topic, msg.data))
    assert out[0]["reason"] == "blob_gas_used_nonzero"
    _, out, _ = run_cli(monkeypatch, capsys, [*BASE, "--jovian-time", "0"], line(msg.topic, msg.data))
    assert out[0]["result"] == "ACCEPT"
    rollup = tmp_path / "rollup.json"
    rollup.write_text(json.dumps({"l2_chain_id": 10, "isthmus_time": 0, "jovian_time": NOW}))
    argv = ["p2p", "validate", "--rollup-config", str(rollup), "--signer", SIGNER, "--now", str(NOW)]
    _, out, _ = run_cli(monkeypatch, capsys, argv, line(msg.topic, msg.data))
    assert out[0]["result"] == "ACCEPT"


def test_validate_verbose_adds_detail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = make_gossip(BlockVersion.V4, key=OTHER_KEY)
    _, out, _ = run_cli(monkeypatch, capsys, [*BASE, "--verbose"], line(msg.topic, msg.data))
    assert out[0]["signer"] == "0x" + address_of(OTHER_KEY).hex()
    assert isinstance(out[0]["detail"], str) and out[0]["detail"]


@pytest.mark.parametrize(
    "argv",
    [
        ["p2p", "validate", "--signer", SIGNER],  # no chain id
        ["p2p", "validate", "--chain-id", "10", "--signer", "0x12"],
        ["p2p", "validate", "--chain-id", "10", "--prev-signer-deadline", "5"],
        ["p2p", "validate", "--chain-id", "10", "--rollup-config", "/nonexistent.json"],
    ],
)
def test_validate_bad_arguments_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    rc, out, err = run_cli(monkeypatch, capsys, argv, "")
    assert rc == 2
    assert out == []
    assert "baton p2p validate" in err


def test_encode_then_validate_round_trip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = build_envelope(BlockVersion.V3, timestamp=NOW, n_txs=4)
    key_file = tmp_path / "seq.key"
    key_file.write_text("0x" + SEQUENCER_KEY.hex())
    argv = ["p2p", "encode", "--chain-id", "10", "--key", str(key_file), "--version", "v3"]
    rc, out, err = run_cli(monkeypatch, capsys, argv, json.dumps(envelope_to_json(env)))
    assert rc == 0, err
    record = out[0]
    assert record["topic"] == "/optimism/10/2/blocks"
    assert record["block_hash"] == "0x" + env.execution_payload.block_hash.hex()
    data = bytes.fromhex(str(record["data"])[2:])
    assert record["message_id"] == "0x" + message_id(str(record["topic"]), data).hex()
    _, verdicts, _ = run_cli(monkeypatch, capsys, BASE, json.dumps(record) + "\n")
    assert verdicts[0]["result"] == "ACCEPT"
    assert verdicts[0]["message_id"] == record["message_id"]


def test_encode_picks_topic_by_timestamp_or_defaults_to_v4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = build_envelope(BlockVersion.V2, timestamp=NOW)
    infile = tmp_path / "env.json"
    infile.write_text(json.dumps(envelope_to_json(env)))
    key = SEQUENCER_KEY.hex()
    forks = ["--canyon-time", "0", "--ecotone-time", str(NOW + 1)]
    rc, out, _ = run_cli(
        monkeypatch,
        capsys,
        ["p2p", "encode", "--chain-id", "10", "--key", key, *forks, "--in", str(infile)],
        "",
    )
    assert rc == 0
    assert out[0]["topic"] == "/optimism/10/1/blocks"
    # Without version or forks: V4, with a warning since the fields say V2 (and V4 needs more fields).
    rc, out, err = run_cli(
        monkeypatch, capsys, ["p2p", "encode", "--chain-id", "10", "--key", key], infile.read_text()
    )
    assert rc == 1
    assert "invalid envelope" in err


def test_encode_accepts_bare_payload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = build_envelope(BlockVersion.V1, timestamp=NOW)
    bare = envelope_to_json(env)["executionPayload"]
    argv = ["p2p", "encode", "--chain-id", "10", "--key", SEQUENCER_KEY.hex(), "--version", "v1"]
    rc, out, _ = run_cli(monkeypatch, capsys, argv, json.dumps(bare))
    assert rc == 0
    assert out[0]["topic"] == "/optimism/10/0/blocks"


@pytest.mark.parametrize(
    ("argv_tail", "stdin", "rc"),
    [
        (["--key", "0x1234"], "{}", 2),
        (["--key", SEQUENCER_KEY.hex()], "{not json", 1),
        (["--key", SEQUENCER_KEY.hex()], '{"executionPayload": {}}', 1),
    ],
)
def test_encode_errors(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv_tail: list[str],
    stdin: str,
    rc: int,
) -> None:
    got_rc, out, err = run_cli(monkeypatch, capsys, ["p2p", "encode", "--chain-id", "10", *argv_tail], stdin)
    assert got_rc == rc
    assert out == []
    assert err


def test_keygen_prints_consistent_key_and_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, _ = run_cli(monkeypatch, capsys, ["p2p", "keygen"], "")
    assert rc == 0
    key = load_private_key(str(out[0]["private_key"]))
    assert out[0]["address"] == "0x" + address_of(key).hex()
    path = tmp_path / "k.txt"
    rc, out, _ = run_cli(monkeypatch, capsys, ["p2p", "keygen", "--out", str(path)], "")
    assert rc == 0
    assert "private_key" not in out[0]
    assert out[0]["address"] == "0x" + address_of(load_private_key(str(path))).hex()
    assert path.stat().st_mode & 0o777 == 0o600
    rc, _, _ = run_cli(monkeypatch, capsys, ["p2p", "keygen", "--out", str(path)], "")
    assert rc == 1  # never overwrites a key


def test_demo_all_cases_as_expected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["p2p", "demo"]) == 0
    out = capsys.readouterr().out
    assert "0 unexpected" in out
    assert "too_many_blocks" in out


def test_p2p_without_subcommand_prints_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run_cli(monkeypatch, capsys, ["p2p"], "")
    assert rc == 2
    assert "validate" in err


def test_validate_subprocess_streams_line_by_line() -> None:
    """One real process: output is flushed per line, so a reader sees each verdict before EOF."""
    msg = make_gossip(BlockVersion.V4, number=3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", *BASE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line(msg.topic, msg.data))
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # would block forever if not flushed
        assert first["result"] == "ACCEPT"
        proc.stdin.write(line(msg.topic, msg.data))
        proc.stdin.close()
        second = json.loads(proc.stdout.readline())
        assert second["reason"] == "duplicate"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
