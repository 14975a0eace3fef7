"""Point-in-time copies of source and sink counters, read only at scrape time, never per message.
Timestamps in one Snapshot share its taker's clock: judge it with ``ready(snapshot.taken_at)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
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

def _plain(item: SourceSnapshot | SinkSnapshot) -> dict[str, Any]:
    """Field values as JSON types; a Counter becomes a plain dict."""
    return {f.name: dict(v) if isinstance(v := getattr(item, f.name), Mapping) else v
            for f in fields(item)}

def _known(raw: Mapping[str, Any], cls: type[Any]) -> Any:
    """Ignore keys this version does not know, so a newer daemon still answers an older CLI."""
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

def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{seconds:.1f}s" if seconds < 10 else f"{seconds // size:.0f}{unit}"
    return f"{seconds // 86400:.0f}d"

def _rate(prev: Snapshot | None, cur: Snapshot, src: SourceSnapshot) -> str:
    """Messages per second between two snapshots; "-" without a usable earlier one."""
    old = {s.name: s.received for s in prev.sources} if prev else {}
    span = cur.taken_at - prev.taken_at if prev else 0.0
    if src.name not in old or span <= 0 or src.received < old[src.name]:
        return "-"  # first look, a new source, or a restarted daemon
    return f"{(src.received - old[src.name]) / span:.1f}"

def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join(r[i].ljust(w) if i < left else r[i].rjust(w) for i, w in enumerate(width))
            .rstrip() for r in [head, *rows]]

def format_status_table(prev: Snapshot | None, cur: Snapshot) -> str:
    """The `ws-bridge status` output: one row per source, then one per sink."""
    src = [(s.name, s.state, _rate(prev, cur, s), _age(s.last_message_age),
            str(sum(s.reconnects.values()))) for s in cur.sources]
    snk = [(s.name, s.type, "up" if s.up else "down", str(s.queue_depth)) for s in cur.sinks]
    lines = _table(("SOURCE", "STATE", "MSGS/S", "LAST MSG", "RECONNECTS"), src, 2)
    return "\n".join([*lines, "", *_table(("SINK", "TYPE", "STATE", "QUEUE"), snk, 3)]) + "\n"
