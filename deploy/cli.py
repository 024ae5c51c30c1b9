"""`baton demo`: the main job an operator runs first.

Until the devnet (simulated op-node/op-geth + three conductors + failover drill) lands, the demo
runs the gossip validator end to end on locally signed blocks.
"""

from __future__ import annotations

import argparse
from typing import Any


def _run_demo(args: argparse.Namespace) -> int:
    from p2p.demo import main as p2p_demo

    return p2p_demo()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the main demo job")
    parser.set_defaults(handler=_run_demo)
