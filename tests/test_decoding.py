"""One JSON rule with or without orjson (README, "JSON: one rule with or without orjson").

``make test`` runs this file twice: in .venv (the standard library decodes) and in .venv-fast
(the ``[fast]`` extras: orjson decodes, ``WS_BRIDGE_FAST=1``). Every case goes through
``decode_json`` as the bridge calls it, and through the standard library's rule directly, so the
two decoders are held to the same table."""

from __future__ import annotations

import importlib.util
import os

import pytest

from bridge.decoding import INVALID, LOADS, decode_json
from bridge.json_rule import std_loads

INVALID_TEXTS = {
    "NaN": "NaN",
    "Infinity": "[Infinity]",
    "-Infinity": '{"x": -Infinity}',
    "beyond a double": "[1e400]",
    "beyond a double, negative": "-1e400",
    "an integer beyond a double": "1" * 400,
    "more than 4300 digits": "1" * 5000,
    "a lone high surrogate": '"\\ud800"',
    "a lone low surrogate": '["a\\uDC00"]',
    "truncated": '{"a": 1',
}
VALID = {
    "duplicate keys: the last wins": ('{"a": 1, "a": 2}', {"a": 2}),
    "u64's highest": ("18446744073709551615", 2**64 - 1),
    "i64's lowest": ("-9223372036854775808", -(2**63)),
    "beyond u64: a float": ("18446744073709551616", float(2**64)),
    "below i64: a float": ("[-9223372036854775809]", [float(-(2**63) - 1)]),
    "a surrogate pair is one character": ('"\\ud83d\\ude00"', "\U0001f600"),
    "a double's largest": ("1.7976931348623157e308", 1.7976931348623157e308),
    "18 digits stay exact": ("999999999999999999", 999999999999999999),
}


@pytest.mark.parametrize("text", INVALID_TEXTS.values(), ids=list(INVALID_TEXTS))
def test_invalid_under_both_decoders(text: str) -> None:
    assert decode_json(text) is INVALID
    with pytest.raises(ValueError):
        std_loads(text)


@pytest.mark.parametrize(("text", "value"), VALID.values(), ids=list(VALID))
def test_valid_under_both_decoders_with_the_same_value(text: str, value: object) -> None:
    for decoded in (decode_json(text), std_loads(text)):
        assert decoded == value
        assert type(decoded) is type(value)  # a big integer is a float in both, never an int


def test_the_decoder_is_orjson_exactly_when_the_fast_extras_are_installed() -> None:
    fast = importlib.util.find_spec("orjson") is not None
    if os.environ.get("WS_BRIDGE_FAST") == "1":  # the [fast] run of make test must use them
        assert fast, "orjson is not installed in the [fast] venv"
    if fast:
        import orjson  # noqa: PLC0415 - optional

        assert LOADS is orjson.loads
    else:
        assert LOADS is std_loads
