"""The typed parts of a source: TLS, auth, subscribe, heartbeat, replies, routes."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config.route_specs import BatchSpec, OnChangeSpec, ThrottleSpec
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class Step:
    """One message the session sends (``send``), and optionally the reply it waits for.

    ``expect_every`` > 0: once connected, when no message matching ``when`` (any message
    without it) arrived for that long, this one step is sent again on the live socket.
    ``each``: sent per batch of ``batch`` pool items; ``items``: the batch a step sent for
    one connection carries (a ``reject`` then refuses only them)."""
    send: Template
    expect: Pattern | None = None
    reject: Pattern | None = None
    timeout: float = 10.0
    expect_every: float = 0.0
    when: Pattern | None = None
    deliver: bool = False  # the expected message is data (no ack on this protocol): routed too
    each: bool = False
    batch: int = 1
    items: tuple[str, ...] = ()


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
    """``interval_from``: a template giving the interval (``"{http.b.json.ping}ms"``), rendered
    when a connection opens; it replaces ``interval``."""
    send: Template
    interval: float
    expect: Pattern | None = None
    timeout: float = 10.0
    interval_from: Template | None = None


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
    each: Template | None = None  # one delivery per element, read as {item} and {index}
    item_when: Pattern | None = None
    on_change: OnChangeSpec | None = None
    throttle: ThrottleSpec | None = None
    batch: BatchSpec | None = None
