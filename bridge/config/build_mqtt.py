"""Builds an mqtt sink's typed config: its URL taken apart (host, port, TLS, credentials), its
client id rendered, its MQTT 5 properties compiled and its queue or durable outbox sized. The
MQTT sink has more settings than every other sink type together, so it is built on its own."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from bridge.config.collect import Collector, queue
from bridge.config.keypaths import KeyPath
from bridge.config.sizes import parse_size
from bridge.config.specs import TLSConfig
from bridge.routing.context import Context
from bridge.sinks.presence_settings import Availability, HomeAssistant
from bridge.sinks.settings import MqttSinkConfig, QueueConfig

DEFAULT_CLIENT_ID = "ws-bridge-{hostname}"
_OPTIONS = ("username", "password", "qos", "retain", "topic_prefix", "connections")


def build_mqtt(name: str, raw: dict[str, Any], c: Collector, hostname: str) -> MqttSinkConfig:
    """One mqtt sink; ``hostname`` fills ``{hostname}`` in its client id."""
    path: KeyPath = ("sinks", name)
    url = urlsplit(raw["url"])
    secure = url.scheme == "mqtts"
    port = _port(url, secure)
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
    options: dict[str, Any] = {k: raw[k] for k in _OPTIONS if k in raw}
    options.setdefault("username", unquote(url.username) if url.username else None)
    options.setdefault("password", unquote(url.password) if url.password else None)
    options |= c.seconds(raw, path, {"keepalive": "keepalive", "linger": "linger"})
    options |= c.seconds(props, (*path, "properties"), {"message_expiry": "message_expiry"})
    if "availability" in raw:
        options["availability"] = Availability(**raw["availability"])
    if "homeassistant" in raw:
        options |= _homeassistant(raw, (*path, "homeassistant"), c)
    if "reconnect" in raw:
        options["reconnect"] = c.backoff(raw["reconnect"], (*path, "reconnect"))
    return MqttSinkConfig(
        name=name,
        host=url.hostname or "",
        port=port,
        tls=TLSConfig(**raw.get("tls", {})) if secure else None,
        client_id=client_id.render_str(Context(hostname=hostname)) if not bad_id else "",
        protocol=4 if str(raw.get("protocol", 5)) == "3.1.1" else 5,
        user_properties={
            key: c.template(value, (*path, "properties", "user", key))
            for key, value in props.get("user", {}).items()
        },
        queue=_queue(raw.get("queue"), (*path, "queue"), c),
        **options,
    )


def _homeassistant(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """Discovery settings; Home Assistant needs the bridge's availability, so a sink without
    one gets ``<topic_prefix>/bridge/availability``."""
    ha = dict(raw["homeassistant"])
    ha |= c.seconds(ha, path, {"interval": "interval"})
    if ha.get("interval", 1) <= 0:
        c.add((*path, "interval"), "the interval must be longer than 0s")
        ha["interval"] = 30.0
    prefix = raw.get("topic_prefix", "ws-bridge")
    return {"homeassistant": HomeAssistant(**ha),
            "availability": Availability(**raw.get("availability", {
                "topic": f"{prefix}/bridge/availability"}))}


def _port(url: SplitResult, secure: bool) -> int:
    """The URL's port, else MQTT's default for the scheme; 0 when it is not a number."""
    try:
        return (8883 if secure else 1883) if url.port is None else url.port
    except ValueError:
        return 0


def _queue(raw: dict[str, Any] | None, path: KeyPath, c: Collector) -> QueueConfig:
    """The in-memory queue or durable outbox, its size and age as numbers."""
    outbox = dict(raw or {})
    if "max_bytes" in outbox:
        outbox["max_bytes"] = parse_size(outbox["max_bytes"])
    outbox |= c.seconds(outbox, path, {"max_age": "max_age"})
    return queue(outbox, QueueConfig(max_messages=100_000))
