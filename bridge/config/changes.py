"""What a reload changed in a source: its settings by name, and the two groups applied without
a new connection: the subscriptions (on the live connection) and the routes (a new router).
Any other change makes the source reconnect. Pure."""

from __future__ import annotations

import dataclasses

from bridge.config.model import SourceConfig

SUBSCRIPTION_FIELDS = frozenset({"subscribe", "unsubscribe", "items"})
ROUTING_FIELDS = frozenset({"routes"})


def changed_fields(old: SourceConfig, new: SourceConfig) -> set[str]:
    """The names of the source settings a reload changed; a pool whose items alone changed
    counts as a change of its subscriptions (``items``), applied on the live connections."""
    changed = {
        f.name for f in dataclasses.fields(SourceConfig)
        if getattr(old, f.name) != getattr(new, f.name)
    }
    if "pool" in changed and old.pool and new.pool and old.pool.same_but_items(new.pool):
        changed = changed - {"pool"} | {"items"}
    return changed
