"""Patterns (``when``, ``expect``, ``reject``, ``await``): a recursive subset match on JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.decoding import INVALID

Test = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Pattern:
    """Matches a JSON value when every key of ``spec`` is present in it with an equal value.
    The spec is compiled once into nested closures: a ``when`` runs for every message."""

    spec: Any
    _test: Test = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_test", _compile(self.spec))

    def matches(self, value: Any) -> bool:
        return value is not INVALID and self._test(value)


def _compile(spec: Any) -> Test:
    """The same answers as ``_match(spec, value)``, with the type decisions taken once."""
    if isinstance(spec, dict):
        items = [(key, _compile(sub)) for key, sub in spec.items()]
        if len(items) == 1 and isinstance(text := next(iter(spec.values())), str):
            (key, _), = items  # the usual ``when: {type: trade}``: one call per message
            return lambda v: isinstance(v, dict) and type(got := v.get(key)) is str and got == text
        if len(items) == 1:
            (key, test), = items
            return lambda v: isinstance(v, dict) and key in v and test(v[key])
        return lambda v: isinstance(v, dict) and all(k in v and t(v[k]) for k, t in items)
    if isinstance(spec, str):
        return lambda v: type(v) is str and v == spec
    if isinstance(spec, list | bool) or spec is None:
        return lambda v: _match(spec, v)
    return lambda v: not isinstance(v, bool | dict | list) and bool(spec == v)  # int, float


def _match(spec: Any, value: Any) -> bool:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in spec.items():
            if key not in value or not _match(sub, value[key]):
                return False
        return True
    if isinstance(spec, list):  # lists are equal item by item, under the same rules
        if not isinstance(value, list) or len(value) != len(spec):
            return False
        return all(_same(s, v) for s, v in zip(spec, value, strict=True))
    return _same(spec, value)


def _same(spec: Any, value: Any) -> bool:
    """JSON equality: bool is an int in Python, JSON keeps them apart, and so do we."""
    if isinstance(spec, bool) or isinstance(value, bool):
        return type(spec) is type(value) and spec == value
    if isinstance(spec, dict | list) or isinstance(value, dict | list):
        return type(spec) is type(value) and _exact(spec, value)
    return bool(spec == value)


def _exact(spec: Any, value: Any) -> bool:
    """Containers inside lists must be equal, not merely match: a list is a value, not a pattern."""
    if isinstance(spec, dict):
        return spec.keys() == value.keys() and all(_same(spec[k], value[k]) for k in spec)
    return len(spec) == len(value) and all(_same(s, v) for s, v in zip(spec, value, strict=True))
