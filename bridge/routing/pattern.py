"""Patterns (``when``, ``expect``, ``reject``, ``await``, replies): a recursive subset match on
JSON, with MongoDB's ``$`` operators (``bridge.routing.operators``) wherever a mapping is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.decoding import INVALID
from bridge.routing.clauses import compile_clauses, has_operators
from bridge.routing.compiled import Compiler, Test, Where
from bridge.routing.equality import same
from bridge.routing.frame_ops import PATTERN_OPERATORS, Closed, frame_keys

Operators = Mapping[str, Compiler]


@dataclass(frozen=True, slots=True)
class Pattern:
    """Matches a JSON value when every key of ``spec`` is present in it with an equal value, and
    every ``$`` operator holds. Compiled once into nested closures: a ``when`` runs for every
    message. Raises PatternError for an unknown operator or a bad operand."""

    spec: Any
    operators: Operators = field(default_factory=lambda: PATTERN_OPERATORS, repr=False,
                                 compare=False)
    _test: Test = field(init=False, repr=False, compare=False)
    reads_text: bool = field(init=False, repr=False, compare=False)  # $text, $prefix, $regex
    reads_close: bool = field(init=False, repr=False, compare=False)  # $close

    def __post_init__(self) -> None:
        object.__setattr__(self, "_test", compile_pattern(self.spec, self.operators))
        keys = frame_keys(self.spec)
        object.__setattr__(self, "reads_text", bool(keys - {"$close"}))
        object.__setattr__(self, "reads_close", "$close" in keys)

    def matches(self, value: Any, text: str | None = None) -> bool:
        """Whether a message matches: its JSON ``value``, or the frame's ``text`` (as received,
        after ``frames``), which the text operators at the pattern's top read."""
        if value is not INVALID and self._test(value):
            return True
        return self.reads_text and text is not None and self._test(text)

    def closes(self, code: int, reason: str = "") -> bool:
        """Whether a connection the server ended with ``code`` matches (``$close``)."""
        return self.reads_close and self._test(Closed(code, reason))


def compile_pattern(spec: Any, operators: Operators, at: Where = ()) -> Test:
    """The test of ``spec``; without operators, the same answers as ``_match(spec, value)``,
    with the type decisions taken once."""
    if isinstance(spec, dict):
        return _mapping(spec, operators, at)
    if isinstance(spec, str):
        return lambda v: type(v) is str and v == spec
    if isinstance(spec, list | bool) or spec is None:
        return lambda v: _match(spec, v)
    return lambda v: not isinstance(v, bool | dict | list) and bool(spec == v)  # int, float


def _mapping(spec: dict[Any, Any], operators: Operators, at: Where) -> Test:
    if has_operators(spec):
        return compile_clauses(spec, operators, lambda s, w: compile_pattern(s, operators, w), at)
    items = [(key, compile_pattern(sub, operators, (*at, key))) for key, sub in spec.items()]
    if len(items) == 1 and isinstance(text := next(iter(spec.values())), str):
        (key, _), = items  # the usual ``when: {type: trade}``: one call per message
        return lambda v: isinstance(v, dict) and type(got := v.get(key)) is str and got == text
    if len(items) == 1:
        (key, test), = items
        return lambda v: isinstance(v, dict) and key in v and test(v[key])
    return lambda v: isinstance(v, dict) and all(k in v and t(v[k]) for k, t in items)


def _match(spec: Any, value: Any) -> bool:
    """The reference rules of a plain pattern (no operators), which the compiled tests follow."""
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
        return all(same(s, v) for s, v in zip(spec, value, strict=True))
    return same(spec, value)
