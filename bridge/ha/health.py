"""The health values Home Assistant's sensors read: one JSON object per source and one for the
bridge, from two snapshots (rates are the change since the previous one). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.stats.snapshot import Snapshot, SourceSnapshot

Values = dict[str, float | int | str | None]


class Health:
    """Turns snapshots into health values; remembers the previous counts for the rates."""

    def __init__(self, started: float) -> None:
        self._started = started  # the snapshot clock's time when the bridge started
        self._before: dict[str, tuple[int, float]] = {}  # source -> (received, taken_at)

    def values(self, snap: Snapshot, sinks_of: Mapping[str, set[str]],
               config_path: str) -> tuple[Values, dict[str, Values]]:
        """The bridge's values and each source's; ``sinks_of`` names the sinks each source's
        routes lead to (its queue depth is theirs)."""
        depth = {s.name: s.queue_depth for s in snap.sinks}
        sources = {s.name: self._source(s, snap.taken_at, sum(
            depth.get(n, 0) for n in sinks_of.get(s.name, set()))) for s in snap.sources}
        self._before = {s.name: (s.received, snap.taken_at) for s in snap.sources}
        total = sum(float(v["messages_per_second"] or 0) for v in sources.values())
        bridge: Values = {
            "uptime": round(max(0.0, snap.taken_at - self._started)),
            "sources_connected": sum(1 for s in snap.sources if s.state == "connected"),
            "sources": len(snap.sources),
            "messages_per_second": round(total, 2),
            "config": config_path,
        }
        return bridge, sources

    def _source(self, s: SourceSnapshot, now: float, queue_depth: int) -> Values:
        received, then = self._before.get(s.name, (s.received, now))
        rate = (s.received - received) / (now - then) if now > then else None
        age = s.last_message_age
        return {
            "state": s.state,
            "messages_per_second": None if rate is None else round(max(0.0, rate), 2),
            "last_message_age": None if age is None else round(age, 1),
            "reconnects": sum(s.reconnects.values()),
            "dropped": sum(s.dropped.values()) + sum(s.outgoing_dropped.values()),
            "queue_depth": queue_depth,
        }
