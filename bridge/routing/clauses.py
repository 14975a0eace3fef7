"""A pattern's mapping with ``$`` operators in it or right below it, compiled into its clauses:
its own operators test the value itself, its keys test the value's fields, and a field whose
pattern is made of operators is read even when absent (``MISSING``: ``$exists: false``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config.explain import suggest
from bridge.routing.compiled import MISSING, Compile, Compiler, PatternError, Test, Where


def is_operator(key: Any) -> bool:
    return isinstance(key, str) and key[:1] == "$"


def has_operators(spec: Any) -> bool:
    """Whether ``spec`` is a mapping with an operator among its keys or its values' keys."""
    return isinstance(spec, dict) and any(
        is_operator(key) or (isinstance(sub, dict) and any(map(is_operator, sub)))
        for key, sub in spec.items()
    )


def compile_clauses(
    spec: dict[str, Any], operators: Mapping[str, Compiler], sub: Compile, at: Where
) -> Test:
    """The test of ``spec``, every clause of which must hold; ``sub`` compiles a sub-pattern."""
    own: list[Test] = []
    fields: list[Test] = []
    problems: list[tuple[Where, str]] = []  # every one, not only the first
    for key, pattern in spec.items():
        where = (*at, key)
        try:
            if not is_operator(key):
                test = sub(pattern, where)
                reads_missing = isinstance(pattern, dict) and any(map(is_operator, pattern))
                fields.append(_field_or_missing(key, test) if reads_missing else _field(key, test))
            elif (compiler := operators.get(key)) is not None:
                own.append(compiler(pattern, sub, where))
            else:
                hint = suggest(key, operators) or f"; known: {' '.join(operators)}"
                raise PatternError(where, f"unknown operator '{key}'{hint}")
        except PatternError as exc:
            problems += exc.problems
    if problems:
        raise PatternError(*problems[0], *problems[1:])
    if not fields and len(own) == 1:
        return own[0]
    return _every(own + fields, needs_mapping=bool(fields))


def _every(tests: list[Test], *, needs_mapping: bool) -> Test:
    def every(v: Any) -> bool:
        if needs_mapping and not isinstance(v, dict):
            return False
        for test in tests:  # noqa: SIM110 - no generator made per message
            if not test(v):
                return False
        return True

    return every


def _field(key: str, test: Test) -> Test:
    return lambda v: key in v and test(v[key])


def _field_or_missing(key: str, test: Test) -> Test:
    return lambda v: test(v.get(key, MISSING))
