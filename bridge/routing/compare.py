"""The comparison operators of patterns: ``$eq $ne $gt $gte $lt $lte $in $nin``.

Their tests never raise: a number and a string are not ordered, so ``$gt`` between them is
false. An absent field (``MISSING``) equals nothing, so ``$ne`` and ``$nin`` match it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bridge.config.explain import json_type
from bridge.routing.compiled import Compile, Compiler, PatternError, Test, Where
from bridge.routing.equality import same


def _order(name: str, compare: Callable[[Any, Any], bool]) -> Compiler:
    """``$gt`` and friends: numbers against numbers, strings against strings, else false."""

    def compile_order(operand: Any, sub: Compile, at: Where) -> Test:
        if type(operand) is int or type(operand) is float:
            return lambda v: (type(v) is int or type(v) is float) and compare(v, operand)
        if type(operand) is str:
            return lambda v: type(v) is str and compare(v, operand)
        raise PatternError(at, f"{name} needs a number or a string, got {json_type(operand)}")

    return compile_order


def _eq(operand: Any, sub: Compile, at: Where) -> Test:
    return lambda v: same(operand, v)


def _ne(operand: Any, sub: Compile, at: Where) -> Test:
    return lambda v: not same(operand, v)


def _members(name: str, operand: Any, at: Where) -> Test:
    """Membership in ``operand``: strings and numbers by hash, the rest (booleans, null,
    containers) one by one under JSON equality."""
    if not isinstance(operand, list):
        raise PatternError(at, f"{name} needs a list, got {json_type(operand)}")
    texts = frozenset(o for o in operand if type(o) is str)
    numbers = frozenset(o for o in operand if type(o) is int or type(o) is float)
    others = [o for o in operand if type(o) not in (str, int, float)]

    def member(v: Any) -> bool:
        kind = type(v)
        if kind is str:
            return v in texts
        if kind is int or kind is float:
            return v in numbers
        return any(same(o, v) for o in others)

    return member


def _in(operand: Any, sub: Compile, at: Where) -> Test:
    return _members("$in", operand, at)


def _nin(operand: Any, sub: Compile, at: Where) -> Test:
    member = _members("$nin", operand, at)
    return lambda v: not member(v)


COMPARISONS: dict[str, Compiler] = {
    "$eq": _eq, "$ne": _ne, "$in": _in, "$nin": _nin,
    "$gt": _order("$gt", operator.gt), "$gte": _order("$gte", operator.ge),
    "$lt": _order("$lt", operator.lt), "$lte": _order("$lte", operator.le),
}
