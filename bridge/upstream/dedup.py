"""The dedup window: which of the last N message keys were already seen, in O(1) per message."""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any


def hashable(value: Any) -> Hashable:
    """A rendered key as a set member: strings and integers as they are, anything else as JSON.

    (JSON text of a container may equal a string key with the same text: harmless here.)"""
    if type(value) is str or type(value) is int:
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class DedupWindow:
    """The last ``size`` distinct keys: a set answers "seen?", a ring remembers which to forget.

    A repeat does not refresh its key: replays come soon after the original, and the
    window's order stays the arrival order of new keys, so forgetting is one ring step."""

    __slots__ = ("_next", "_ring", "_seen", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a dedup window holds at least one key")
        self.size = size
        self._ring: list[Hashable] = []  # grows to ``size``, then is overwritten in a circle
        self._seen: set[Hashable] = set()
        self._next = 0  # the ring slot to overwrite next, once full

    def seen(self, key: Hashable) -> bool:
        """True if ``key`` is among the last ``size`` keys; otherwise remember it."""
        if key in self._seen:
            return True
        ring = self._ring
        if len(ring) < self.size:
            ring.append(key)
        else:
            self._seen.discard(ring[self._next])
            ring[self._next] = key
            self._next = (self._next + 1) % self.size
        self._seen.add(key)
        return False

    def __len__(self) -> int:
        return len(self._seen)
