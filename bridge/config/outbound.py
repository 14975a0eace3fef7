"""The typed parts of a source that send upstream: MQTT publishes, RPC, rate limit, outbox."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.routing.pattern import Pattern
from bridge.routing.template import Template


@dataclass(frozen=True, slots=True)
class PublishSpec:
    """MQTT messages on ``topic`` (a filter) of the mqtt sink ``sink`` are sent upstream as
    ``send``, rendered with ``{mqtt.topic}``, ``{mqtt.topic[N]}`` and ``{mqtt.payload}``."""
    sink: str
    topic: str
    send: Template


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """At most ``messages`` sent in any window of ``per`` seconds (bursts up to ``messages``)."""
    messages: int
    per: float = 1.0


@dataclass(frozen=True, slots=True)
class OutboxSpec:
    """Messages waiting to go upstream while it is down: at most this many, this old."""
    max_messages: int = 1000
    max_age: float = 30.0


@dataclass(frozen=True, slots=True)
class RpcSpec:
    """Requests published to ``<topic_prefix>/<source>/rpc`` on the mqtt sink ``sink`` (None:
    only ``ws-bridge call``) are sent
    as ``send``; the reply with the same ``id_field`` value (and matching ``match``) is published
    to the request's response topic; one matching ``error`` becomes an error response."""
    sink: str | None
    send: Template
    id_field: str = "id"
    match: Pattern | None = None
    error: Pattern | None = None
    timeout: float = 10.0
