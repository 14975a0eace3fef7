"""Builds a source's ``pool``: its items, from a subscribe entry's ``each``/``each_file`` or the
pool's own, and every problem with them (none, twice, duplicates, more than the pool holds)."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.items import Read, items_of
from bridge.config.keypaths import KeyPath, leaves
from bridge.config.pooling import ITEMS, PoolSpec
from bridge.routing.text import PLACEHOLDER

_SPACING = {"connect_every": "connect_every"}


def build_pool(raw: dict[str, Any], path: KeyPath, c: Collector, read: Read) -> PoolSpec | None:
    """The pool of one source (a source with ``each`` but no ``pool`` gets one connection),
    or None when it has no items at all."""
    pool = raw.get("pool")
    places: list[tuple[KeyPath, Any]] = [
        (("subscribe", i), s) for i, s in enumerate(raw.get("subscribe", []))
        if "each" in s or "each_file" in s]
    places += [(("pool",), pool)] if pool and ("each" in pool or "each_file" in pool) else []
    url_items = ITEMS in raw["url"]
    _check_sends(raw, path, c)
    if url_items and pool is None:
        c.add((*path, "url"), "{items} in the url needs `pool` (the items of each connection)")
    if not places:
        if pool is not None:
            c.add((*path, "pool"), "a pool needs items: give them with subscribe[].each "
                  "(or each_file), or with pool.each and {items} in the url")
        return None
    if len(places) > 1:
        c.add((*path, *places[1][0]), "items are given in more than one place "
              f"(also {'.'.join(map(str, places[0][0]))}); give them once")
    where, holder = (*path, *places[0][0]), places[0][1]
    if holder is pool and not url_items:
        c.add((*path, "url"), "pool.each puts the items into the url: write {items} in it")
    items = items_of(holder, where, c, read)
    if pool is None:
        return PoolSpec(items)
    spec = PoolSpec(items, pool["per_connection"], pool.get("max_connections", 100),
                    c.seconds(pool, (*path, "pool"), _SPACING).get("connect_every", 0.0),
                    pool.get("url_join", ","))
    if len(items) > spec.per_connection * spec.max_connections:
        c.add((*path, "pool"), f"{len(items)} items do not fit in max_connections "
              f"({spec.max_connections}) connections of per_connection "
              f"({spec.per_connection}) items; raise one of them")
    return spec


def _check_sends(raw: dict[str, Any], path: KeyPath, c: Collector) -> None:
    """{items} and {item} only in a message sent per batch of items (``each``), and {item},
    one item, only for ``batch: 1``."""
    for key in ("subscribe", "unsubscribe"):
        for i, step in enumerate(raw.get(key, [])):
            each = "each" in step or "each_file" in step
            single = step.get("batch", 1) == 1
            for where, name in _placeholders(step.get("send"), (*path, key, i, "send")):
                if not each:
                    c.add(where, f"{{{name}}} is the items of `each`: add each (or each_file)")
                elif name == "item" and not single:
                    c.add(where, "{item} is one item, for batch: 1; with a larger batch use "
                          "{items}")
    if any(s.get("each") == "subscribe" for s in raw.get("unsubscribe", [])) and \
            not any("each" in s or "each_file" in s for s in raw.get("subscribe", [])):
        c.add((*path, "unsubscribe"), "each: subscribe needs a subscribe entry with each")


def _placeholders(send: Any, where: KeyPath) -> list[tuple[KeyPath, str]]:
    """Where ``send`` says {items} or {item}, and which."""
    return [(at, m.group(1)) for at, leaf in leaves(send, where) if isinstance(leaf, str)
            for m in PLACEHOLDER.finditer(leaf)
            if m.group(1) in ("items", "item") and not m.group(2)]
