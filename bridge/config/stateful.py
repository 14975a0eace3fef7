"""The typed parts of a source that carry state beyond one message: values captured from the
server (``capture``), and when a connection is renewed (``reconnect_when``,
``max_connection_age``, ``rollover``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.routing.pattern import Pattern
from bridge.routing.template import Template

Rollover = Literal["close", "overlap"]


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    """On a server message matching ``when``, each ``(name, template)`` of ``set`` is rendered
    with the message and kept as ``{var.NAME}``."""
    when: Pattern
    set: tuple[tuple[str, Template], ...]


@dataclass(frozen=True, slots=True)
class RenewSpec:
    """When a live connection is replaced: a server message matching one of
    ``reconnect_when``, or ``max_age`` seconds after it opened (0: never). ``rollover``
    ``overlap`` subscribes the successor before the old one closes; ``close`` closes first."""
    reconnect_when: tuple[Pattern, ...] = ()
    max_age: float = 0.0
    rollover: Rollover = "close"

    @property
    def active(self) -> bool:
        return bool(self.reconnect_when) or self.max_age > 0
