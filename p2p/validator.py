"""Sans-IO block-gossip validator: op-node's checks, order and outcomes (spec §5.1, steps 1–22).

One :class:`BlockTopicValidator` per topic version, each with its own height LRU (op-node builds one
validator per topic); :class:`GossipValidator` routes by topic string and rejects unknown topics.
Time is injected (``now``, whole unix seconds) and nothing here does I/O.

Order (first failing step decides)::

    1–4   snappy header / > 10 MiB / < 66 bytes / body          REJECT
    5     no signer configured                                   IGNORE
    6     signature: recover, must be current signer or previous
          signer inside its grace window                         REJECT
    7     SSZ decode with the topic's version                    REJECT
    8–9   timestamp older than now−threshold / newer than now+5  REJECT
    10    block hash recomputation                               REJECT
    11–19 per-version field rules (withdrawals, blob gas, …)     REJECT
    20–22 per-height record: >5 hashes REJECT, seen IGNORE, else ACCEPT

Each :class:`Verdict` carries a stable snake_case ``reason`` (used by metrics and the CLI) and a
free-text ``detail``. Once the payload decoded (step 7 passed) the verdict also carries the envelope,
its claimed block hash and number, whatever the final result; ``signer`` is the recovered address once
recovery succeeded. Any unexpected exception becomes REJECT ``internal_error`` (op-node's
``guardGossipValidator``); ``validate`` never raises.

Speed: the message is decompressed once, the signed bytes are hashed once (keccak over a memoryview,
no copy), and :meth:`GossipValidator.validate_with_id` reuses the decompressed bytes for the
message-id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from p2p.blockhash import compute_block_hash
from p2p.encoding import SnappyError, SnappyMessage, inspect
from p2p.payload import BlockVersion, ExecutionPayloadEnvelope, PayloadDecodeError, decode_envelope
from p2p.seen import DEFAULT_HEIGHT_CAPACITY, HeightLRU, SeenOutcome
from p2p.signing import SIGNATURE_LENGTH, keccak256, recover_signer, signing_hash_prefix
from p2p.topics import RollupConfig, block_topic, parse_block_topic

__all__ = [
    "DEFAULT_FUTURE_BOUND",
    "DEFAULT_SIGNER_GRACE_PERIOD",
    "DEFAULT_TIMESTAMP_THRESHOLD",
    "BlockTopicValidator",
    "GossipValidator",
    "Result",
    "SignerSet",
    "Verdict",
    "version_rule_violation",
]

DEFAULT_TIMESTAMP_THRESHOLD = 60  # --p2p.gossip.timestamp.threshold
DEFAULT_FUTURE_BOUND = 5
DEFAULT_SIGNER_GRACE_PERIOD = 3 * 3600  # op-node DefaultSignerGracePeriod
ZERO_ADDRESS = bytes(20)


class Result(StrEnum):
    """Gossipsub validation result."""

    ACCEPT = "ACCEPT"
    IGNORE = "IGNORE"
    REJECT = "REJECT"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of validating one gossip message."""

    result: Result
    reason: str
    envelope: ExecutionPayloadEnvelope | None = None
    block_hash: bytes | None = None
    block_number: int | None = None
    signer: bytes | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.result is Result.ACCEPT


def _reject(reason: str, detail: str = "") -> Verdict:
    return Verdict(Result.REJECT, reason, detail=detail)


class SignerSet:
    """Who may sign blocks: the current signer, plus the previous one during a rotation grace window.

    Mirrors op-node's runtime config (OP PR #20063): when the signer changes from a non-zero address,
    the old one stays acceptable until ``now + grace_period`` (inclusive) or until a block signed by
    the new signer verifies, whichever comes first. A zero or unset current signer makes every block
    IGNOREd. ``previous_deadline=None`` with a previous signer means "no expiry" (until confirmed).
    """

    __slots__ = ("_current", "_grace_period", "_previous", "_previous_deadline")

    def __init__(
        self,
        current: bytes | None = None,
        previous: bytes | None = None,
        previous_deadline: int | None = None,
        grace_period: int = DEFAULT_SIGNER_GRACE_PERIOD,
    ) -> None:
        for addr in (current, previous):
            if addr is not None and len(addr) != 20:
                raise ValueError("signer addresses must be 20 bytes")
        self._current = current if current != ZERO_ADDRESS else None
        self._previous = previous if previous != ZERO_ADDRESS else None
        self._previous_deadline = previous_deadline
        self._grace_period = grace_period

    @property
    def current(self) -> bytes | None:
        """The current signer, None when unset (zero address)."""
        return self._current

    @property
    def grace_period(self) -> int:
        return self._grace_period

    @property
    def previous_deadline(self) -> int | None:
        return self._previous_deadline if self._previous is not None else None

    def previous_at(self, now: int) -> bytes | None:
        """The previous signer if it is still inside its grace window at ``now``, else None."""
        prev = self._previous
        if prev is None:
            return None
        deadline = self._previous_deadline
        if deadline is not None and now > deadline:
            return None
        return prev

    def update(self, new_signer: bytes | None, now: int) -> None:
        """Install ``new_signer`` (e.g. freshly read from SystemConfig); start a grace window if it
        replaces a different non-zero signer. Re-setting the same signer changes nothing."""
        if new_signer is not None and len(new_signer) != 20:
            raise ValueError("signer addresses must be 20 bytes")
        new = new_signer if new_signer != ZERO_ADDRESS else None
        if self._current is not None and self._current != new:
            self._previous = self._current
            self._previous_deadline = now + self._grace_period
        self._current = new

    def confirm_current(self) -> None:
        """A block signed by the current signer verified: end any grace window now."""
        if self._current is not None:
            self._previous = None
            self._previous_deadline = None

    def authorize(self, recovered: bytes, now: int) -> bool:
        """True if ``recovered`` may sign at ``now``; a current-signer match ends the grace window."""
        if recovered == self._current:
            if self._previous is not None:
                self.confirm_current()
            return True
        prev = self.previous_at(now)
        return prev is not None and recovered == prev


class BlockTopicValidator:
    """Validator for one block topic version, with its own height LRU (op-node ``BuildBlocksValidator``)."""

    __slots__ = (
        "_seen",
        "_signing_prefix",
        "chain_id",
        "future_bound",
        "jovian_time",
        "signers",
        "timestamp_threshold",
        "topic",
        "version",
    )

    def __init__(
        self,
        chain_id: int,
        version: BlockVersion,
        signers: SignerSet,
        *,
        jovian_time: int | None = None,
        timestamp_threshold: int = DEFAULT_TIMESTAMP_THRESHOLD,
        future_bound: int = DEFAULT_FUTURE_BOUND,
        height_capacity: int = DEFAULT_HEIGHT_CAPACITY,
    ) -> None:
        self.chain_id = chain_id
        self.version = BlockVersion(version)
        self.signers = signers
        self.jovian_time = jovian_time
        self.timestamp_threshold = timestamp_threshold
        self.future_bound = future_bound
        self.topic = block_topic(chain_id, self.version)
        self._seen = HeightLRU(height_capacity)
        # signing_hash = keccak(domain ‖ chain_id ‖ payload_hash): the first 64 bytes are fixed.
        self._signing_prefix = signing_hash_prefix(chain_id)

    @property
    def seen(self) -> HeightLRU:
        return self._seen

    def validate(self, data: bytes, now: int) -> Verdict:
        """Validate compressed gossip ``data`` at wall-clock second ``now``. Never raises."""
        try:
            return self._validate(inspect(data), now)
        except Exception as exc:  # guardGossipValidator: a bug must not take the node down
            return _reject("internal_error", f"{type(exc).__name__}: {exc}")

    def validate_message(self, message: SnappyMessage, now: int) -> Verdict:
        """Validate an already :func:`p2p.encoding.inspect`-ed message. Never raises."""
        try:
            return self._validate(message, now)
        except Exception as exc:
            return _reject("internal_error", f"{type(exc).__name__}: {exc}")

    def _validate(self, message: SnappyMessage, now: int) -> Verdict:
        # Steps 1–4: snappy bounds and decode.
        try:
            data = message.gossip_payload()
        except SnappyError as exc:
            return _reject(exc.reason, exc.detail)

        # Step 5: no signer configured → IGNORE.
        signers = self.signers
        if signers.current is None:
            return Verdict(Result.IGNORE, "no_signer", detail="no unsafe block signer configured")

        # Step 6: signature over signing_hash(chain, keccak(data[65:])).
        digest = keccak256(self._signing_prefix + keccak256(memoryview(data)[SIGNATURE_LENGTH:]))
        signer = recover_signer(data[:SIGNATURE_LENGTH], digest)
        if signer is None:
            return _reject("bad_signature", "signature recovery failed (or v not 0/1)")
        if not signers.authorize(signer, now):
            return Verdict(Result.REJECT, "wrong_signer", signer=signer, detail=f"signed by 0x{signer.hex()}")

        # Step 7: SSZ decode with the topic's version.
        version = self.version
        try:
            envelope = decode_envelope(data[SIGNATURE_LENGTH:], version)
        except PayloadDecodeError as exc:
            return Verdict(Result.REJECT, "invalid_encoding", signer=signer, detail=str(exc))
        except Exception as exc:  # a decoder crash on hostile input is still a bad encoding
            detail = f"{type(exc).__name__}: {exc}"
            return Verdict(Result.REJECT, "invalid_encoding", signer=signer, detail=detail)
        payload = envelope.execution_payload
        block_hash = payload.block_hash
        number = payload.block_number

        def verdict(result: Result, reason: str, detail: str = "") -> Verdict:
            return Verdict(result, reason, envelope, block_hash, number, signer, detail)

        # Steps 8–9: timestamp window, both bounds inclusive-OK.
        ts = payload.timestamp
        if ts < now - self.timestamp_threshold:
            return verdict(
                Result.REJECT, "timestamp_too_old", f"timestamp {ts} < {now} - {self.timestamp_threshold}"
            )
        if ts > now + self.future_bound:
            return verdict(
                Result.REJECT, "timestamp_too_new", f"timestamp {ts} > {now} + {self.future_bound}"
            )

        # Step 10: block hash.
        actual = compute_block_hash(envelope, version)
        if actual != block_hash:
            return verdict(Result.REJECT, "block_hash_mismatch", f"computed 0x{actual.hex()}")

        # Steps 11–19: per-version field rules.
        jovian = self.jovian_time is not None and ts >= self.jovian_time
        problem = version_rule_violation(envelope, version, jovian)
        if problem is not None:
            return verdict(Result.REJECT, problem)

        # Steps 20–22: per-height record.
        outcome = self._seen.check_and_mark(number, block_hash)
        if outcome is SeenOutcome.TOO_MANY:
            return verdict(Result.REJECT, "too_many_blocks", f"more than 5 blocks seen at height {number}")
        if outcome is SeenOutcome.DUPLICATE:
            return verdict(Result.IGNORE, "duplicate", "block already seen")
        return verdict(Result.ACCEPT, "valid")


def version_rule_violation(
    envelope: ExecutionPayloadEnvelope, version: BlockVersion, jovian_active: bool
) -> str | None:
    """Steps 11–19 of spec §5.1 for a decoded envelope on the ``version`` topic.

    Returns the reason of the first failing rule, or None. Several rules cannot fail after a strict
    decode (the topic fixes which fields exist); they are kept, as in op-node, as a second line of
    defence against decoder changes.
    """
    payload = envelope.execution_payload
    if version is BlockVersion.V1:
        if payload.withdrawals is not None:
            return "unexpected_withdrawals"
    else:
        if payload.withdrawals is None:
            return "missing_withdrawals"
        if len(payload.withdrawals) != 0:
            return "withdrawals_not_empty"
    if version < BlockVersion.V3:
        if payload.blob_gas_used is not None:
            return "unexpected_blob_gas_used"
        if payload.excess_blob_gas is not None:
            return "unexpected_excess_blob_gas"
    else:
        if payload.blob_gas_used is None:
            return "missing_blob_gas_used"
        if payload.blob_gas_used != 0 and not jovian_active:
            return "blob_gas_used_nonzero"
        if payload.excess_blob_gas is None:
            return "missing_excess_blob_gas"
        if payload.excess_blob_gas != 0:
            return "excess_blob_gas_nonzero"
        if envelope.parent_beacon_block_root is None:
            return "missing_parent_beacon_block_root"
    if version >= BlockVersion.V4 and payload.withdrawals_root is None:
        return "missing_withdrawals_root"
    return None


class GossipValidator:
    """Validators for the four block topics of one chain; routes by topic string."""

    __slots__ = ("_by_topic", "chain_id", "rollup", "signers")

    def __init__(
        self,
        chain_id: int,
        signers: SignerSet,
        rollup: RollupConfig | None = None,
        jovian_time: int | None = None,
        timestamp_threshold: int = DEFAULT_TIMESTAMP_THRESHOLD,
        future_bound: int = DEFAULT_FUTURE_BOUND,
        *,
        height_capacity: int = DEFAULT_HEIGHT_CAPACITY,
    ) -> None:
        """``jovian_time`` overrides the rollup config's; with neither, Jovian never activates."""
        self.chain_id = chain_id
        self.signers = signers
        self.rollup = rollup
        if jovian_time is None and rollup is not None:
            jovian_time = rollup.jovian_time
        self._by_topic = {
            block_topic(chain_id, v): BlockTopicValidator(
                chain_id,
                v,
                signers,
                jovian_time=jovian_time,
                timestamp_threshold=timestamp_threshold,
                future_bound=future_bound,
                height_capacity=height_capacity,
            )
            for v in BlockVersion
        }

    @property
    def topics(self) -> tuple[str, ...]:
        """The four topics this validator serves (V1…V4)."""
        return tuple(self._by_topic)

    def __iter__(self) -> Iterator[BlockTopicValidator]:
        return iter(self._by_topic.values())

    def for_topic(self, topic: str) -> BlockTopicValidator | None:
        return self._by_topic.get(topic)

    def for_version(self, version: BlockVersion) -> BlockTopicValidator:
        return self._by_topic[block_topic(self.chain_id, version)]

    def validate(self, topic: str, data: bytes, now: int) -> Verdict:
        """Validate compressed gossip ``data`` received on ``topic``. Never raises."""
        validator = self._by_topic.get(topic)
        if validator is None:
            return _unknown_topic(topic)
        return validator.validate(data, now)

    def validate_message(self, topic: str, message: SnappyMessage, now: int) -> Verdict:
        """Validate a message already passed through :func:`p2p.encoding.inspect`. Never raises."""
        validator = self._by_topic.get(topic)
        if validator is None:
            return _unknown_topic(topic)
        return validator.validate_message(message, now)

    def validate_with_id(self, topic: str, data: bytes, now: int) -> tuple[Verdict, bytes]:
        """Validate and also return op-node's message-id, decompressing only once."""
        try:
            message = inspect(data)
        except Exception as exc:  # pragma: no cover - inspect does not raise on bytes input
            return _reject("internal_error", f"{type(exc).__name__}: {exc}"), b""
        return self.validate_message(topic, message, now), message.message_id(topic)


def _unknown_topic(topic: str) -> Verdict:
    parsed = parse_block_topic(topic)
    detail = f"not a block topic: {topic!r}" if parsed is None else f"topic of another chain: {topic!r}"
    return _reject("unknown_topic", detail)
