"""Frames the session cannot read: text that is not JSON, frames ``frames`` cannot decode.
Each is counted (undecodable ones by reason) and logged without flooding."""

from __future__ import annotations

from typing import Final

from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.stats.source import SourceStats
from bridge.upstream.actions import Action, Deliver, Notice

# The first invalid frame is logged, then at most one summary line per this many seconds.
INVALID_LOG_EVERY: Final = 60.0


class LogEvery:
    """When frames of one kind are worth a log line: the first one, then a summary of those
    since, once ``every`` seconds have passed (checked when the next one comes)."""

    __slots__ = ("_every", "_logged_at", "_unlogged")

    def __init__(self, every: float = INVALID_LOG_EVERY) -> None:
        self._every = every
        self._logged_at: float | None = None
        self._unlogged = 0

    def seen(self, now: float, first: str, more: str) -> list[Notice]:
        """One more at ``now``: ``first`` for the first one, else a summary of ``more`` if due."""
        if self._logged_at is None:
            self._logged_at = now
            return [Notice(f"{first} (further ones are counted and summarised every "
                           f"{int(self._every)}s)")]
        self._unlogged += 1
        if now - self._logged_at < self._every:
            return []
        line = f"{self._unlogged} more {more} since the last report"
        self._logged_at, self._unlogged = now, 0
        return [Notice(line)]


class InvalidFrames:
    """Counts frames that are not JSON (``stats.invalid``) and frames that cannot be decoded
    (``stats.undecodable``, by reason), each kind logged by its own ``LogEvery``."""

    __slots__ = ("_every", "_logs", "_stats", "forward")

    def __init__(self, forward: bool, stats: SourceStats, every: float = INVALID_LOG_EVERY
                 ) -> None:
        self.forward, self._stats = forward, stats
        self._logs: dict[str, LogEvery] = {}
        self._every = every

    def _log(self, kind: str) -> LogEvery:
        log = self._logs.get(kind)
        if log is None:
            log = self._logs[kind] = LogEvery(self._every)
        return log

    def seen(self, now: float) -> list[Notice]:
        """A text frame that is not valid JSON, at ``now``: the line to log, if one is due."""
        self._stats.invalid += 1
        action = "forwarding it raw" if self.forward else "dropping it"
        first = f"received a text frame that is not valid JSON, {action}"
        return self._log("json").seen(now, first, "text frames that are not valid JSON")

    def undecodable(self, error: Undecodable, frame: Message, now: float, delivering: bool
                    ) -> list[Action]:
        """``frame``, which ``frames`` could not decode (``error`` says why), came at ``now``:
        the line to log, if due, and ``frame`` to deliver as received under ``on_invalid:
        forward`` when the session is ``delivering`` (subscribing or connected)."""
        self._stats.undecodable[error.reason] += 1
        action = "forwarding it raw" if self.forward else "dropping it"
        first = f"received a frame that cannot be decoded ({error}), {action}"
        out: list[Action] = [*self._log(error.reason).seen(now, first,
                                                            f"undecodable frames ({error.reason})")]
        return [*out, Deliver(frame)] if self.forward and delivering else out
