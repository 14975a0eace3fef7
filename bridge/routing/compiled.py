"""What every pattern operator's compiler shares: its signature, PatternError and ``MISSING``.

A compiler takes the operand, a function compiling a sub-pattern and where the operand is, and
returns the test, or raises PatternError. ``MISSING`` is what a test sees for an absent key
(``$exists: false``, ``$ne``, ``$nin`` and ``$not`` match it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Test = Callable[[Any], bool]
Where = tuple[str | int, ...]
Compile = Callable[[Any, Where], Test]
Compiler = Callable[[Any, Compile, Where], Test]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class PatternError(ValueError):
    """A pattern that cannot be compiled: each problem with its key path inside the pattern."""

    def __init__(self, at: Where, message: str, *more: tuple[Where, str]) -> None:
        super().__init__(message)
        self.at, self.message = at, message
        self.problems = [(at, message), *more]
