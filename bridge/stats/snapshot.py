"""Point-in-time copies of source and sink counters, read only at scrape time, never per message.
Timestamps in one Snapshot share its taker's clock: judge it with ``ready(snapshot.taken_at)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class SourceSnapshot:
    """One source's state and lifetime counters; ages and latencies are in seconds."""
    name: str
    state: str
    connected_since: float | None
    received: int
    bytes: int
    invalid: int
    forwarded: Mapping[str, int]  # by sink
    dropped: Mapping[str, int]  # by reason
    reconnects: Mapping[str, int]  # by reason
    last_message_age: float | None
    handshake_seconds: float | None
    grace_until: float | None
    # defaulted: an older daemon's /status does not have them
    recovery: Mapping[str, int] = field(default_factory=dict)  # by event
    sent: int = 0
    outgoing_dropped: Mapping[str, int] = field(default_factory=dict)  # by reason
    held: Mapping[str, int] = field(default_factory=dict)  # held back by routes, by reason
    undecodable: Mapping[str, int] = field(default_factory=dict)  # frames, by reason
    rejected: int = 0  # refusals by the server
    last_error: str | None = None  # why the latest connection ended (a pool: a down one's)
    # a pool's connections, by number: 1 when connected, and their reconnects; its items
    connections_up: Mapping[str, int] = field(default_factory=dict)
    connection_reconnects: Mapping[str, int] = field(default_factory=dict)
    items: int | None = None
    items_up: int | None = None  # carried by connected connections, not refused
    rollovers: int = 0  # connections replaced by a successor subscribed first
    down_seconds: float = 0.0  # since it stopped being connected (or started); 0 while connected
    grace_seconds: float | None = None  # how long it may be down and still count as ready

@dataclass(frozen=True)
class SinkSnapshot:
    """One sink's health and lifetime counters."""
    name: str
    type: str
    up: bool
    queue_depth: int
    published: int
    errors: int
    dropped: Mapping[str, int]  # by reason
    publish_latency: float | None
    queue_limit: int | None = None  # the queue's bound (max_messages)
    oldest_age: float | None = None  # seconds the oldest row waits in a durable outbox

def _plain(item: SourceSnapshot | SinkSnapshot) -> dict[str, Any]:
    """Field values as JSON types; a Counter becomes a plain dict."""
    return {f.name: dict(v) if isinstance(v := getattr(item, f.name), Mapping) else v
            for f in fields(item)}

def _known(raw: Mapping[str, Any], cls: type[Any]) -> Any:
    """Ignore keys this version does not know, so a newer daemon still answers an older CLI;
    a key an older daemon lacks takes its field's default."""
    return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})

@dataclass(frozen=True)
class Snapshot:
    """Every source and sink at ``taken_at``."""
    sources: tuple[SourceSnapshot, ...]
    sinks: tuple[SinkSnapshot, ...]
    taken_at: float

    def to_json(self) -> dict[str, Any]:
        return {"sources": [_plain(s) for s in self.sources],
                "sinks": [_plain(s) for s in self.sinks], "taken_at": self.taken_at}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Snapshot:
        return cls(tuple(_known(s, SourceSnapshot) for s in doc["sources"]),
                   tuple(_known(s, SinkSnapshot) for s in doc["sinks"]), float(doc["taken_at"]))

    def ready(self, now: float) -> tuple[bool, list[str]]:
        """Every source connected or within its grace period, and every sink up; else why not."""
        late = [s for s in self.sources if s.grace_until is None or s.grace_until <= now]
        why = [f"source {s.name}: {s.state}" + (", grace period over" if s.grace_until else "")
               for s in late if s.state != "connected"]
        why += [f"sink {s.name}: down" for s in self.sinks if not s.up]
        return not why, why
