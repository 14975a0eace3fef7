"""MQTT 5 message expiry as it is published: what is left of the interval after the wait.

The configured interval less the time since the bridge received the message (its wait in the
queue or the outbox, and in a ``throttle`` or ``batch`` step), rounded up to whole seconds as
MQTT carries it; 0 once it passed: the sink does not publish the message and counts it as
``expired``. Each property list starts the same way for a given value: the expiry, then the JSON
content type or not; those starts are encoded once per value (``heads``), bounded."""

from __future__ import annotations

import math
from typing import Final

from bridge.messages import Message
from bridge.sinks import mqtt_property_list as plist

JSON: Final = plist.prop("content_type", "application/json")
Heads = tuple[tuple[bytes, bytes], tuple[bytes, bytes]]
KNOWN = 4096  # expiry values kept encoded


class Expiry:
    """``left(message, now)``, and the ``heads`` of property lists for that many seconds."""

    def __init__(self, interval: float | None) -> None:
        self.interval = max(1, round(interval)) if interval else 0  # whole seconds; 0: none
        self._heads: dict[int, Heads] = {}
        self.none = self.heads(0)  # no expiry property

    def left(self, m: Message, now: float) -> int:
        """Whole seconds of expiry ``m`` has left at ``now`` (wall clock), at most the interval;
        0 once it passed. Only with an interval configured."""
        left = self.interval - max(0.0, now - m.received_at)
        return math.ceil(left) if left > 0 else 0

    def heads(self, left: int) -> Heads:
        """The start of a property list with ``left`` seconds of expiry (none for 0), without
        and with the JSON content type; then those two as whole lists (no user properties)."""
        if (found := self._heads.get(left)) is None:
            if len(self._heads) >= KNOWN:
                self._heads = {0: self.none}
            head = plist.prop("message_expiry_interval", left) if left else b""
            heads = (head, head + JSON)
            found = self._heads[left] = (heads, (plist.property_list([heads[0]]),
                                                 plist.property_list([heads[1]])))
        return found
