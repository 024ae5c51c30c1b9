"""Gossip benchmark: 3 ``baton p2p run`` processes in a line on 127.0.0.1, 100 KB blocks.

Measures (last stdout line is JSON):

* latency at 10 blocks/s — one hop (n0 → n1) and two hops (n0 → n2), p50/p99 in ms, computed from each
  node's ``receivedAt`` (the publisher's own acceptance time is the send time; all processes share the
  machine's ``time.time()``);
* the highest publish rate sustained for a window (30 s; ``--quick`` 5 s) with zero loss at both
  receivers — step up (×1.5) from 25 blocks/s until a step loses a block or cannot be driven at the
  target rate, then one bisection step;
* the js-libp2p ↔ js-libp2p reference ratio (null with a reason: not measured by this bench).

Blocks are published through the sequencer node's ``baton_publishPayload`` RPC (several in flight).

    .venv/bin/python bench/gossip.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "cluster")]


from gossip_helpers import CHAIN_ID, NodeProc, start_node, wait_for  # type: ignore[import-not-found]  # noqa: E402

from p2p.blockbuilder import build_envelope, deposit_tx, eip1559_tx  # noqa: E402
from p2p.payload import BlockVersion, envelope_to_json  # noqa: E402

BLOCK_BYTES = 100_000


class BlockSource:
    """100 KB V4 blocks with unique numbers; the big transactions are built once and reused."""

    def __init__(self) -> None:
        import random

        rng = random.Random(7)
        self.txs = (deposit_tx(rng), eip1559_tx(rng, CHAIN_ID, 0, BLOCK_BYTES - 300))
        self.next_number = 1

    def next_json(self) -> tuple[int, dict[str, Any]]:
        n = self.next_number
        self.next_number += 1
        env = build_envelope(
            BlockVersion.V4, number=n, timestamp=int(time.time()), chain_id=CHAIN_ID, transactions=self.txs
        )
        return n, envelope_to_json(env)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return round(s[k], 3)


async def publish_at_rate(
    seq: NodeProc, source: BlockSource, rate: float, duration: float, max_in_flight: int = 32
) -> tuple[dict[str, int], float, int]:
    """Publish at ``rate`` for ``duration`` s; returns (hash → number, achieved rate, failures)."""
    published: dict[str, int] = {}
    failures = 0
    limiter = trio.CapacityLimiter(max_in_flight)
    total = max(1, int(rate * duration))
    start = trio.current_time()

    async def one(number: int, env: dict[str, Any]) -> None:
        nonlocal failures
        async with limiter:
            try:
                await seq.call("baton_publishPayload", env)
                published[env["executionPayload"]["blockHash"]] = number
            except Exception:
                failures += 1

    async with trio.open_nursery() as nursery:
        for i in range(total):
            await trio.sleep_until(start + i / rate)
            if limiter.borrowed_tokens >= max_in_flight:
                await trio.lowlevel.checkpoint()  # backlog: the driver/node cannot keep up at this rate
            number, env = source.next_json()
            nursery.start_soon(one, number, env)
    elapsed = trio.current_time() - start
    return published, total / elapsed if elapsed > 0 else 0.0, failures


async def received(node: NodeProc) -> dict[str, float]:
    blocks = await node.recent(10_000)
    return {b["hash"]: float(b["receivedAt"]) for b in blocks}


async def bench(quick: bool) -> dict[str, Any]:
    window = 5.0 if quick else 30.0
    lat_blocks = 50 if quick else 200
    source = BlockSource()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with trio.open_nursery() as nursery:
            extra = ["--p2p.recent.limit", "10000", "--p2p.ban.peers", "false"]
            n0 = await start_node(nursery, work, "n0", sequencer=True, extra=extra)
            n1 = await start_node(nursery, work, "n1", static=[n0.addr], extra=extra)
            n2 = await start_node(nursery, work, "n2", static=[n1.addr], extra=extra)
            nodes = (n0, n1, n2)

            async def lined_up() -> bool:
                return n1.peer_id in await n0.connected_peers() and n2.peer_id in await n1.connected_peers()

            await wait_for(lined_up, 30)
            await trio.sleep(2.0)

            # -- latency at 10 blocks/s ----------------------------------------------------------------
            published, _, _ = await publish_at_rate(n0, source, 10.0, lat_blocks / 10.0)
            await trio.sleep(2.0)
            r0, r1, r2 = [await received(n) for n in nodes]
            hop1 = [(r1[h] - r0[h]) * 1000 for h in published if h in r0 and h in r1]
            hop2 = [(r2[h] - r0[h]) * 1000 for h in published if h in r0 and h in r2]
            latency = {
                "blocks": len(published),
                "one_hop_ms": {
                    "p50": pct(hop1, 50),
                    "p99": pct(hop1, 99),
                    "mean": round(statistics.mean(hop1), 3),
                }
                if hop1
                else None,
                "two_hops_ms": {
                    "p50": pct(hop2, 50),
                    "p99": pct(hop2, 99),
                    "mean": round(statistics.mean(hop2), 3),
                }
                if hop2
                else None,
                "lost": len(published) - min(len(hop1), len(hop2)),
            }

            # -- sustained rate with zero loss ---------------------------------------------------------
            steps: list[dict[str, Any]] = []

            async def trial(rate: float) -> bool:
                pub, achieved, failures = await publish_at_rate(n0, source, rate, window)
                await trio.sleep(3.0)
                got1, got2 = await received(n1), await received(n2)
                lost = sum(1 for h in pub if h not in got1 or h not in got2)
                ok = lost == 0 and failures == 0 and achieved >= 0.95 * rate
                steps.append(
                    {
                        "rate": round(rate, 1),
                        "achieved": round(achieved, 1),
                        "published": len(pub),
                        "lost": lost,
                        "rpc_failures": failures,
                        "ok": ok,
                    }
                )
                return ok

            best = 0.0
            rate = 25.0
            failed_at: float | None = None
            while rate <= 1000:
                if await trial(rate):
                    best = rate
                    rate *= 1.5
                else:
                    failed_at = rate
                    break
            if failed_at is not None and best > 0 and not quick:
                mid = (best + failed_at) / 2
                if await trial(mid):
                    best = mid
            for n in nodes:
                await n.stop()
            nursery.cancel_scope.cancel()
    return {
        "bench": "gossip",
        "topology": "3 processes in a line on 127.0.0.1 (n0 publishes via RPC)",
        "block_bytes": BLOCK_BYTES,
        "window_s": window,
        "latency_at_10_per_s": latency,
        "sustained_zero_loss_blocks_per_s": round(best, 1),
        "rate_steps": steps,
        "targets": {"p99_one_hop_ms": 25, "sustained_blocks_per_s": 100},
        "js_reference_ratio": None,
        "js_reference_reason": "js-libp2p <-> js-libp2p latency is not measured by this bench yet",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 s windows, 50 latency blocks")
    args = parser.parse_args()
    result = trio.run(bench, args.quick)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
