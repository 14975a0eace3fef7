"""An MQTT sink's drops as episodes: one line when a reason starts dropping, one when it stops.

A queue that stays at its limit while the broker takes a batch at a time drops on every batch;
logging each would be a line per batch, so drops are reported as episodes instead. Pure: the
sink passes in its counters and the clock, and logs the lines it gets back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

QUIET: Final = frozenset({"shutdown", "invalid_topic"})  # logged where they are counted


class DropLog:
    """Drop counters as episodes: one line when a reason starts dropping, one when it stops.

    ``check`` runs after each drop and each take. An episode ends at a settling check once no
    drop came for ``quiet`` seconds and, for ``queue_full_*``, there is room: a queue that stays
    at its limit while the broker takes a batch at a time is one episode, not one per batch."""

    def __init__(self, quiet: float = 1.0) -> None:
        self.quiet = quiet
        self._seen: dict[str, int] = {}
        self._open: dict[str, list[float]] = {}  # reason -> [since, count before, last drop]

    @property
    def open(self) -> bool:
        """An episode waits for its summary: the sink must check again, settling, later."""
        return bool(self._open)

    def check(self, dropped: Mapping[str, int], now: float, *, full: bool = False,
              settle: bool = False) -> list[str]:
        """Lines for episodes that started since the last check and, when ``settle``, for
        those that ended (``full``: the queue is still at its limit)."""
        lines = []
        for reason, total in dropped.items():
            before = self._seen.get(reason, 0)
            self._seen[reason] = total
            if total > before and reason in self._open:
                self._open[reason][2] = now
            elif total > before and reason not in QUIET:
                self._open[reason] = [now, before, now]
                lines.append(f"dropping messages ({reason}); a summary follows when it stops")
        for reason, (_, _, last) in list(self._open.items()) if settle else ():
            if now - last >= self.quiet and not (full and reason.startswith("queue_full")):
                lines.append(self._summary(reason, dropped.get(reason, 0), now))
        return lines

    def end(self, dropped: Mapping[str, int], now: float) -> list[str]:
        """Summaries of every open episode (the sink stops)."""
        return [self._summary(r, dropped.get(r, 0), now) for r in list(self._open)]

    def _summary(self, reason: str, total: int, now: float) -> str:
        since, before, _ = self._open.pop(reason)
        return (f"stopped dropping ({reason}): {int(total - before)} messages dropped "
                f"in {now - since:.1f}s")
