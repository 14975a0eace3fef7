"""What an MQTT sink tells about itself, retained: its availability, each source's state (one of
seven) and each source's plain availability (``online`` while connected, else ``offline``).

The broker keeps both as retained messages, but a sink that reconnects cleanly starts a new
session, so the sink remembers the last state of every source and publishes all of it again
after each connect. A source a reload removed is forgotten and both its topics emptied (an
empty retained message deletes the retained one): no ghost stays ``connected``. Pure: it says
what to publish; the sink publishes it."""

from __future__ import annotations

from bridge.sinks import mqtt_topics as mt
from bridge.sinks.presence_settings import Availability

Retained = tuple[str, str]  # (topic, payload), published retained


class Presence:
    """Availability (online, offline) and the last state of each source, as retained messages."""

    def __init__(self, availability: Availability | None, prefix: str) -> None:
        self._availability, self._prefix = availability, prefix
        self._states: dict[str, str] = {}
        self._kept: dict[str, str] = {}  # other retained messages (Home Assistant discovery)

    def state(self, source: str, state: str) -> list[Retained]:
        """Remember ``state`` for every later connect; what to publish now."""
        self._states[source] = state
        told = self._told(source, state)
        for topic, _ in told:  # a source added again: no longer emptied at each connect
            self._kept.pop(topic, None)
        return told

    def gone(self, source: str) -> list[Retained]:
        """A reload removed ``source``: forgotten, its state and availability emptied now and
        after every connect."""
        self._states.pop(source, None)
        return [self.keep(topic, "") for topic, _ in self._told(source, "stopped")]

    def keep(self, topic: str, payload: str) -> Retained:
        """Remember a retained message for every later connect; what to publish now. An empty
        one (it deletes the retained message) is kept too, until the topic is given a value:
        a connect after an outage says it again, so a deletion the broker missed (it was
        down, or restarted from an older save) still happens."""
        self._kept[topic] = payload
        return topic, payload

    def online(self) -> list[Retained]:
        """On each connect: online (with availability), every source's last state, then every
        message kept."""
        av = self._availability
        told = [(av.topic, av.online)] if av else []
        for source, state in self._states.items():
            told += self._told(source, state)
        return told + list(self._kept.items())

    def topics(self) -> set[str]:
        """Its availability topic and each known source's state and availability topics."""
        av = self._availability
        told = {topic for source in self._states for topic, _ in self._told(source, "")}
        return told | {av.topic} if av else told

    def _told(self, source: str, state: str) -> list[Retained]:
        """A source's state, and its availability: online only while connected."""
        up = "online" if state == "connected" else "offline"
        return [(mt.source_topic(self._prefix, source, "state"), state),
                (mt.source_topic(self._prefix, source, "availability"), up)]

    def offline(self) -> list[Retained]:
        """On a clean close, before DISCONNECT (the will says the same on a lost connection)."""
        av = self._availability
        return [(av.topic, av.offline)] if av else []
