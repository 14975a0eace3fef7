"""Home Assistant discovery in a running bridge: an ``Announcer`` per mqtt sink with
``homeassistant``, its health task, its ``status_topic`` listener, and on a reload its sources
followed (a sink rebuilt gets a new announcer, which announces everything again). What to keep
retained goes to the supervisor's ``retain(sink name, topic, payload)``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bridge import __version__
from bridge.config.model import Config
from bridge.ha.announcer import Announcer
from bridge.ha.discovery import Bridge
from bridge.sinks.settings import MqttSinkConfig
from bridge.sinks.way_back import Listener
from bridge.stats.snapshot import Snapshot


class Links:
    """The announcers of one supervisor, by sink name."""

    def __init__(self, retain: Callable[[str, str, str], None],
                 snapshot: Callable[[], Awaitable[Snapshot]], started: float) -> None:
        self._retain, self._snapshot, self._started = retain, snapshot, started
        self._links: dict[str, tuple[MqttSinkConfig, Announcer, asyncio.Task[None]]] = {}

    def update(self, config: Config, tg: asyncio.TaskGroup) -> None:
        """Announcers for ``config``'s mqtt sinks with ``homeassistant``, following its sources;
        those of sinks gone, changed or without it now are stopped."""
        wanted = {name: cfg for name, cfg in config.sinks.items()
                  if isinstance(cfg, MqttSinkConfig) and cfg.homeassistant is not None}
        for name, (cfg, _, task) in list(self._links.items()):
            if wanted.get(name) != cfg:
                task.cancel()
                del self._links[name]
        sources = {src.name: {route.sink for route in src.routes} for src in config.sources}
        for name, cfg in wanted.items():
            if name not in self._links:
                announcer = self._announcer(name, cfg, config.path)
                task = tg.create_task(announcer.run(), name=f"homeassistant:{name}")
                self._links[name] = (cfg, announcer, task)
            self._links[name][1].follow(sources)

    def listeners(self) -> dict[str, list[tuple[str, Listener]]]:
        """Each announcing sink's ``status_topic`` listener."""
        return {name: [(a.status_topic, a.heard)] for name, (_, a, _) in self._links.items()}

    def stop(self) -> None:
        for _, _, task in self._links.values():
            task.cancel()
        self._links.clear()

    def _announcer(self, name: str, cfg: MqttSinkConfig, path: str) -> Announcer:
        ha, availability = cfg.homeassistant, cfg.availability
        assert ha is not None and availability is not None  # the config builder sets both

        def retain(topic: str, payload: str) -> None:
            self._retain(name, topic, payload)

        bridge = Bridge(cfg.topic_prefix, ha.discovery_prefix, availability, ha.interval,
                        __version__, path)
        return Announcer(bridge, ha.status_topic, retain, self._snapshot, self._started)
