"""The bounded queue in front of a sink, with an explicit overflow policy; no asyncio here."""

from __future__ import annotations

from collections import Counter, deque
from typing import Generic, TypeVar

from bridge.sinks.base import Overflow

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """A FIFO that never holds more than ``limit`` items; drops are counted by reason."""

    __slots__ = ("_items", "dropped", "limit", "overflow")

    def __init__(self, limit: int, overflow: Overflow = "drop_oldest") -> None:
        self._items: deque[T] = deque()
        self.limit = limit
        self.overflow = overflow
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.limit

    def put(self, item: T) -> bool:
        """Add ``item``; False when the policy dropped one (the oldest or this one)."""
        if len(self._items) < self.limit:
            self._items.append(item)
            return True
        if self.overflow == "drop_oldest":
            self._items.popleft()
            self._items.append(item)
            self.dropped["queue_full_oldest"] += 1
        else:  # drop_newest, or block when a producer did not wait for room
            self.dropped["queue_full_newest"] += 1
        return False

    def push_front(self, items: list[T]) -> None:
        """Put back items that were taken but not delivered, keeping their order first."""
        self._items.extendleft(reversed(items))

    def take(self, most: int) -> list[T]:
        """Remove and return up to ``most`` items from the front."""
        n = min(most, len(self._items))
        return [self._items.popleft() for _ in range(n)]
