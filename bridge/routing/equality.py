"""JSON equality: what a pattern's plain value, ``$eq`` and ``$in`` compare with."""

from __future__ import annotations

from typing import Any


def same(spec: Any, value: Any) -> bool:
    """JSON equality: bool is an int in Python, JSON keeps them apart, and so do we."""
    if isinstance(spec, bool) or isinstance(value, bool):
        return type(spec) is type(value) and spec == value
    if isinstance(spec, dict | list) or isinstance(value, dict | list):
        return type(spec) is type(value) and exact(spec, value)
    return bool(spec == value)


def exact(spec: Any, value: Any) -> bool:
    """Containers inside lists must be equal, not merely match: a list is a value, not a pattern."""
    if isinstance(spec, dict):
        return spec.keys() == value.keys() and all(same(spec[k], value[k]) for k in spec)
    return len(spec) == len(value) and all(same(s, v) for s, v in zip(spec, value, strict=True))
