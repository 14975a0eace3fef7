"""``on_change``: the last value delivered per key, and whether a new value is a change.

Numbers, and strings that parse as finite numbers (Home Assistant's ``"21.5"``), change when they
differ by more than the deadband; anything else when it is different (JSON equality). A missing
value is a value of its own (``ABSENT``). The keys are bounded: the one delivered longest ago is
forgotten first, and counted."""

from __future__ import annotations

import math
from typing import Any

from bridge.routing.equality import same

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
_NOTHING: Any = object()


def number(value: Any) -> float | None:
    """``value`` as a finite number, or None: numbers and numeric strings, never booleans."""
    kind = type(value)
    if kind is int or kind is float:
        return float(value) if math.isfinite(value) else None
    if kind is str:
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def differs(old: Any, new: Any, deadband: float) -> bool:
    a, b = number(old), number(new)
    if a is not None and b is not None:
        return abs(b - a) > deadband
    return old is not new and not same(old, new)


class Changes:
    """What an ``on_change`` route delivered last, per key."""

    def __init__(self, deadband: float, max_keys: int) -> None:
        self.deadband, self.max_keys = deadband, max_keys
        self.evicted = 0
        self._last: dict[str, Any] = {}

    def changed(self, key: str, value: Any) -> bool:
        """Whether ``value`` goes out for ``key``; if it does, it is remembered as the last."""
        last = self._last.pop(key, _NOTHING)  # popped and put back: the newest is last
        if last is not _NOTHING and not differs(last, value, self.deadband):
            self._last[key] = last
            return False
        if last is _NOTHING and len(self._last) >= self.max_keys:
            del self._last[next(iter(self._last))]
            self.evicted += 1
        self._last[key] = value
        return True

    def __len__(self) -> int:
        return len(self._last)
