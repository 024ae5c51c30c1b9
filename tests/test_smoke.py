"""Smoke tests of the `baton` command line itself: dispatch, version, logging flags."""

import json

import pytest
import structlog

from baton.cli import build_parser, main
from baton.log import setup_logging


def test_no_command_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: baton" in capsys.readouterr().err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert "op-baton" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["p2p", "demo"])
def test_subcommands_are_registered(command: str) -> None:
    parser = build_parser()
    args = parser.parse_args([command] if command == "demo" else [command, "keygen"])
    assert callable(args.handler)


def test_json_logs_use_op_keys(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", "info")
    structlog.get_logger().info("leadership changed", leader=True)
    structlog.get_logger().debug("not shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["msg"] == "leadership changed"
    assert record["lvl"] == "info"
    assert record["leader"] is True
    assert "t" in record


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        setup_logging("xml", "info")
