"""Fixtures for the js-libp2p interop tests.

Availability policy: when Node.js/npm or the pinned js dependencies (``npm ci --prefix
tests/interop/js``) are missing, the tests are *skipped* on a developer machine but *fail* in CI
(``CI`` set to a true value), so a broken CI image cannot silently drop the interop evidence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .jspeer import JS_DIR, PEER_SCRIPT, js_missing_reason

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "message_ids.json"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


@pytest.fixture(scope="session")
def js_peer_ready() -> None:
    """Ensure the js peer can run and passes its self-test (message-id vectors, signatures, snappy)."""
    reason = js_missing_reason()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"interop test cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    node = shutil.which("node")
    assert node is not None
    args = [node, str(PEER_SCRIPT), "--selftest"]
    if VECTORS.is_file():
        args += ["--vectors", str(VECTORS)]
    proc = subprocess.run(args, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    failed = [c for c in report.get("checks", []) if not c.get("ok")]
    assert proc.returncode == 0 and report.get("ok"), f"js self-test failed: {failed or proc.stderr[-2000:]}"
