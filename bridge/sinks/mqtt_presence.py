"""What an MQTT sink tells about itself, retained: its availability and each source's state.

The broker keeps both as retained messages, but a sink that reconnects cleanly starts a new
session, so the sink remembers the last state of every source and publishes all of it again
after each connect. Pure: it says what to publish; the sink publishes it."""

from __future__ import annotations

from bridge.sinks import mqtt_topics as mt
from bridge.sinks.settings import Availability

Retained = tuple[str, str]  # (topic, payload), published retained


class Presence:
    """Availability (online, offline) and the last state of each source, as retained messages."""

    def __init__(self, availability: Availability | None, prefix: str) -> None:
        self._availability, self._prefix = availability, prefix
        self._states: dict[str, str] = {}

    def state(self, source: str, state: str) -> Retained:
        """Remember ``state`` for every later connect; what to publish now."""
        self._states[source] = state
        return mt.source_topic(self._prefix, source, "state"), state

    def online(self) -> list[Retained]:
        """On each connect: online (with availability), then every source's last state."""
        av = self._availability
        told = [(av.topic, av.online)] if av else []
        told += [(mt.source_topic(self._prefix, s, "state"), st) for s, st in self._states.items()]
        return told

    def offline(self) -> list[Retained]:
        """On a clean close, before DISCONNECT (the will says the same on a lost connection)."""
        av = self._availability
        return [(av.topic, av.offline)] if av else []
