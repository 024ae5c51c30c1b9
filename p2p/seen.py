"""Per-topic record of block hashes seen at each height (op-node's ``blockHeightLRU``).

op-node keeps, per block topic, an LRU of 1000 block heights (hashicorp ``lru.New(1000)``), each
holding the list of distinct block hashes accepted at that height. ``Get`` refreshes a height's
recency; a missing height is ``Add``-ed as an empty list, evicting the least recently used height when
full. A height that already holds more than 5 hashes rejects further blocks, so the 1st…6th distinct
block at a height are accepted and the 7th is rejected; a hash already in the list is ignored.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum

__all__ = ["DEFAULT_HEIGHT_CAPACITY", "MAX_BLOCKS_PER_HEIGHT", "HeightLRU", "SeenOutcome"]

DEFAULT_HEIGHT_CAPACITY = 1000
MAX_BLOCKS_PER_HEIGHT = 5  # "more than 5 already seen" → reject


class SeenOutcome(Enum):
    """What :meth:`HeightLRU.check_and_mark` decided."""

    NEW = "new"  # hash recorded → ACCEPT
    DUPLICATE = "duplicate"  # hash already recorded → IGNORE
    TOO_MANY = "too_many"  # height already holds > 5 hashes → REJECT


class HeightLRU:
    """LRU map of block height → distinct block hashes seen at that height."""

    __slots__ = ("_capacity", "_heights")

    def __init__(self, capacity: int = DEFAULT_HEIGHT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._heights: OrderedDict[int, list[bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._heights)

    def __contains__(self, height: object) -> bool:
        return height in self._heights

    @property
    def capacity(self) -> int:
        return self._capacity

    def peek(self, height: int) -> tuple[bytes, ...]:
        """Hashes recorded at ``height`` without touching recency (for tests and introspection)."""
        return tuple(self._heights.get(height, ()))

    def _get_or_add(self, height: int) -> list[bytes]:
        heights = self._heights
        seen = heights.get(height)
        if seen is not None:
            heights.move_to_end(height)
            return seen
        seen = []
        heights[height] = seen
        if len(heights) > self._capacity:
            heights.popitem(last=False)
        return seen

    def check_and_mark(self, height: int, block_hash: bytes) -> SeenOutcome:
        """Apply op-node steps 20–22 for one block: reject, ignore, or record it."""
        seen = self._get_or_add(height)
        if len(seen) > MAX_BLOCKS_PER_HEIGHT:
            return SeenOutcome.TOO_MANY
        if block_hash in seen:
            return SeenOutcome.DUPLICATE
        seen.append(block_hash)
        return SeenOutcome.NEW
