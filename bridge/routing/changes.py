"""``on_change``: the last value delivered per key, and whether a new value is a change.

Numbers, and strings that parse as finite numbers (Home Assistant's ``"21.5"``), change when they
differ by more than the deadband; anything else when it is different (JSON equality). A missing
value is a value of its own (``ABSENT``). The keys are bounded: the one delivered longest ago is
forgotten first, and counted."""

from __future__ import annotations

import math
from collections import OrderedDict
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
    kind = type(new)
    if kind is type(old) and (kind is int or kind is float):  # the usual cases, first
        return bool(abs(new - old) > deadband)
    if kind is str and old == new:  # equal text: unchanged, as a number or not
        return False
    a, b = number(old), number(new)
    if a is not None and b is not None:
        return abs(b - a) > deadband
    return old is not new and not same(old, new)


class Changes:
    """What an ``on_change`` route delivered last, per key."""

    def __init__(self, deadband: float, max_keys: int) -> None:
        self.deadband, self.max_keys = deadband, max_keys
        self.evicted = 0
        self._last: OrderedDict[str, Any] = OrderedDict()  # the latest delivered last

    def changed(self, key: str, value: Any) -> bool:
        """Whether ``value`` goes out for ``key``; if it does, it is remembered as the last."""
        last = self._last.get(key, _NOTHING)
        if last is _NOTHING:
            if len(self._last) >= self.max_keys:
                self._last.popitem(last=False)
                self.evicted += 1
        elif not differs(last, value, self.deadband):
            return False
        else:
            self._last.move_to_end(key)
        self._last[key] = value
        return True

    def __len__(self) -> int:
        return len(self._last)
