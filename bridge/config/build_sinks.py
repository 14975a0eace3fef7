"""Builds each typed sink config from schema-valid YAML: templates compiled, sizes and
durations as numbers. The mqtt sink, which has the most settings, is built by build_mqtt."""

from __future__ import annotations

from typing import Any

from bridge.config.build_mqtt import build_mqtt
from bridge.config.collect import Collector, queue
from bridge.config.keypaths import KeyPath
from bridge.config.sizes import parse_size
from bridge.sinks.settings import (
    FileSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebSocketSinkConfig,
)

_FILE_TIMING = {"flush_interval": "flush_interval"}
_FILE_OPTIONS = ("format", "fsync", "rotate", "keep", "compress")
_WEBSOCKET_OPTIONS = ("path", "format", "client_queue", "compression")


def build_sink(name: str, raw: dict[str, Any], c: Collector, hostname: str) -> SinkConfig:
    """One sink; ``hostname`` fills ``{hostname}`` in an MQTT client id."""
    path: KeyPath = ("sinks", name)
    if raw["type"] == "stdout":
        return StdoutSinkConfig(name, raw.get("format", "raw"), queue(raw.get("queue")))
    if raw["type"] == "file":
        return _file(name, raw, path, c)
    if raw["type"] == "websocket":
        return _websocket(name, raw, path, c)
    return build_mqtt(name, raw, c, hostname)


def _file(name: str, raw: dict[str, Any], path: KeyPath, c: Collector) -> FileSinkConfig:
    options: dict[str, Any] = {k: raw[k] for k in _FILE_OPTIONS if k in raw}
    if "max_bytes" in raw:
        options["max_bytes"] = parse_size(raw["max_bytes"])
    options |= c.seconds(raw, path, _FILE_TIMING)
    template = c.template(raw["path"], (*path, "path"))
    return FileSinkConfig(name, template, queue=queue(raw.get("queue")), **options)


def _websocket(
    name: str, raw: dict[str, Any], path: KeyPath, c: Collector
) -> WebSocketSinkConfig:
    """The websocket sink; its token is a secret the loader already collected."""
    host, _, port = raw.get("listen", "127.0.0.1:8766").rpartition(":")
    if not 0 < int(port) < 65536:
        c.add((*path, "listen"), "the port must be a number from 1 to 65535")
    options = {k: raw[k] for k in _WEBSOCKET_OPTIONS if k in raw}
    return WebSocketSinkConfig(
        name,
        raw["token"],
        host.removeprefix("[").removesuffix("]"),
        int(port),
        allowed_origins=tuple(raw.get("allowed_origins", ())),
        queue=queue(raw.get("queue")),
        **options,
    )
