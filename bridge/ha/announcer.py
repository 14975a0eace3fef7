"""One mqtt sink's Home Assistant discovery and health: the configs of the bridge and of the
config's sources (again when Home Assistant says ``online``, emptied for a source a reload
removed), and the health values every ``interval``.

It says what to keep retained through ``retain`` (the sink publishes it now when connected and
again after every connect) and reads the bridge through ``snapshot``; the supervisor wires it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from bridge.encoding import dumps
from bridge.ha.discovery import bridge_configs, removal, source_configs
from bridge.ha.health import Health
from bridge.ha.ids import Bridge
from bridge.sinks.mqtt_incoming import Incoming
from bridge.stats.snapshot import Snapshot

log = logging.getLogger("bridge.ha")
Retain = Callable[[str, str], None]  # (topic, payload): kept retained; "" deletes


class Announcer:
    """Discovery and health of one bridge on one broker."""

    def __init__(self, bridge: Bridge, status_topic: str, retain: Retain,
                 snapshot: Callable[[], Awaitable[Snapshot]], started: float) -> None:
        self.bridge, self.status_topic = bridge, status_topic
        self._retain, self._snapshot = retain, snapshot
        self._health = Health(started)
        self._sources: dict[str, set[str]] = {}  # source -> the sinks its routes lead to
        self._announced = False

    def follow(self, sources: Mapping[str, set[str]]) -> None:
        """The config's sources now (name -> sinks of its routes): new ones announced, removed
        ones' entities and health removed."""
        for gone in sorted(self._sources.keys() - sources.keys()):
            self._send([*removal(self.bridge, gone), (self.bridge.metrics_topic(gone), "")])
            log.info("homeassistant: source %s removed from discovery", gone)
        added = sorted(sources.keys() - self._sources.keys())
        self._sources = {name: set(sinks) for name, sinks in sources.items()}
        if not self._announced:
            self.announce()
            return
        for name in added:
            self._send(source_configs(self.bridge, name))

    def announce(self) -> None:
        """Every config: the bridge's, then each source's."""
        self._announced = True
        self._send(bridge_configs(self.bridge))
        for name in sorted(self._sources):
            self._send(source_configs(self.bridge, name))

    def retained(self) -> set[str]:
        """Every topic it keeps retained: the configs, the health values."""
        configs = bridge_configs(self.bridge) + [
            c for name in self._sources for c in source_configs(self.bridge, name)]
        health = [self.bridge.metrics_topic(name) for name in (None, *self._sources)]
        return {topic for topic, _ in configs} | set(health)

    def retire(self, keep: set[str], via: Retain | None = None) -> None:
        """This announcer is replaced (another ``discovery_prefix`` or ``topic_prefix``, no
        ``homeassistant`` any more, its sink gone): what it kept retained is emptied (through
        ``via`` if given), but for ``keep``, the topics its successors on the broker publish."""
        gone = sorted(self.retained() - keep)
        for topic in gone:
            (via or self._retain)(topic, "")
        if gone:
            log.info("homeassistant: %d retained topics under %s removed", len(gone),
                     self.bridge.discovery_prefix)

    def heard(self, msg: Incoming) -> None:
        """On ``status_topic``: Home Assistant (re)started and wants the configs again."""
        if msg.payload.strip() == b"online":
            log.info("homeassistant: %s is online; discovery sent again", self.status_topic)
            self.announce()

    async def run(self) -> None:
        """Publish the health values now and every ``interval``."""
        while True:
            await self.publish_health()
            await asyncio.sleep(self.bridge.interval)

    async def publish_health(self) -> None:
        snap = await self._snapshot()
        bridge, sources = self._health.values(snap, self._sources, self.bridge.config_path)
        self._retain(self.bridge.metrics_topic(), dumps(bridge))
        for name, values in sources.items():
            if name in self._sources:
                self._retain(self.bridge.metrics_topic(name), dumps(values))

    def _send(self, retained: list[tuple[str, str]]) -> None:
        for topic, payload in retained:
            self._retain(topic, payload)
