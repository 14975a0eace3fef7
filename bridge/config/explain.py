"""Turns JSON Schema validation errors into short messages a user can act on, at exact key paths."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from bridge.config.keypaths import KeyPath

_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (dict, "object"), (list, "array"))


def suggest(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    names = [name for kind, name in _JSON_TYPES if isinstance(value, kind)]
    return names[0] if names else "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def explain(error: Any) -> list[tuple[KeyPath, str]]:
    """One ``(path, message)`` per problem in a ``jsonschema.ValidationError``."""
    path: KeyPath = tuple(error.absolute_path)
    kind, expected, value, schema = (
        error.validator, error.validator_value, error.instance, error.schema
    )
    if "propertyNames" in error.relative_schema_path:
        # The name itself failed; point at that key rather than at its parent mapping.
        return [((*path, value), f"name {_show(value)} {schema.get('patternErrorMessage', '')}")]
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        listing = f"; allowed here: {', '.join(allowed)}"
        return [
            ((*path, key), f"unknown key '{key}'" + (suggest(key, allowed) or listing))
            for key in value
            if key not in allowed
        ]
    if kind == "required" and isinstance(value, dict):
        return [(path, f"missing required key '{key}'") for key in expected if key not in value]
    return [(path, _message(kind, expected, value, schema, error.message))]


def _message(  # noqa: PLR0911 - one short message per JSON Schema keyword
    kind: str, expected: Any, value: Any, schema: dict[str, Any], default: str
) -> str:
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {wanted}, got {json_type(value)}"
    if kind == "enum":
        options = ", ".join(_show(option) for option in expected)
        words = [o for o in expected if isinstance(o, str)]
        hint = suggest(value, words) if isinstance(value, str) else ""
        return f"must be one of {options}; got {_show(value)}{hint}"
    if kind == "const":
        return f"must be {_show(expected)}; got {_show(value)}"
    if kind == "pattern":
        return f"{_show(value)} {schema.get('patternErrorMessage', f'does not match {expected}')}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return f"must be {sign[kind]} {expected}; got {_show(value)}"
    if kind in ("minItems", "minProperties"):
        return f"must have at least {expected} {'item' if kind == 'minItems' else 'entry'}"
    return default
