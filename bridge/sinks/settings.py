"""The typed settings of every sink type, built by the config loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.specs import TLSConfig
from bridge.routing.template import Template
from bridge.sinks.presence_settings import Availability, HomeAssistant
from bridge.upstream.backoff import BackoffPolicy

Overflow = Literal["drop_oldest", "drop_newest", "block"]
Format = Literal["raw", "envelope"]


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The bounded queue in front of every sink, and what happens when it is full.

    ``path`` (MQTT sinks only) makes it a durable outbox in that directory; ``max_bytes`` bounds
    its payload bytes (0: no bound) and ``max_age`` drops older messages (seconds, 0: never)."""

    max_messages: int = 10_000
    overflow: Overflow = "drop_oldest"
    path: str | None = None
    max_bytes: int = 0
    max_age: float = 0.0


@dataclass(frozen=True, slots=True)
class StdoutSinkConfig:
    name: str
    format: Format = "raw"
    queue: QueueConfig = QueueConfig()


@dataclass(frozen=True, slots=True)
class FileSinkConfig:
    name: str
    path: Template
    format: Format = "envelope"
    flush_interval: float = 1.0
    fsync: Literal["never", "interval", "always"] = "never"
    max_bytes: int = 0
    rotate: Literal["hourly", "daily"] | None = None
    keep: int = 0
    compress: bool = False
    queue: QueueConfig = QueueConfig()


@dataclass(frozen=True, slots=True)
class MqttSinkConfig:
    name: str
    host: str
    port: int
    tls: TLSConfig | None = None  # None: plain TCP (mqtt://)
    client_id: str = "ws-bridge"
    username: str | None = None
    password: str | None = None
    protocol: Literal[4, 5] = 5
    keepalive: float = 30.0
    qos: int = 0
    retain: bool = False
    topic_prefix: str = "ws-bridge"
    availability: Availability | None = None
    homeassistant: HomeAssistant | None = None
    message_expiry: float | None = None
    user_properties: dict[str, Template] = field(default_factory=dict)
    reconnect: BackoffPolicy = BackoffPolicy()
    queue: QueueConfig = QueueConfig(max_messages=100_000)
    connections: int = 1  # broker connections, each source pinned to one (sinks.mqtt_lanes)
    linger: float = 0.0  # seconds a publish may wait for others to share its socket write


@dataclass(frozen=True, slots=True)
class WebSocketSinkConfig:
    name: str
    token: str
    host: str = "127.0.0.1"
    port: int = 8766
    path: str = "/"
    allowed_origins: tuple[str, ...] = ()
    format: Format = "envelope"
    client_queue: int = 1000
    compression: bool = True
    queue: QueueConfig = QueueConfig()


SinkConfig = StdoutSinkConfig | FileSinkConfig | MqttSinkConfig | WebSocketSinkConfig
