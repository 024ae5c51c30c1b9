"""Reference numbers: one-hop block-gossip latency between two js-libp2p peers (js ↔ js).

Runs ``tests/interop/js/peer.mjs --bench``: the publisher (in that process) and a receiver (a child
``peer.mjs`` process) connect over TCP/noise/yamux on 127.0.0.1 with op-node's gossipsub settings;
the publisher sends ``count`` signed V4 blocks carrying ``size`` bytes of incompressible transaction
data at ``rate`` per second, and latency = receiver delivery time − publish call time (same host
clock). The receiver validates every block (snappy, signature recovery) before delivery, as op-node
does; ``validate_p50_ms`` reports how much of the latency that validation took (pure-JS keccak of
the payload dominates: ~25 ms per 100 KB) and ``transport_p50_ms`` the latency without it.

The gossip benchmark compares our Python node against these numbers. Usage::

    python bench/js_reference.py [--count 100] [--size 102400] [--rate 10] [--muxer yamux] [--out FILE]

Prints one JSON object. Exits 0 with ``{"skipped": reason}`` when node or the js dependencies are
missing (install them with ``npm ci --prefix tests/interop/js``), so ``./run bench`` still works.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["JS_DIR", "js_reference", "main"]

JS_DIR = Path(__file__).resolve().parent.parent / "tests" / "interop" / "js"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (JS_DIR / "node_modules" / "@chainsafe" / "libp2p-gossipsub" / "package.json").is_file():
        return f"js dependencies not installed (npm ci --prefix {JS_DIR})"
    return None


def js_reference(
    count: int = 100, size: int = 100 * 1024, rate: float = 10.0, muxer: str = "yamux", timeout: float = 120.0
) -> dict[str, Any]:
    """Run the js ↔ js bench; return its JSON result, or ``{"skipped": reason}`` when js is unavailable.

    Result keys: ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``, ``mean_ms``, ``delivered``, ``lost``,
    ``validate_p50_ms``, ``validate_p99_ms``, ``transport_p50_ms``, ``transport_p99_ms``, ``count``,
    ``size``, ``compressedSize``, ``rate``, ``muxer``, ``versions``.
    """
    reason = _missing()
    if reason is not None:
        return {"skipped": reason}
    node = shutil.which("node")
    assert node is not None
    args = [node, "peer.mjs", "--bench", "--count", str(count), "--size", str(size), "--rate", str(rate)]
    args += ["--muxer", muxer]
    proc = subprocess.run(args, cwd=JS_DIR, capture_output=True, text=True, timeout=timeout, check=False)
    for line in reversed(proc.stdout.splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("event") == "bench":
            obj.pop("event")
            return obj
    detail = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    raise RuntimeError(f"js bench failed (exit {proc.returncode}):\n{detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100, help="blocks to publish (default 100)")
    parser.add_argument("--size", type=int, default=100 * 1024, help="tx bytes per block (default 100 KiB)")
    parser.add_argument("--rate", type=float, default=10.0, help="blocks per second (default 10)")
    parser.add_argument("--muxer", choices=("yamux", "mplex", "both"), default="yamux")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    result = {"bench": "js_reference_one_hop", **js_reference(args.count, args.size, args.rate, args.muxer)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
