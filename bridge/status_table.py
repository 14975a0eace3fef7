"""The `ws-bridge status` table, from two snapshots: kept apart from them so both stay small."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.stats.snapshot import Snapshot, SourceSnapshot
from bridge.upstream.pool_state import items_text


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


def _state(src: SourceSnapshot) -> str:
    """The state, a pool's connections and items, and why the latest connection ended."""
    text = src.state
    if src.items is not None:
        up = sum(src.connections_up.values())
        text = items_text(up, len(src.connections_up), src.items_up or 0, src.items)
    return f"{text} ({src.last_error})" if src.last_error else text


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join(r[i].ljust(w) if i < left else r[i].rjust(w) for i, w in enumerate(width))
            .rstrip() for r in [head, *rows]]


def format_status_table(prev: Snapshot | None, cur: Snapshot) -> str:
    """The `ws-bridge status` output: one row per source, then one per sink."""
    src = [(s.name, _state(s), _rate(prev, cur, s), _age(s.last_message_age),
            str(sum(s.reconnects.values())), str(s.rollovers)) for s in cur.sources]
    snk = [(s.name, s.type, "up" if s.up else "down", str(s.queue_depth)) for s in cur.sinks]
    lines = _table(("SOURCE", "STATE", "MSGS/S", "LAST MSG", "RECONNECTS", "ROLLOVERS"), src, 2)
    return "\n".join([*lines, "", *_table(("SINK", "TYPE", "STATE", "QUEUE"), snk, 3)]) + "\n"
