"""The typed processing steps of a route: ``throttle``, ``on_change`` and ``batch``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.routing.template import Template

MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class ThrottleSpec:
    """At most one delivery per rendered ``key`` per ``every`` seconds; ``keep: last`` sends the
    period's last value at its end, ``first`` the first at once and drops the rest."""
    key: Template
    every: float = 1.0  # when the duration failed to parse, an error is reported anyway
    keep: Literal["last", "first"] = "last"
    max_keys: int = MAX_KEYS


@dataclass(frozen=True, slots=True)
class OnChangeSpec:
    """Deliver only when ``value`` differs from the last one delivered for ``key``: numbers (and
    numeric strings) by more than ``deadband``, anything else by equality."""
    key: Template
    value: Template
    deadband: float = 0.0
    max_keys: int = MAX_KEYS


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """Deliveries gathered into one JSON array: at ``max`` of them or ``within`` seconds."""
    max: int
    within: float = 1.0  # when the duration failed to parse, an error is reported anyway
