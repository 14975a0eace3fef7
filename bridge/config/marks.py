"""YAML containers that remember where each key and item starts, so errors point at LINE:COL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge.config.keypaths import KeyPath, dotted


class MarkedDict(dict[Any, Any]):
    """A mapping with the 0-based (line, column) of each key, and problems the parser saw."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[Any, tuple[int, int]] = {}
        self.problems: list[tuple[Any, str]] = []


class MarkedList(list[Any]):
    """A sequence with the 0-based (line, column) of each item."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[int, int]] = []


class RecursiveAlias(ValueError):
    """An alias refers to a node that contains it; JSON has no such values."""


def locate(doc: Any, path: KeyPath) -> tuple[int, int]:
    """1-based line and column of the deepest key (or list item) of ``path`` found in ``doc``."""
    where, node = (0, 0), doc
    for step in path:
        found = (
            node.marks.get(step) if isinstance(node, MarkedDict)
            else node.marks[step]
            if isinstance(node, MarkedList) and isinstance(step, int) and 0 <= step < len(node)
            else None
        )
        if found is None:
            break
        where, node = found, node[step]
    return where[0] + 1, where[1] + 1


def plain(value: Any) -> Any:
    """A copy of ``value`` made of plain dicts and lists, for the typed config."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def containers(doc: Any) -> list[tuple[KeyPath, Any]]:
    """Every mapping and sequence in ``doc`` with its path; raises RecursiveAlias on a cycle."""
    return list(_walk(doc, (), frozenset()))


def _walk(node: Any, path: KeyPath, stack: frozenset[int]) -> Iterator[tuple[KeyPath, Any]]:
    if id(node) in stack:
        raise RecursiveAlias(f"the alias at {dotted(path)} refers to itself")
    if isinstance(node, dict | list):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            yield from _walk(value, (*path, key), stack | {id(node)})
