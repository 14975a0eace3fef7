"""Patterns (``when``, ``expect``, ``reject``, ``await``): a recursive subset match on JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.messages import INVALID


@dataclass(frozen=True, slots=True)
class Pattern:
    """Matches a JSON value when every key of ``spec`` is present in it with an equal value."""

    spec: Any

    def matches(self, value: Any) -> bool:
        return value is not INVALID and _match(self.spec, value)


def _match(spec: Any, value: Any) -> bool:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in spec.items():
            if key not in value or not _match(sub, value[key]):
                return False
        return True
    # bool is an int in Python; JSON keeps them apart, and so do we.
    if isinstance(spec, bool) or isinstance(value, bool):
        return type(spec) is type(value) and spec == value
    return bool(spec == value)
