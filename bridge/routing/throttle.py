"""``throttle``: at most one delivery per key per period, sans-I/O (the caller passes ``now``).

A quiet key's value goes at once and opens a period. ``keep: last`` holds the latest value seen
during the period and releases it at the period's end (``due``), which opens the next period: the
final value of a burst is never lost. ``keep: first`` drops the period's other values. Periods
are queued in the order they open, which is the order they end: the next deadline is the head.
The keys are bounded: the oldest is forgotten first (its held value released), and counted."""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_NONE: Any = object()


class Throttle(Generic[T]):
    def __init__(self, every: float, *, keep_last: bool, max_keys: int) -> None:
        self.every, self.keep_last, self.max_keys = every, keep_last, max_keys
        self.throttled = 0  # values dropped: replaced while held, or not first in their period
        self.evicted = 0
        self._keys: dict[str, list[Any]] = {}  # key -> [period end, held value or _NONE]
        self._ends: deque[tuple[float, str]] = deque()

    def offer(self, key: str, value: T, now: float, out: list[T]) -> None:
        """Take ``value`` for ``key``; what goes out now is appended to ``out``."""
        if self._ends and self._ends[0][0] <= now:
            self.due(now, out)
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= self.max_keys:
                self._evict(out)
            self._open(key, now)
            out.append(value)
        elif not self.keep_last:
            self.throttled += 1
        else:
            if state[1] is not _NONE:
                self.throttled += 1
            state[1] = value

    def deadline(self) -> float | None:
        """When held values are due (``keep: last``); quiet periods end lazily."""
        return self._ends[0][0] if self.keep_last and self._ends else None

    def due(self, now: float, out: list[T]) -> None:
        """Release the values held for periods ended by ``now``; close the quiet ones."""
        ends, keys = self._ends, self._keys
        while ends and ends[0][0] <= now:
            end, key = ends.popleft()
            state = keys.get(key)
            if state is None or state[0] != end:
                continue  # forgotten, or a later period of the key
            if state[1] is _NONE:
                del keys[key]
            else:
                out.append(state[1])
                del keys[key]
                self._open(key, now)

    def flush(self, out: list[T]) -> None:
        """Release every held value now (shutdown)."""
        out.extend(state[1] for state in self._keys.values() if state[1] is not _NONE)
        self._keys.clear()
        self._ends.clear()

    def _open(self, key: str, now: float) -> None:
        self._keys[key] = [now + self.every, _NONE]
        self._ends.append((now + self.every, key))

    def _evict(self, out: list[T]) -> None:
        key = next(iter(self._keys))
        held = self._keys.pop(key)[1]
        if held is not _NONE:
            out.append(held)
        self.evicted += 1
