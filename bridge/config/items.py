"""Pool items as the config gives them: an inline ``each`` list or an ``each_file`` (one item a
line, ``#`` comments), each item once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath

Read = Callable[[str], str]  # a file's text, by its path as written in the config


def items_of(holder: dict[str, Any], where: KeyPath, c: Collector, read: Read) -> tuple[str, ...]:
    """The items of an ``each`` list or an ``each_file``, each once, in order."""
    if "each" in holder and "each_file" in holder:
        c.add((*where, "each_file"), "give each or each_file, not both")
    if "each" in holder:
        items = [str(item) for item in holder["each"]]
        if not items:
            c.add((*where, "each"), "each is empty: list at least one item")
    else:
        items = _read_items(holder["each_file"], (*where, "each_file"), c, read)
    twice = [item for item, n in Counter(items).items() if n > 1]
    if twice:
        key = "each" if "each" in holder else "each_file"
        shown = ", ".join(repr(item) for item in twice[:5]) + (", ..." if len(twice) > 5 else "")
        c.add((*where, key), f"duplicate items: {shown} (each item once)")
    return tuple(dict.fromkeys(items))


def _read_items(file: str, where: KeyPath, c: Collector, read: Read) -> list[str]:
    """One item a line; blank lines and ``#`` comments skipped."""
    try:
        text = read(file)
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        c.add(where, f"cannot read the items file {file}: {why}")
        return []
    items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    items = [item for item in items if item]
    if not items:
        c.add(where, f"the items file {file} lists no items")
    return items
