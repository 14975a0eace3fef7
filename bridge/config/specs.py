"""The typed parts of a source: TLS, auth, subscribe, heartbeat, replies, routes, recovery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    without it) arrived for that long, this one step is sent again on the live socket."""
    send: Template
    expect: Pattern | None = None
    reject: Pattern | None = None
    timeout: float = 10.0
    expect_every: float = 0.0
    when: Pattern | None = None


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


DEDUP_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class DedupSpec:
    """Drop a message whose rendered ``key`` is among the last ``window`` keys seen."""
    key: Template
    window: int = DEDUP_WINDOW


OnGap = Literal["log", "resubscribe", "reconnect"]


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    """Expect ``key`` to grow by one per message within each ``per`` stream (one without it)."""
    key: Template
    per: Template | None = None
    on_gap: OnGap = "log"
