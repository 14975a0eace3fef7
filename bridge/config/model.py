"""The typed config of sources and of the whole file, built by the loader from validated YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.sinks.base import SinkConfig
from bridge.upstream.backoff import BackoffPolicy


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class Step:
    """One message the session sends (``send``), and optionally the reply it waits for."""
    send: Template
    expect: Pattern | None = None
    reject: Pattern | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """Message-based auth: wait for ``await_``, send, then wait for ``expect`` or ``reject``."""
    send: Template | None = None
    await_: Pattern | None = None
    expect: Pattern | None = None
    reject: Pattern | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HeartbeatSpec:
    send: Template
    interval: float
    expect: Pattern | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class ReplySpec:
    when: Pattern
    send: Template


@dataclass(frozen=True, slots=True)
class RouteSpec:
    sink: str
    when: Pattern | None = None
    topic: Template | None = None
    payload: Template | None = None
    qos: int | None = None
    retain: bool | None = None


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    subprotocols: tuple[str, ...] = ()
    tls: TLSConfig = TLSConfig()
    max_message_size: int = 1 << 20
    compression: bool = True
    proxy: str | None = None
    connect_timeout: float = 10.0
    reconnect: BackoffPolicy = BackoffPolicy()
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    idle_timeout: float = 0.0
    auth: AuthSpec | None = None
    subscribe: tuple[Step, ...] = ()
    unsubscribe: tuple[Step, ...] = ()
    heartbeat: HeartbeatSpec | None = None
    replies: tuple[ReplySpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    on_invalid: Literal["forward", "drop"] = "forward"
    allow_insecure: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config file; ``secrets`` to redact everywhere, ``warnings`` to show."""
    path: str
    sources: tuple[SourceConfig, ...]
    sinks: dict[str, SinkConfig]
    secrets: frozenset[str] = frozenset()
    metrics_listen: str | None = None
    warnings: tuple[str, ...] = ()
