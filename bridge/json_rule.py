"""One JSON rule with or without orjson: the standard library's ``json.loads`` made to accept
and refuse what orjson does (README, "JSON: one rule with or without orjson").

- ``NaN``, ``Infinity``, ``-Infinity`` and a number beyond a double's range (``1e400``): invalid.
- A lone UTF-16 surrogate escape (``"\\ud800"``): invalid; a pair is one character.
- A duplicate key: valid, the last one wins.
- An integer beyond 64 bits (outside -2**63 .. 2**64-1): valid, read as a float, as orjson and
  JavaScript read it (one of more than 4300 digits is invalid, both ways).
"""

from __future__ import annotations

import json
import math
from typing import Any

_INT64 = (-(2**63), 2**64)  # orjson's integers: from i64's lowest to u64's highest


def _int(text: str) -> int | float:
    if len(text) < 19:  # fewer digits always fit: the usual number stops here
        return int(text)
    value = int(text)
    if _INT64[0] <= value < _INT64[1]:
        return value
    try:
        return float(value)
    except OverflowError:  # beyond a double too (310 digits or more), as for 1e400
        raise ValueError("a number beyond a double's range") from None


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number beyond a double's range")
    return value


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def std_loads(data: str) -> Any:
    """``json.loads`` under the rule orjson follows; ValueError for invalid text."""
    value = _STRICT.decode(data)
    if "\\ud" in data or "\\uD" in data:  # an escaped surrogate: it must be one of a pair
        json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError when lone
    return value
