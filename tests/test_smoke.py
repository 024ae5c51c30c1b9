"""Smoke tests of the `baton` command line itself."""

import pytest
import trio

from baton.cli import build_parser, main


def test_help_lists_no_command_returns_2() -> None:
    assert main([]) == 2


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert "op-baton" in capsys.readouterr().out


async def test_trio_mode_runs_async_tests() -> None:
    with trio.fail_after(1):
        await trio.sleep(0)
