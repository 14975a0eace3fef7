"""The typed config of sources and of the whole file, built by the loader from validated YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.config.http_specs import HttpStep, JwtSpec, SignSpec
from bridge.config.outbound import OutboxSpec, PublishSpec, RateLimitSpec, RpcSpec
from bridge.config.pooling import PoolSpec
from bridge.config.recovery_specs import DedupSpec, SequenceSpec
from bridge.config.specs import (
    AuthSpec,
    HeartbeatSpec,
    ReplySpec,
    RouteSpec,
    Step,
    TLSConfig,
)
from bridge.config.stateful import CaptureSpec, RenewSpec
from bridge.frames import FramesSpec
from bridge.routing.pattern import Pattern
from bridge.sinks.settings import SinkConfig
from bridge.upstream.backoff import BackoffPolicy


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """What a ``protocol:`` preset adds to the plain YAML it expands into: the frame format
    (``type``, decoded by ``bridge.protocols``) and the messages by which the server refuses
    at any time (``refuse``), not only while a step waits."""
    type: str
    refuse: Pattern


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
    frames: FramesSpec | None = None  # decoding beyond JSON text, before the session
    on_invalid: Literal["forward", "drop"] = "forward"
    allow_insecure: bool = False
    dedup: DedupSpec | None = None
    sequence: SequenceSpec | None = None
    publish: tuple[PublishSpec, ...] = ()  # MQTT -> upstream
    rpc: RpcSpec | None = None
    rate_limit: RateLimitSpec | None = None  # applies to everything sent
    outbox: OutboxSpec = OutboxSpec()
    protocol: ProtocolSpec | None = None  # a preset's frames and refusals
    pool: PoolSpec | None = None  # items spread over connections (with subscribe `each`)
    http: tuple[HttpStep, ...] = ()  # around the session: tokens, keepalives, snapshots
    sign: tuple[SignSpec, ...] = ()
    jwt: tuple[JwtSpec, ...] = ()
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
    tap_token: str | None = None  # metrics.tap: the /tap readers' token; None: no /tap
    tap_buffer: int = 1000  # lines a /tap reader may fall behind by before it is cut off
    coalesce: float = 0.0004  # seconds a loop turn may be held while messages flow (bridge.turns)
