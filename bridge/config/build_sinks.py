"""Builds each typed sink config from schema-valid YAML: MQTT URLs parsed, templates compiled."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.config.collect import Collector, parse_size, queue
from bridge.config.explain import KeyPath
from bridge.routing.template import Context
from bridge.sinks.base import (
    Availability,
    FileSinkConfig,
    MqttSinkConfig,
    QueueConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebSocketSinkConfig,
)

DEFAULT_CLIENT_ID = "ws-bridge-{hostname}"
_FILE_TIMING = {"flush_interval": "flush_interval"}
_FILE_OPTIONS = ("format", "fsync", "rotate", "keep", "compress")
_WEBSOCKET_OPTIONS = ("path", "format", "client_queue", "compression")


def build_sink(name: str, raw: dict[str, Any], c: Collector, hostname: str) -> SinkConfig:
    """One sink; ``hostname`` fills ``{hostname}`` in an MQTT client id."""
    path: KeyPath = ("sinks", name)
    if raw["type"] == "stdout":
        return StdoutSinkConfig(name, raw.get("format", "raw"), queue(raw.get("queue")))
    if raw["type"] == "file":
        options: dict[str, Any] = {k: raw[k] for k in _FILE_OPTIONS if k in raw}
        if "max_bytes" in raw:
            options["max_bytes"] = parse_size(raw["max_bytes"])
        options |= c.seconds(raw, path, _FILE_TIMING)
        template = c.template(raw["path"], (*path, "path"))
        return FileSinkConfig(name, template, queue=queue(raw.get("queue")), **options)
    if raw["type"] == "websocket":  # the token is a secret the loader already collected
        host, _, port = raw.get("listen", "127.0.0.1:8766").rpartition(":")
        if not 0 < int(port) < 65536:
            c.add((*path, "listen"), "the port must be a number from 1 to 65535")
        return WebSocketSinkConfig(
            name, raw["token"], host.removeprefix("[").removesuffix("]"), int(port),
            allowed_origins=tuple(raw.get("allowed_origins", ())), queue=queue(raw.get("queue")),
            **{k: raw[k] for k in _WEBSOCKET_OPTIONS if k in raw})
    return _mqtt(name, raw, path, c, hostname)


def _mqtt(name: str, raw: dict[str, Any], path: KeyPath, c: Collector, hostname: str) -> SinkConfig:
    url = urlsplit(raw["url"])
    secure = url.scheme == "mqtts"
    try:
        port = (8883 if secure else 1883) if url.port is None else url.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        c.add((*path, "url"), "the port must be a number from 1 to 65535")
    if not url.hostname:
        c.add((*path, "url"), "the url has no host name")
    if raw.get("tls") and not secure:
        c.add((*path, "tls"), "tls is set but the url is mqtt://; use mqtts:// for TLS")
    client_id = c.template(raw.get("client_id", DEFAULT_CLIENT_ID), (*path, "client_id"))
    if bad_id := client_id.roots - {"hostname"}:
        c.add((*path, "client_id"), "a client id may only use the placeholder {hostname}")
    props = raw.get("properties", {})
    options: dict[str, Any] = {
        k: raw[k] for k in ("username", "password", "qos", "retain", "topic_prefix", "connections")
        if k in raw
    }
    options.setdefault("username", unquote(url.username) if url.username else None)
    options.setdefault("password", unquote(url.password) if url.password else None)
    options |= raw.get("tls", {})
    options |= c.seconds(raw, path, {"keepalive": "keepalive"})
    options |= c.seconds(props, (*path, "properties"), {"message_expiry": "message_expiry"})
    if "availability" in raw:
        options["availability"] = Availability(**raw["availability"])
    if "reconnect" in raw:
        options["reconnect"] = c.backoff(raw["reconnect"], (*path, "reconnect"))
    outbox = dict(raw.get("queue") or {})  # the durable outbox's size and age, as numbers
    outbox |= {"max_bytes": parse_size(outbox["max_bytes"])} if "max_bytes" in outbox else {}
    outbox |= c.seconds(outbox, (*path, "queue"), {"max_age": "max_age"})
    return MqttSinkConfig(
        name=name,
        host=url.hostname or "",
        port=port,
        tls_enabled=secure,
        client_id=client_id.render_str(Context(hostname=hostname)) if not bad_id else "",
        protocol=4 if str(raw.get("protocol", 5)) == "3.1.1" else 5,
        user_properties={
            key: c.template(value, (*path, "properties", "user", key))
            for key, value in props.get("user", {}).items()
        },
        queue=queue(outbox, QueueConfig(max_messages=100_000)),
        **options,
    )

