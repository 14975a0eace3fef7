"""The bounded queue in front of a sink, with an explicit overflow policy; no asyncio here."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

from bridge.sinks.settings import Overflow

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """A FIFO that never holds more than ``limit`` items, nor (with ``max_bytes`` and ``size``,
    an item's size in bytes) more than ``max_bytes`` bytes; drops are counted by reason."""

    __slots__ = ("_items", "_size", "bytes", "dropped", "limit", "max_bytes", "overflow")

    def __init__(self, limit: int, overflow: Overflow = "drop_oldest", max_bytes: int = 0,
                 size: Callable[[T], int] | None = None) -> None:
        self._items: deque[T] = deque()
        self.limit = limit
        self.overflow = overflow
        self.dropped: Counter[str] = Counter()
        self.max_bytes, self.bytes = max_bytes, 0  # bytes: held, counted only under max_bytes
        self._size = size if max_bytes > 0 else None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.limit or (self._size is not None and
                                                  self.bytes >= self.max_bytes)

    def put(self, item: T) -> bool:
        """Add ``item``; False when the policy dropped one (the oldest or this one)."""
        if self._size is not None:
            return self._put_sized(item, self._size(item), self._size)
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

    def _put_sized(self, item: T, n: int, size: Callable[[T], int]) -> bool:
        items = self._items
        fits = len(items) < self.limit and self.bytes + n <= self.max_bytes
        if not fits and (self.overflow != "drop_oldest" or n > self.max_bytes):
            self.dropped["queue_full_newest"] += 1  # larger than the whole bound: never fits
            return False
        while items and (len(items) >= self.limit or self.bytes + n > self.max_bytes):
            self.bytes -= size(items.popleft())
            self.dropped["queue_full_oldest"] += 1
        items.append(item)
        self.bytes += n
        return fits

    def push_front(self, items: list[T]) -> None:
        """Put back items that were taken but not delivered, keeping their order first."""
        self._items.extendleft(reversed(items))
        if self._size is not None:
            self.bytes += sum(map(self._size, items))

    def take(self, most: int) -> list[T]:
        """Remove and return up to ``most`` items from the front."""
        n = min(most, len(self._items))
        taken = [self._items.popleft() for _ in range(n)]
        if self._size is not None:
            self.bytes -= sum(map(self._size, taken))
        return taken
