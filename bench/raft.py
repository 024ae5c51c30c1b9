"""Raft benchmark: 3 RaftNode processes on loopback with fsync on.

Measures commit latency (propose -> committed on a quorum -> applied on the leader, timed
inside the leader process) for 1 KB / 100 KB / 2 MB entries, the time from ``kill -9`` of the
leader to a new leader being elected (heartbeat 200 ms, election timeout 1 s), and the time of
a targeted leadership transfer. Prints target vs measured; the last line is one JSON object.

    python bench/raft.py [--quick] [--failover-runs N] [--transfer-runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.cluster.raft_proc import ProcCluster  # noqa: E402

TARGETS_MS = {
    "commit_100KB_p99": 20.0,
    "commit_2MB_p99": 150.0,
    "failover_median": 1500.0,
    "transfer_median": 50.0,
}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def ms(x: float) -> float:
    return round(x * 1000, 3)


async def call_ok(pc: ProcCluster, sid: str, op: str, **kw: Any) -> dict[str, Any]:
    r = await pc.call(sid, op, **kw)
    if not r.get("ok"):
        raise RuntimeError(f"{sid} {op}: {r}")
    return r


async def wait_caught_up(pc: ProcCluster, ids: list[str]) -> None:
    with trio.fail_after(30):
        while True:
            sts = [await call_ok(pc, s, "status") for s in ids]
            if len({st["applied_index"] for st in sts}) == 1 and any(st["is_leader"] for st in sts):
                return
            await trio.sleep(0.05)


async def bench_latency(pc: ProcCluster, leader: str, size: int, samples: int) -> dict[str, Any]:
    for _ in range(max(5, samples // 10)):  # warm-up
        await call_ok(pc, leader, "propose", size=size)
    lat = []
    for _ in range(samples):
        r = await call_ok(pc, leader, "propose", size=size)
        lat.append(float(r["latency"]))
    return {
        "n": samples,
        "p50_ms": ms(pct(lat, 50)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(max(lat)),
        "mean_ms": ms(statistics.fmean(lat)),
    }


async def bench_transfer(pc: ProcCluster, ids: list[str], runs: int) -> dict[str, Any]:
    lat = []
    for _ in range(runs):
        leader = await pc.leader(ids)
        await wait_caught_up(pc, ids)
        target = ids[(ids.index(leader) + 1) % len(ids)]
        r = await call_ok(pc, leader, "transfer", target=target)
        assert r["leader"] == target, r
        lat.append(float(r["latency"]))
        await pc.leader([target])
        await trio.sleep(0.3)
    return {
        "n": runs,
        "median_ms": ms(statistics.median(lat)),
        "max_ms": ms(max(lat)),
        "runs_ms": [ms(x) for x in lat],
    }


async def bench_failover(pc: ProcCluster, ids: list[str], runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        leader = await pc.leader(ids)
        await wait_caught_up(pc, ids)
        await call_ok(pc, leader, "propose", size=1024)
        await trio.sleep(0.5)  # steady state: followers have recent heartbeats
        others = [s for s in ids if s != leader]
        before = {s: (await call_ok(pc, s, "status"))["became_leader_at"] for s in others}
        t_kill = time.time()
        pc.kill(leader)
        new = await pc.leader(others, within=15)
        st = await call_ok(pc, new, "status")
        at = st["became_leader_at"]
        assert at is not None and at != before[new]
        times.append(at - t_kill)
        await pc.wait_dead(leader)
        await pc.start(leader)
    return {
        "n": runs,
        "median_ms": ms(statistics.median(times)),
        "max_ms": ms(max(times)),
        "min_ms": ms(min(times)),
        "runs_ms": [ms(x) for x in times],
    }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    load_before = os.getloadavg()
    sizes = [
        ("1KB", 1024, 50 if quick else 200),
        ("100KB", 100 * 1024, 50 if quick else 200),
        ("2MB", 2 * 1024 * 1024, 15 if quick else 50),
    ]
    with tempfile.TemporaryDirectory(prefix="raft-bench-") as tmp:
        pc = ProcCluster(
            Path(tmp), ["--heartbeat", "0.2", "--election", "1.0", "--fsm", "digest", "--log-level", "warn"]
        )
        try:
            ids = await pc.form(3)
            leader = await pc.leader(ids)
            result: dict[str, Any] = {"commit": {}}
            for name, size, n in sizes:
                result["commit"][name] = await bench_latency(pc, leader, size, n)
                print(f"commit {name:>6}: {result['commit'][name]}", file=sys.stderr)
            result["transfer"] = await bench_transfer(pc, ids, args.transfer_runs or (5 if quick else 10))
            print(f"transfer: {result['transfer']}", file=sys.stderr)
            result["failover"] = await bench_failover(pc, ids, args.failover_runs or (3 if quick else 10))
            print(f"failover: {result['failover']}", file=sys.stderr)
        finally:
            with trio.CancelScope(shield=True):
                await pc.stop_all()
    measured = {
        "commit_100KB_p99": result["commit"]["100KB"]["p99_ms"],
        "commit_2MB_p99": result["commit"]["2MB"]["p99_ms"],
        "failover_median": result["failover"]["median_ms"],
        "transfer_median": result["transfer"]["median_ms"],
    }
    result["targets_ms"] = TARGETS_MS
    result["measured_ms"] = measured
    result["pass"] = {k: measured[k] <= TARGETS_MS[k] for k in TARGETS_MS}
    result["config"] = {
        "nodes": 3,
        "transport": "tcp loopback",
        "fsync": True,
        "heartbeat_s": 0.2,
        "election_timeout_s": 1.0,
        "quick": quick,
        "processes": True,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description="Raft commit latency / failover / transfer benchmark")
    p.add_argument("--quick", action="store_true", help="fewer samples")
    p.add_argument("--failover-runs", type=int, default=0)
    p.add_argument("--transfer-runs", type=int, default=0)
    args = p.parse_args()
    result = trio.run(amain, args)
    for k, target in TARGETS_MS.items():
        got = result["measured_ms"][k]
        print(
            f"{k:<20} target <= {target:>8.1f} ms   measured {got:>9.3f} ms   "
            f"{'OK' if got <= target else 'MISS'}"
        )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
