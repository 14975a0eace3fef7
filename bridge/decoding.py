"""JSON text frames decoded once, with one policy: invalid or over-deep JSON is ``INVALID``.

orjson decodes when installed (``[fast]``), else the standard library under orjson's rule
(``bridge.json_rule``: NaN and Infinity are invalid, the last duplicate key wins...). Nesting
deeper than ``MAX_JSON_DEPTH`` levels is refused: such a frame is hostile, not data to route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bridge.json_rule import std_loads


def _json_loads() -> Callable[[str], Any]:  # orjson's when installed ([fast]): see README
    try:
        from orjson import loads  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - depends on the install
        return std_loads
    fast: Callable[[str], Any] = loads  # typed here whether or not orjson's stubs are installed
    return fast


LOADS: Final = _json_loads()
MAX_JSON_DEPTH: Final = 64


class _Invalid:
    """Sentinel type: the frame is text but not valid JSON (or is binary)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


def decode_json(data: str | bytes) -> Any:
    """Decode a text frame; binary frames, invalid JSON and over-deep nesting give ``INVALID``."""
    if isinstance(data, bytes):
        return INVALID
    try:
        value = LOADS(data)
    except (ValueError, RecursionError):  # orjson's JSONDecodeError, UnicodeError: ValueErrors
        return INVALID
    # A level is a pair of brackets: short text is never deep, nor a dict of scalars (the usual
    # message, and quicker to check than counting its brackets; see ARCHITECTURE.md, Hot path),
    # nor text with few brackets (counted in C, sparing the walk).
    if len(data) <= 2 * MAX_JSON_DEPTH or (type(value) is dict and _flat(value)):
        return value
    deep = data.count("[") + data.count("{") > MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH)
    return INVALID if deep else value


def _flat(value: dict[str, Any]) -> bool:
    for v in value.values():  # noqa: SIM110 - a loop: no generator per message
        if type(v) is dict or type(v) is list:
            return False
    return True


def _too_deep(value: Any, budget: int) -> bool:
    if budget < 0:
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_too_deep(v, budget - 1) for v in items)
