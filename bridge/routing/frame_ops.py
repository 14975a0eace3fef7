"""The operators that read a frame rather than its JSON, added to the ``$`` operator table:
``$text`` (exact), ``$prefix`` and ``$regex`` on a frame's text, ``$close`` on the close code
of a connection the server ended.

A pattern whose keys are all of these reads the frame: its text as received (after
``frames`` decoding), even when that text is valid JSON, so ``{$regex: '^2$'}`` matches the
frame ``2``; or a ``Closed`` connection. Inside a field they test a string value, like
``$regex`` does; ``$close`` matches nothing there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bridge.config.explain import json_type
from bridge.routing.compiled import Compile, Compiler, PatternError, Test, Where
from bridge.routing.operators import OPERATORS

FRAME_KEYS: Final = frozenset({"$text", "$prefix", "$regex", "$close"})


@dataclass(frozen=True, slots=True)
class Closed:
    """The server ended the connection with ``code`` (and ``reason``): what ``$close`` reads."""
    code: int
    reason: str = ""


def frame_keys(spec: Any) -> frozenset[str]:
    """The frame operators at the top of ``spec``, or of its ``$or``/``$and``/``$not``: what
    says whether a pattern reads a frame's text (``$text``, ``$prefix``, ``$regex``) and a
    close code (``$close``)."""
    if not isinstance(spec, dict):
        return frozenset()
    found = {key for key in spec if key in FRAME_KEYS}
    for key in ("$or", "$and"):
        for member in spec.get(key, ()) if isinstance(spec.get(key), list) else ():
            found |= frame_keys(member)
    return frozenset(found | frame_keys(spec.get("$not")))


def _string(name: str, operand: Any, at: Where) -> str:
    if type(operand) is not str:
        raise PatternError(at, f"{name} needs a string, got {json_type(operand)}")
    return operand


def _text(operand: Any, sub: Compile, at: Where) -> Test:
    text = _string("$text", operand, at)
    return lambda v: type(v) is str and v == text


def _prefix(operand: Any, sub: Compile, at: Where) -> Test:
    start = _string("$prefix", operand, at)
    return lambda v: type(v) is str and v.startswith(start)


def _close(operand: Any, sub: Compile, at: Where) -> Test:
    codes = operand if isinstance(operand, list) else [operand]
    bad = [c for c in codes if type(c) is not int or not 1000 <= c <= 4999]
    if not codes or bad:
        got = json_type(bad[0]) if bad and type(bad[0]) is not int else bad or "an empty list"
        raise PatternError(at, f"$close needs a list of close codes (1000-4999), e.g. "
                               f"[4401, 4403], got {got}")
    closing = frozenset(codes)
    return lambda v: type(v) is Closed and v.code in closing


PATTERN_OPERATORS: dict[str, Compiler] = {
    **OPERATORS, "$text": _text, "$prefix": _prefix, "$close": _close,
}
