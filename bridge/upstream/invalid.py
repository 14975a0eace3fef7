"""Invalid-frame accounting: text frames that are not JSON, counted and logged without flooding."""

from __future__ import annotations

from typing import Final

from bridge.stats.source import SourceStats
from bridge.upstream.actions import Notice

# The first invalid frame is logged, then at most one summary line per this many seconds.
INVALID_LOG_EVERY: Final = 60.0


class InvalidFrames:
    """When invalid text frames are worth a log line: the first one, then a summary of those
    since, once ``every`` seconds have passed (checked when the next one comes). Each is
    counted in ``stats.invalid``."""

    __slots__ = ("_every", "_logged_at", "_stats", "_unlogged", "forward")

    def __init__(self, forward: bool, stats: SourceStats | None = None,
                 every: float = INVALID_LOG_EVERY) -> None:
        self.forward, self._every, self._stats = forward, every, stats or SourceStats()
        self._logged_at: float | None = None
        self._unlogged = 0

    def seen(self, count: int, now: float) -> list[Notice]:
        """``count`` more invalid frames at ``now``: the line to log, if one is due."""
        self._stats.invalid += count
        if self._logged_at is None:
            self._logged_at = now
            action = "forwarding it raw" if self.forward else "dropping it"
            return [Notice(f"received a text frame that is not valid JSON, {action} (further "
                           f"ones are counted and summarised every {int(self._every)}s)")]
        self._unlogged += count
        if now - self._logged_at < self._every:
            return []
        line = f"{self._unlogged} more text frames that are not valid JSON since the last report"
        self._logged_at, self._unlogged = now, 0
        return [Notice(line)]
