"""Key paths into a config document, and walks over a document of any shape.

Every problem is reported at a key path (``sources[0].auth.timeout``). The semantic checks and
the secret finder run even when the schema found errors, so these walks accept any shape and
skip what is not a mapping or a list instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KeyPath = tuple[str | int, ...]
Report = Callable[[KeyPath, str], None]  # how a check reports one problem: where, and what


def dotted(path: KeyPath) -> str:
    """``("sources", 0, "auth", "timeout")`` as ``sources[0].auth.timeout``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}" if out else str(step)
    return out


def leaves(value: Any, path: KeyPath) -> list[tuple[KeyPath, Any]]:
    """Every scalar under ``value``, with its key path below ``path``."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, value)]


def entries(value: Any) -> list[Any]:
    """The ``(name, value)`` pairs of a mapping (``sinks``, ``headers``); none for anything else."""
    return list(value.items()) if isinstance(value, dict) else []


def records(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a list (``sources``, ``routes``) with their indexes; others are skipped."""
    items = value if isinstance(value, list) else []
    return [(i, v) for i, v in enumerate(items) if isinstance(v, dict)]
