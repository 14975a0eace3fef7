"""Home Assistant discovery in a running bridge: an ``Announcer`` per mqtt sink with
``homeassistant``, its health task, its ``status_topic`` listener, and on a reload its sources
followed (a sink rebuilt gets a new announcer, which announces everything again, and the old
one empties what only it kept, through the old sink, still connected to the broker); with
``controls``, its control topics, done through the supervisor's ``act``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping

from bridge import __version__
from bridge.config.model import Config
from bridge.ha.announcer import Announcer
from bridge.ha.controls import Act, Controls
from bridge.ha.ids import Bridge, configuration_url
from bridge.sinks.base import Sink
from bridge.sinks.settings import MqttSinkConfig, SinkConfig
from bridge.sinks.way_back import Listener
from bridge.stats.snapshot import Snapshot


class Links:
    """The announcers of one supervisor, by sink name."""

    def __init__(self, sinks: Mapping[str, Sink], act: Act,
                 snapshot: Callable[[], Awaitable[Snapshot]], started: float) -> None:
        self._sinks, self._act, self._snapshot, self._started = sinks, act, snapshot, started
        self._links: dict[str, tuple[MqttSinkConfig, Announcer, asyncio.Task[None]]] = {}
        self._controls: dict[str, Controls] = {}  # by sink, with controls: true

    def update(self, config: Config, tg: asyncio.TaskGroup) -> None:
        """Announcers for ``config``'s mqtt sinks with ``homeassistant``, following its sources;
        those of sinks gone, changed or without it now are stopped, and what they kept retained
        and no successor on the same broker keeps is emptied (no ghost entities)."""
        wanted = {name: cfg for name, cfg in config.sinks.items()
                  if isinstance(cfg, MqttSinkConfig) and cfg.homeassistant is not None}
        dropped: list[tuple[str, MqttSinkConfig, Announcer]] = []
        for name, (cfg, announcer, task) in list(self._links.items()):
            if wanted.get(name) != cfg:
                task.cancel()
                del self._links[name]
                self._controls.pop(name, None)
                dropped.append((name, cfg, announcer))
        sources = {src.name: {route.sink for route in src.routes} for src in config.sources}
        for name, cfg in wanted.items():
            if name not in self._links:
                announcer = self._announcer(name, cfg, config)
                task = tg.create_task(announcer.run(), name=f"homeassistant:{name}")
                self._links[name] = (cfg, announcer, task)
                if cfg.homeassistant and cfg.homeassistant.controls:
                    self._controls[name] = self._control(name, cfg.topic_prefix)
            self._links[name][1].follow(sources)
        for name, cfg, announcer in dropped:
            self._retire(announcer, cfg, config.sinks.get(name), self._sinks.get(name))

    def _retire(self, announcer: Announcer, cfg: MqttSinkConfig, now: SinkConfig | None,
                successor: Sink | None) -> None:
        """Empty what ``announcer`` kept retained and no announcer on its broker keeps. Through
        the sink that replaced its own when on the same broker (the old one is closing, it may
        have left the broker already), published when it connects; else through its own,
        still connected."""
        broker = (cfg.host, cfg.port)
        keep = {topic for new, a, _ in self._links.values() if (new.host, new.port) == broker
                for topic in a.retained()}
        same = isinstance(now, MqttSinkConfig) and (now.host, now.port) == broker
        announcer.retire(keep, successor.retain if same and successor is not None else None)

    def listeners(self) -> dict[str, list[tuple[str, Listener]]]:
        """Each announcing sink's ``status_topic`` listener, and its control topics'."""
        wanted: dict[str, list[tuple[str, Listener]]] = {
            name: [(a.status_topic, a.heard)] for name, (_, a, _) in self._links.items()}
        for name, controls in self._controls.items():
            wanted[name].append((controls.topic, controls.heard))
        return wanted

    def stop(self) -> None:
        for _, _, task in self._links.values():
            task.cancel()
        self._links.clear()
        self._controls.clear()

    def _announcer(self, name: str, cfg: MqttSinkConfig, config: Config) -> Announcer:
        ha, availability = cfg.homeassistant, cfg.availability
        assert ha is not None and availability is not None  # the config builder sets both
        sink = self._sinks.get(name)  # the one built for ``cfg``: on the broker it announces to

        def retain(topic: str, payload: str) -> None:
            if sink is not None:
                sink.retain(topic, payload)

        link = configuration_url(config.metrics_listen, socket.gethostname())
        bridge = Bridge(cfg.topic_prefix, ha.discovery_prefix, availability, ha.interval,
                        __version__, config.path, ha.controls, link)
        return Announcer(bridge, ha.status_topic, retain, self._snapshot, self._started)

    def _control(self, name: str, prefix: str) -> Controls:
        def respond(topic: str, payload: str) -> None:
            if (sink := self._sinks.get(name)) is not None:
                sink.respond(topic, payload, {})

        return Controls(prefix, self._act, respond, self._snapshot)
