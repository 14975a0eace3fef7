"""The ``$`` operators of patterns: every operator, its type rules, and its check-time errors."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.decoding import INVALID
from bridge.routing.compiled import PatternError
from bridge.routing.operators import OPERATORS
from bridge.routing.pattern import Pattern

TRADE = {"e": "trade", "s": "BTCUSDT", "p": 101.5, "q": 2, "ok": True, "tags": ["a"], "n": None}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"p": {"$gt": 100}}, True), ({"p": {"$gt": 101.5}}, False),
        ({"p": {"$gte": 101.5}}, True), ({"p": {"$lt": 102}}, True),
        ({"p": {"$lte": 101}}, False), ({"s": {"$gt": "A"}}, True), ({"s": {"$lt": "A"}}, False),
        ({"q": {"$eq": 2}}, True), ({"q": {"$eq": 2.0}}, True), ({"q": {"$eq": "2"}}, False),
        ({"ok": {"$eq": 1}}, False), ({"ok": {"$eq": True}}, True),
        ({"tags": {"$eq": ["a"]}}, True), ({"q": {"$ne": 2}}, False), ({"q": {"$ne": 3}}, True),
        ({"s": {"$in": ["ETHUSDT", "BTCUSDT"]}}, True), ({"s": {"$in": ["ETHUSDT"]}}, False),
        ({"q": {"$in": [1, 2]}}, True), ({"ok": {"$in": [1]}}, False),
        ({"ok": {"$in": [True]}}, True), ({"n": {"$in": [None]}}, True),
        ({"tags": {"$in": [["a"]]}}, True), ({"s": {"$nin": ["ETHUSDT"]}}, True),
        ({"s": {"$nin": ["BTCUSDT"]}}, False),
        ({"n": {"$exists": True}}, True), ({"gone": {"$exists": True}}, False),
        ({"gone": {"$exists": False}}, True), ({"s": {"$exists": False}}, False),
        ({"s": {"$regex": "^BTC"}}, True), ({"s": {"$regex": "(?i)^btc"}}, True),
        ({"s": {"$regex": "^ETH"}}, False), ({"p": {"$regex": "1"}}, False),
        ({"p": {"$not": {"$gt": 200}}}, True), ({"p": {"$not": {"$gt": 100}}}, False),
        ({"s": {"$not": "BTCUSDT"}}, False),
        ({"$or": [{"e": "quote"}, {"p": {"$gt": 100}}]}, True),
        ({"$or": [{"e": "quote"}, {"p": {"$gt": 200}}]}, False),
        ({"$and": [{"e": "trade"}, {"p": {"$gt": 100}}]}, True),
        ({"$and": [{"e": "trade"}, {"p": {"$gt": 200}}]}, False),
        ({"p": {"$gt": 100, "$lt": 102}}, True), ({"p": {"$gt": 100, "$lt": 101}}, False),
        ({"e": "trade", "s": {"$in": ["BTCUSDT", "ETHUSDT"]}, "p": {"$gt": 100}}, True),
    ],
)
def test_every_operator_against_a_trade(spec: dict[str, Any], expected: bool) -> None:
    assert Pattern(spec).matches(TRADE) is expected


@pytest.mark.parametrize("op", ["$gt", "$gte", "$lt", "$lte"])
@pytest.mark.parametrize(("operand", "value"), [(1, "2"), ("2", 1), (1, True), (0, None),
                                                (1, [2]), (1, {"a": 2}), (1.5, float("nan"))])
def test_ordering_across_types_is_false_never_an_exception(op: str, operand: Any,
                                                           value: Any) -> None:
    assert Pattern({"v": {op: operand}}).matches({"v": value}) is False


@pytest.mark.parametrize("op", ["$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$regex"])
def test_an_absent_field_fails_every_positive_operator(op: str) -> None:
    operand = {"$in": [1], "$regex": "x"}.get(op, 1)
    assert not Pattern({"v": {op: operand}}).matches({"w": 1})


@pytest.mark.parametrize("spec", [{"v": {"$ne": 1}}, {"v": {"$nin": [1]}},
                                  {"v": {"$not": {"$gt": 0}}}, {"v": {"$exists": False}}])
def test_an_absent_field_matches_the_negative_operators_as_in_mongodb(spec: Any) -> None:
    assert Pattern(spec).matches({"w": 1})
    assert not Pattern(spec).matches([1])  # a non-mapping has no fields at all


def test_operators_at_the_top_level_test_the_message_itself() -> None:
    assert Pattern({"$exists": True}).matches(1)
    assert Pattern({"$in": ["a", "b"]}).matches("b")
    assert Pattern({"$or": [{"a": 1}, {"b": 2}], "c": 3}).matches({"b": 2, "c": 3})
    assert not Pattern({"$or": [{"a": 1}, {"b": 2}], "c": 3}).matches({"b": 2})
    assert not Pattern({"$exists": True}).matches(INVALID)


def test_nested_operators_and_lists_of_operator_text_stay_values() -> None:
    event = {"type": "event", "event": {"data": {"new_state": {"state": "on"}}}}
    assert Pattern({"type": "event", "event": {"data": {"new_state": {"$exists": True}}}}
                   ).matches(event)
    assert not Pattern({"event": {"data": {"old_state": {"$exists": True}}}}).matches(event)
    assert Pattern({"v": [{"$gt": 1}]}).matches({"v": [{"$gt": 1}]})  # in a list: a value


@pytest.mark.parametrize(
    ("spec", "at", "message"),
    [
        ({"p": {"$gtt": 1}}, ("p", "$gtt"), "unknown operator '$gtt'; did you mean '$gt'?"),
        ({"p": {"$zz": 1}}, ("p", "$zz"), "unknown operator '$zz'; known: $eq $ne"),
        ({"s": {"$in": "BTC"}}, ("s", "$in"), "$in needs a list, got string"),
        ({"s": {"$nin": {"a": 1}}}, ("s", "$nin"), "$nin needs a list, got object"),
        ({"p": {"$gt": True}}, ("p", "$gt"), "$gt needs a number or a string, got boolean"),
        ({"p": {"$lte": [1]}}, ("p", "$lte"), "$lte needs a number or a string, got array"),
        ({"p": {"$exists": 1}}, ("p", "$exists"), "$exists needs true or false, got integer"),
        ({"s": {"$regex": 5}}, ("s", "$regex"), "$regex needs a string, got integer"),
        ({"s": {"$regex": "a(b"}}, ("s", "$regex"),
         "invalid $regex: missing ), unterminated subpattern at position 1"),
        ({"$or": {"a": 1}}, ("$or",), "$or needs a non-empty list of patterns, got object"),
        ({"$and": []}, ("$and",), "$and needs a non-empty list of patterns, got an empty list"),
        ({"$or": [{"a": 1}, {"b": {"$in": 2}}]}, ("$or", 1, "b", "$in"),
         "$in needs a list, got integer"),
        ({"p": {"$not": {"$gtx": 1}}}, ("p", "$not", "$gtx"), "unknown operator '$gtx'"),
    ],
)
def test_a_bad_operator_says_what_and_where(spec: Any, at: tuple[Any, ...], message: str) -> None:
    with pytest.raises(PatternError) as caught:
        Pattern(spec)
    assert caught.value.at == at
    assert caught.value.message.startswith(message)


def test_an_extended_table_adds_operators_without_changing_the_default() -> None:
    def ends(operand: Any, sub: Any, at: Any) -> Any:
        return lambda v: isinstance(v, str) and v.endswith(operand)

    table = {**OPERATORS, "$suffix": ends}
    assert Pattern({"s": {"$suffix": "USDT"}}, table).matches(TRADE)
    with pytest.raises(PatternError):
        Pattern({"s": {"$suffix": "USDT"}})
