"""The message that flows from a source to the sinks, with its JSON parsed at most once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


def _json_loads() -> Callable[[str], Any]:  # orjson's when installed ([fast]): 2x as fast
    try:
        from orjson import loads  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - depends on the install
        return json.loads
    fast: Callable[[str], Any] = loads  # typed here whether or not orjson's stubs are installed
    return fast


LOADS: Final = _json_loads()


class _Invalid:
    """Sentinel type: the frame is text but not valid JSON (or is binary)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
_UNPARSED: Final = object()
MAX_JSON_DEPTH: Final = 64


class Message:
    """One frame from an upstream; ``data`` is ``str`` for text and ``bytes`` for binary."""

    __slots__ = ("_json", "data", "received_at", "source")

    def __init__(self, source: str, data: str | bytes, received_at: float) -> None:
        self.source = source
        self.data = data
        self.received_at = received_at
        self._json: Any = _UNPARSED

    @property
    def json(self) -> Any:
        """The decoded JSON value, or ``INVALID``; decoded on first use, then cached."""
        if self._json is _UNPARSED:
            self._json = decode_json(self.data)
        return self._json

    @property
    def parsed(self) -> Any:
        """The JSON value (or ``INVALID``) if already decoded, else None; never decodes."""
        return None if self._json is _UNPARSED else self._json

    @property
    def is_binary(self) -> bool:
        return isinstance(self.data, bytes)

    def __repr__(self) -> str:
        unit = "bytes" if self.is_binary else "chars"
        return f"Message(source={self.source!r}, {len(self.data)} {unit})"



def decode_json(data: str | bytes) -> Any:
    """Decode a text frame; binary frames, invalid JSON and over-deep nesting give ``INVALID``."""
    if isinstance(data, bytes):
        return INVALID
    try:
        value = LOADS(data)
    except (ValueError, RecursionError):  # orjson's JSONDecodeError is a ValueError
        return INVALID
    # A level is a pair of brackets: short text is never deep; counting (in C) spares the walk.
    deep = len(data) > 2 * MAX_JSON_DEPTH and data.count("[") + data.count("{") > MAX_JSON_DEPTH \
        and _too_deep(value, MAX_JSON_DEPTH)
    return INVALID if deep else value


def _too_deep(value: Any, budget: int) -> bool:
    if budget < 0:
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_too_deep(v, budget - 1) for v in items)


@dataclass(slots=True)  # not frozen: a frozen dataclass pays object.__setattr__ per field
class Delivery:
    """One routed message on its way into one sink: the route's rendered topic and payload."""

    message: Message
    payload: str | bytes
    topic: str | None = None
    qos: int | None = None
    retain: bool | None = None
