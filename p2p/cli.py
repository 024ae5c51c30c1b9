"""``baton p2p …``: offline tools around block gossip (validate, encode, keygen) and the node itself (run).

* ``validate`` reads JSON lines ``{"topic": …, "data": "0x<compressed gossip bytes>"[, "now": N]}``
  from stdin and prints one JSON line per input, in order, judged by ONE validator state (so
  duplicates and per-height limits behave as on a live node)::

      {"result": "ACCEPT|IGNORE|REJECT", "reason": …, "message_id": "0x…",
       "block_hash": "0x…"|null, "block_number": N|null}

  ``block_hash``/``block_number`` are the payload's *claimed* values whenever the payload decoded
  (SSZ step passed), even if it was rejected afterwards (e.g. ``block_hash_mismatch``); null when it
  never decoded. Unusable lines print ``{"result": "ERROR", "reason": …, "detail": …}`` and
  processing continues; blank lines are skipped. ``--verbose`` adds ``detail`` and ``signer``.
  Without ``--now`` each line is judged at the current wall-clock second.
* ``encode`` reads an envelope in op-node JSON (``{"executionPayload": …, "parentBeaconBlockRoot": …}``,
  or a bare payload) and prints ``{"topic", "data", "message_id", "block_hash"}`` for it, signed with
  ``--key``. The topic version is ``--version`` if given, else picked from the payload timestamp by
  the rollup config (file or ``--*-time`` flags), else V4.
* ``keygen`` prints a fresh sequencer key and its address.
* ``run`` starts the gossip node (provided by :mod:`p2p.node_cli` when present).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from p2p.encoding import message_id
from p2p.payload import BlockVersion, envelope_from_json, version_for_envelope
from p2p.signing import (
    InvalidKeyError,
    address_of,
    encode_gossip,
    generate_private_key,
    load_private_key,
    parse_address,
)
from p2p.topics import RollupConfig, RollupConfigError, block_topic
from p2p.validator import DEFAULT_TIMESTAMP_THRESHOLD, GossipValidator, SignerSet

__all__ = ["register"]

_VERSION_NAMES = {
    "v1": BlockVersion.V1,
    "v2": BlockVersion.V2,
    "v3": BlockVersion.V3,
    "v4": BlockVersion.V4,
}


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class UsageError(Exception):
    """Bad command-line arguments (exit code 2)."""


def _hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def _version_arg(text: str) -> BlockVersion:
    version = _VERSION_NAMES.get(text.strip().lower())
    if version is None:
        raise argparse.ArgumentTypeError(f"version must be one of v1, v2, v3, v4 (got {text!r})")
    return version


def _add_fork_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("forks (alternative to --rollup-config)")
    for fork in ("canyon", "ecotone", "isthmus", "jovian"):
        group.add_argument(
            f"--{fork}-time",
            dest=f"{fork}_time",
            type=int,
            default=None,
            metavar="T",
            help=f"{fork} activation time (unix seconds); absent = never",
        )
    parser.add_argument("--rollup-config", metavar="FILE", help="op-node rollup.json")


def _rollup_from_args(args: argparse.Namespace) -> RollupConfig | None:
    """The rollup config from --rollup-config or the --*-time flags (None if neither given)."""
    fork_flags = {f: getattr(args, f"{f}_time") for f in ("canyon", "ecotone", "isthmus", "jovian")}
    given = {f: t for f, t in fork_flags.items() if t is not None}
    if args.rollup_config:
        if given:
            raise UsageError("use either --rollup-config or the --*-time flags, not both")
        return RollupConfig.load(args.rollup_config)
    if given:
        chain_id = args.chain_id if args.chain_id is not None else 0
        return RollupConfig.from_forks(chain_id, **given)
    return None


def _chain_id(args: argparse.Namespace, rollup: RollupConfig | None) -> int:
    if args.chain_id is not None:
        if rollup is not None and args.rollup_config and rollup.l2_chain_id != args.chain_id:
            raise UsageError(
                f"--chain-id {args.chain_id} disagrees with rollup config l2_chain_id {rollup.l2_chain_id}"
            )
        return int(args.chain_id)
    if rollup is not None and args.rollup_config:
        return rollup.l2_chain_id
    raise UsageError("--chain-id is required (or give --rollup-config)")


# ---------------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------------


def _error_line(reason: str, detail: str) -> dict[str, Any]:
    return {"result": "ERROR", "reason": reason, "detail": detail}


def _parse_line(line: str) -> tuple[str, bytes, int | None] | dict[str, Any]:
    """Return (topic, data, now-override) or an ERROR object."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        return _error_line("invalid_json", str(exc))
    if not isinstance(obj, dict):
        return _error_line("invalid_json", "each line must be a JSON object")
    for key in ("topic", "data"):
        if key not in obj:
            return _error_line("missing_key", f"missing {key!r}")
    topic, data_hex = obj["topic"], obj["data"]
    if not isinstance(topic, str):
        return _error_line("invalid_topic", "topic must be a string")
    if not isinstance(data_hex, str):
        return _error_line("invalid_hex", "data must be a hex string")
    body = data_hex[2:] if data_hex[:2] in ("0x", "0X") else data_hex
    if len(body) % 2 or not _HEX_DIGITS.issuperset(body):
        return _error_line("invalid_hex", "data is not valid hex (even number of hex digits, 0x optional)")
    data = bytes.fromhex(body)
    now = obj.get("now")
    if now is not None and (isinstance(now, bool) or not isinstance(now, int)):
        return _error_line("invalid_now", "now must be an integer (unix seconds)")
    return topic, data, now


def validate_stream(
    validator: GossipValidator,
    lines: IO[str],
    out: IO[str],
    *,
    now: int | None = None,
    verbose: bool = False,
) -> int:
    """Validate JSON lines from ``lines`` with one validator state; write one JSON line per input."""
    count = 0
    for line in lines:
        if not line.strip():
            continue
        parsed = _parse_line(line)
        if isinstance(parsed, dict):
            record = parsed
        else:
            topic, data, line_now = parsed
            at = line_now if line_now is not None else (now if now is not None else int(time.time()))
            verdict, mid = validator.validate_with_id(topic, data, at)
            record = {
                "result": verdict.result.value,
                "reason": verdict.reason,
                "message_id": _hex(mid),
                "block_hash": _hex(verdict.block_hash),
                "block_number": verdict.block_number,
            }
            if verbose:
                record["detail"] = verdict.detail
                record["signer"] = _hex(verdict.signer)
        out.write(json.dumps(record) + "\n")
        out.flush()
        count += 1
    return count


def _build_validator(args: argparse.Namespace) -> GossipValidator:
    rollup = _rollup_from_args(args)
    chain_id = _chain_id(args, rollup)
    signer = parse_address(args.signer) if args.signer else None
    previous = parse_address(args.prev_signer) if args.prev_signer else None
    if args.prev_signer_deadline is not None and previous is None:
        raise UsageError("--prev-signer-deadline needs --prev-signer")
    signers = SignerSet(signer, previous=previous, previous_deadline=args.prev_signer_deadline)
    return GossipValidator(chain_id, signers, rollup, timestamp_threshold=args.timestamp_threshold)


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        validator = _build_validator(args)
    except (UsageError, InvalidKeyError, RollupConfigError) as exc:
        print(f"baton p2p validate: {exc}", file=sys.stderr)
        return 2
    validate_stream(validator, sys.stdin, sys.stdout, now=args.now, verbose=args.verbose)
    return 0


# ---------------------------------------------------------------------------------------------
# encode
# ---------------------------------------------------------------------------------------------


def encode_envelope_json(
    obj: object, *, chain_id: int, key: bytes, version: BlockVersion | None, rollup: RollupConfig | None
) -> tuple[dict[str, Any], str | None]:
    """Sign and encode one envelope JSON object. Returns (output record, warning or None).

    Raises ValueError on an unusable envelope.
    """
    if isinstance(obj, dict) and "executionPayload" not in obj and "blockHash" in obj:
        obj = {"executionPayload": obj}  # a bare payload
    envelope = envelope_from_json(obj)
    ts = envelope.execution_payload.timestamp
    if version is None:
        version = rollup.version_for_timestamp(ts) if rollup is not None else BlockVersion.V4
    warning = None
    implied = version_for_envelope(envelope)
    if implied != version:
        warning = f"envelope fields look like {implied.name} but encoding for the {version.name} topic"
    data = encode_gossip(envelope, version, key, chain_id)
    topic = block_topic(chain_id, version)
    record = {
        "topic": topic,
        "data": "0x" + data.hex(),
        "message_id": _hex(message_id(topic, data)),
        "block_hash": _hex(envelope.execution_payload.block_hash),
    }
    return record, warning


def _cmd_encode(args: argparse.Namespace) -> int:
    try:
        rollup = _rollup_from_args(args)
        chain_id = _chain_id(args, rollup)
        key = load_private_key(args.key)
    except (UsageError, InvalidKeyError, RollupConfigError) as exc:
        print(f"baton p2p encode: {exc}", file=sys.stderr)
        return 2
    try:
        text = Path(args.input).read_text(encoding="utf-8") if args.input else sys.stdin.read()
    except OSError as exc:
        print(f"baton p2p encode: cannot read {args.input}: {exc}", file=sys.stderr)
        return 1
    try:
        obj = json.loads(text)
        record, warning = encode_envelope_json(
            obj, chain_id=chain_id, key=key, version=args.version, rollup=rollup
        )
    except (json.JSONDecodeError, ValueError) as exc:
        print(f"baton p2p encode: invalid envelope: {exc}", file=sys.stderr)
        return 1
    if warning:
        print(f"baton p2p encode: warning: {warning}", file=sys.stderr)
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# keygen, demo
# ---------------------------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    key = generate_private_key()
    record = {"private_key": "0x" + key.hex(), "address": "0x" + address_of(key).hex()}
    if args.out:
        path = Path(args.out)
        if path.exists():
            print(f"baton p2p keygen: {path} exists, not overwriting", file=sys.stderr)
            return 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
        del record["private_key"]
        record["key_file"] = str(path)
    print(json.dumps(record))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from p2p.demo import main as demo_main

    return demo_main()


def _cmd_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``p2p`` and its subcommands to the ``baton`` parser."""
    p2p = subparsers.add_parser("p2p", help="OP Stack block gossip: node, validator and tools")
    p2p.set_defaults(handler=_cmd_help(p2p))
    sub = p2p.add_subparsers(dest="p2p_command", metavar="SUBCOMMAND")

    val = sub.add_parser("validate", help="validate gossip messages (JSON lines on stdin)")
    val.add_argument("--chain-id", type=int, default=None, help="L2 chain id")
    val.add_argument("--signer", metavar="0xADDR", help="current unsafe block signer (unset: IGNORE all)")
    val.add_argument("--prev-signer", metavar="0xADDR", help="previous signer still in its grace window")
    val.add_argument(
        "--prev-signer-deadline",
        type=int,
        metavar="UNIX",
        help="last second the previous signer is accepted (default: no expiry)",
    )
    _add_fork_args(val)
    val.add_argument("--timestamp-threshold", type=int, default=DEFAULT_TIMESTAMP_THRESHOLD, metavar="S")
    val.add_argument(
        "--now", type=int, default=None, metavar="UNIX", help="judge at this time (default: wall clock)"
    )
    val.add_argument("--verbose", action="store_true", help="add detail and signer to each output line")
    val.set_defaults(handler=_cmd_validate)

    enc = sub.add_parser("encode", help="sign and encode an envelope JSON into gossip bytes")
    enc.add_argument("--chain-id", type=int, default=None, help="L2 chain id")
    enc.add_argument("--key", required=True, metavar="HEX_OR_FILE", help="sequencer private key")
    enc.add_argument("--version", type=_version_arg, default=None, help="topic version v1..v4")
    _add_fork_args(enc)
    enc.add_argument("--in", dest="input", metavar="FILE", help="read the envelope from FILE (default stdin)")
    enc.set_defaults(handler=_cmd_encode)

    kg = sub.add_parser("keygen", help="generate a sequencer (block signing) key")
    kg.add_argument("--out", metavar="FILE", help="write the key (hex) to FILE with mode 0600")
    kg.set_defaults(handler=_cmd_keygen)

    demo = sub.add_parser("demo", help="show the validator on a handful of good and bad blocks")
    demo.set_defaults(handler=_cmd_demo)

    # The node itself lives in p2p.node_cli (``add_run_arguments(parser)``, ``run(args) -> int``);
    # until that module exists there is simply no ``run`` subcommand.
    try:
        node_cli = importlib.import_module("p2p.node_cli")
    except ModuleNotFoundError as exc:
        if exc.name != "p2p.node_cli":
            raise
        return
    run_parser = sub.add_parser("run", help="run the gossip node")
    node_cli.add_run_arguments(run_parser)
    run_parser.set_defaults(handler=node_cli.run)
