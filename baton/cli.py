"""The `baton` console script: one entry point, one subcommand per job.

Each package registers its own subcommands (`p2p`, `conductor`, `devnet`, …) through a
`register(subparsers)` function so that this module stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from baton import __version__
from baton.log import LOG_FORMATS, LOG_LEVELS, setup_logging

# Modules that expose `register(subparsers: argparse._SubParsersAction) -> None`.
# A module that cannot be imported (e.g. a part still being built) is skipped with a note.
COMMAND_MODULES = (
    "p2p.cli",
    "conductor.cli",
    "deploy.cli",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="baton", description="op-baton: OP Stack gossip node and HA conductor"
    )
    parser.add_argument("--version", action="version", version=f"op-baton {__version__}")
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        default=os.environ.get("BATON_LOG_FORMAT", "text"),
        help="log output format (env BATON_LOG_FORMAT)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LOG_LEVELS,
        default=os.environ.get("BATON_LOG_LEVEL", "info"),
        help="lowest level logged (env BATON_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.log_format, args.log_level)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
