"""The typed config of sources and of the whole file, built by the loader from validated YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.outbound import OutboxSpec, PublishSpec, RateLimitSpec, RpcSpec
from bridge.config.specs import (
    AuthSpec,
    DedupSpec,
    HeartbeatSpec,
    ReplySpec,
    RouteSpec,
    SequenceSpec,
    Step,
    TLSConfig,
)
from bridge.config.stateful import CaptureSpec, RenewSpec
from bridge.sinks.settings import SinkConfig
from bridge.upstream.backoff import BackoffPolicy


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
    dedup: DedupSpec | None = None
    sequence: SequenceSpec | None = None
    publish: tuple[PublishSpec, ...] = ()  # MQTT -> upstream
    rpc: RpcSpec | None = None
    rate_limit: RateLimitSpec | None = None  # applies to everything sent
    outbox: OutboxSpec = OutboxSpec()
    capture: tuple[CaptureSpec, ...] = ()  # values kept from server messages: {var.NAME}
    renew: RenewSpec = RenewSpec()  # reconnect_when, max_connection_age, rollover


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config file; ``secrets`` to redact everywhere, ``warnings`` to show."""
    path: str
    sources: tuple[SourceConfig, ...]
    sinks: dict[str, SinkConfig]
    secrets: frozenset[str] = frozenset()
    metrics_listen: str | None = None
    warnings: tuple[str, ...] = ()
    ready_grace: float = 30.0  # /readyz: how long a source may be down and still count as ready
