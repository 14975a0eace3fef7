"""The ``$`` operators of patterns, under MongoDB's names: one table, operator name -> compiler.

The comparisons (``bridge.routing.compare``), presence (``$exists``), text (``$regex``) and the
logical ones (``$not``, ``$or``, ``$and``), which take patterns. Another table can extend this
one (``{**OPERATORS, "$text": ...}``) and be handed to ``compile_pattern`` or ``Pattern``."""

from __future__ import annotations

import re
from typing import Any

from bridge.config.explain import json_type
from bridge.routing.compare import COMPARISONS
from bridge.routing.compiled import MISSING, Compile, Compiler, PatternError, Test, Where


def _exists(operand: Any, sub: Compile, at: Where) -> Test:
    if type(operand) is not bool:
        raise PatternError(at, f"$exists needs true or false, got {json_type(operand)}")
    return (lambda v: v is not MISSING) if operand else (lambda v: v is MISSING)


def _regex(operand: Any, sub: Compile, at: Where) -> Test:
    if type(operand) is not str:
        raise PatternError(at, f"$regex needs a string, got {json_type(operand)}")
    try:
        search = re.compile(operand).search
    except re.error as exc:
        raise PatternError(at, f"invalid $regex: {exc.msg} at position {exc.pos}") from None
    return lambda v: type(v) is str and search(v) is not None


def _not(operand: Any, sub: Compile, at: Where) -> Test:
    test = sub(operand, at)
    return lambda v: not test(v)


def _all_of(name: str, operand: Any, sub: Compile, at: Where) -> list[Test]:
    if not isinstance(operand, list) or not operand:
        got = "an empty list" if operand == [] else json_type(operand)
        raise PatternError(at, f"{name} needs a non-empty list of patterns, got {got}")
    return [sub(spec, (*at, i)) for i, spec in enumerate(operand)]


def _or(operand: Any, sub: Compile, at: Where) -> Test:
    tests = _all_of("$or", operand, sub, at)
    return lambda v: any(t(v) for t in tests)


def _and(operand: Any, sub: Compile, at: Where) -> Test:
    tests = _all_of("$and", operand, sub, at)
    return lambda v: all(t(v) for t in tests)


OPERATORS: dict[str, Compiler] = {
    **COMPARISONS, "$exists": _exists, "$regex": _regex, "$not": _not, "$or": _or, "$and": _and,
}
