"""The MQTT sink's way back: (topic filter, handler) pairs, and each received message to the
handlers whose filter matches it.

The sink subscribes to the filters again after every reconnect (a clean start forgets them), so
it keeps the list, and on a change subscribes only to the filters that are new. Pure: the sink
subscribes; this says to what."""

from __future__ import annotations

from bridge.routing.topics import topic_matches
from bridge.sinks.mqtt_incoming import Incoming
from bridge.sinks.way_back import Listener


class Listeners:
    """``listeners(msg)`` hands ``msg`` to every handler whose topic filter matches."""

    def __init__(self) -> None:
        self._pairs: list[tuple[str, Listener]] = []

    @property
    def filters(self) -> list[str]:
        """Every topic filter, once each, sorted: what to subscribe to on connect."""
        return sorted({f for f, _ in self._pairs})

    def replace(self, listeners: list[tuple[str, Listener]]) -> list[str]:
        """Take ``listeners`` instead of the previous ones; the filters not subscribed yet."""
        known = {f for f, _ in self._pairs}
        self._pairs = list(listeners)
        return sorted({f for f, _ in listeners} - known)

    def __call__(self, msg: Incoming) -> None:
        for topic_filter, handle in self._pairs:
            if topic_matches(topic_filter, msg.topic):
                handle(msg)
