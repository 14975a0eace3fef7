"""The typed ``pool`` of a source: its items and how they are spread over connections."""

from __future__ import annotations

from dataclasses import dataclass

ITEMS = "{items}"  # in a URL: the connection's items; in a message: a batch of them
# What a subscribe or unsubscribe ``send`` with ``each`` may hold, filled per connection:
# checked as templates with these stand-ins.
EACH_PLACEHOLDERS = {"items": "", "item": ""}
UNBOUNDED = 1 << 62  # the per_connection of a source with items but no pool: one connection


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """``items`` spread ``per_connection`` a connection over at most ``max_connections``,
    opened ``connect_every`` seconds apart; ``url_join`` joins them into the URL's {items}."""
    items: tuple[str, ...]
    per_connection: int = UNBOUNDED
    max_connections: int = 1
    connect_every: float = 0.0
    url_join: str = ","

    def same_but_items(self, other: PoolSpec) -> bool:
        """Whether ``other`` differs from this pool in its items alone (a reload that only
        adds or removes items touches only the connections that carry them)."""
        return (self.per_connection, self.max_connections, self.connect_every,
                self.url_join) == (other.per_connection, other.max_connections,
                                   other.connect_every, other.url_join)
