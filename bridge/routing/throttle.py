"""``throttle``: at most one delivery per key per period, sans-I/O (the caller passes ``now``).

A quiet key's value goes at once and opens a period. ``keep: last`` holds the latest value seen
during the period and releases it at the period's end (``due``), which opens the next period: the
final value of a burst is never lost. ``keep: first`` drops the period's other values. Periods
are queued in the order they open, which is the order they end: the next deadline is the head.
The keys are bounded: the oldest is forgotten first (its held value released), and counted."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Throttle(Generic[T]):
    def __init__(self, every: float, *, keep_last: bool, max_keys: int) -> None:
        self.every, self.keep_last, self.max_keys = every, keep_last, max_keys
        self.throttled = 0  # values dropped: replaced while held, or not first in their period
        self.evicted = 0
        self.armed = False  # a deadline appeared where there was none (keep: last)
        # No container per key (the garbage collector would walk them all): a period's end
        # and the value held are kept in two maps, the queue of periods in two deques.
        self._end: dict[str, float] = {}
        self._held: dict[str, T] = {}
        self._ends: deque[float] = deque()
        self._keys: deque[str] = deque()

    def offer(self, key: str, value: T, now: float, out: list[T]) -> None:
        """Take ``value`` for ``key``; what goes out now is appended to ``out``."""
        if self._ends and self._ends[0] <= now:
            self.due(now, out)
        if key not in self._end:
            if len(self._end) >= self.max_keys:
                self._evict(out)
            self._open(key, now)
            out.append(value)
        elif not self.keep_last:
            self.throttled += 1
        else:
            if key in self._held:
                self.throttled += 1
            self._held[key] = value

    def deadline(self) -> float | None:
        """When held values are due (``keep: last``); quiet periods end lazily."""
        return self._ends[0] if self.keep_last and self._ends else None

    def due(self, now: float, out: list[T]) -> None:
        """Release the values held for periods ended by ``now``; close the quiet ones."""
        ends, keys, end_of, held = self._ends, self._keys, self._end, self._held
        while ends and ends[0] <= now:
            end, key = ends.popleft(), keys.popleft()
            if end_of.get(key) != end:
                continue  # forgotten, or a later period of the key
            del end_of[key]
            if key in held:
                out.append(held.pop(key))
                self._open(key, now)

    def flush(self, out: list[T]) -> None:
        """Release every held value now (shutdown)."""
        out.extend(self._held.values())
        for table in (self._end, self._held, self._ends, self._keys):
            table.clear()

    def _open(self, key: str, now: float) -> None:
        if not self._ends and self.keep_last:
            self.armed = True
        self._end[key] = now + self.every
        self._ends.append(now + self.every)
        self._keys.append(key)

    def _evict(self, out: list[T]) -> None:
        """Forget the key whose period opened first (the queue's oldest live entry)."""
        while self._ends:
            end, key = self._ends.popleft(), self._keys.popleft()
            if self._end.get(key) == end:
                del self._end[key]
                if key in self._held:
                    out.append(self._held.pop(key))
                self.evicted += 1
                return
