"""JSON values encoded as compact text for payloads: orjson when installed (``[fast]``), else the
standard library, whose output differs only in how it spells a few floats (``1e+16``) and a
non-finite number (orjson writes null). A number orjson cannot take (beyond 64 bits) goes to the
standard library."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final


def _slow(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_dumps() -> Callable[[Any], str]:  # orjson's when installed ([fast]): see README
    try:
        from orjson import dumps  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - depends on the install
        return _slow

    def fast(value: Any) -> str:
        try:
            return str(dumps(value), "utf-8")
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, say
            return _slow(value)

    return fast


dumps: Final = _json_dumps()
