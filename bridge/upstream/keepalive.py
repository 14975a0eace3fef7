"""One connection's keepalive deadlines: the heartbeat, the wait for its pong, the idle timeout."""

from __future__ import annotations

import math

from bridge.config.specs import HeartbeatSpec


class Keepalive:
    """When to send the next heartbeat, until when its pong may take, and when a silent
    connection counts as idle. Times are monotonic seconds passed in; ``inf`` is never.

    Idle moves lazily: a message only notes the time it came (the session's ``last_rx``),
    and ``timed_out`` moves a passed idle deadline that a later message made stale."""

    __slots__ = ("_beat", "_every", "_idle", "_idle_at", "_next_beat", "_on", "_pong_until")

    def __init__(self, heartbeat: HeartbeatSpec | None, idle_timeout: float, now: float) -> None:
        self._beat, self._idle, self._on = heartbeat, idle_timeout, False
        # the interval; None until a template interval (``interval_from``) is known
        self._every = heartbeat.interval if heartbeat and not heartbeat.interval_from else None
        self._idle_at = now + idle_timeout if idle_timeout > 0 else math.inf
        self._next_beat = self._pong_until = math.inf  # the heartbeat starts on CONNECTED

    @property
    def next(self) -> float:
        """The earliest deadline; idle is lazy, so it may come early."""
        return min(self._next_beat, self._pong_until, self._idle_at)

    def connected(self, now: float) -> None:
        """CONNECTED: the first heartbeat goes one interval from now, if it is known."""
        self._on = True
        if self._beat is not None and self._every is not None:
            self._next_beat = now + self._every

    def pace(self, every: float, now: float) -> None:
        """The interval is now ``every`` seconds; a heartbeat that was waiting for it to be
        known starts one interval from now (once CONNECTED)."""
        waiting, self._every = self._every is None, every
        if waiting and self._on and self._beat is not None:
            self._next_beat = now + every

    def timed_out(self, now: float, last_rx: float) -> str | None:
        """The deadline that passed, "heartbeat" (no pong) or "idle", or None."""
        if now >= self._idle_at:
            self._idle_at = last_rx + self._idle
        if now >= self._pong_until:
            return "heartbeat"
        return "idle" if now >= self._idle_at else None

    def beat(self, now: float) -> HeartbeatSpec | None:
        """The heartbeat to send now, if one is due; its pong is awaited from now on."""
        beat, every = self._beat, self._every
        if beat is None or every is None or now < self._next_beat:
            return None
        self._next_beat = now + every
        if beat.expect is not None and self._pong_until == math.inf:
            self._pong_until = now + beat.timeout
        return beat

    def pong(self, value: object, text: str | None, connected: bool) -> bool:
        """Whether ``value`` (``text``) is the heartbeat's pong (it then ends the wait)."""
        expect = self._beat.expect if self._beat is not None else None
        if expect is None or not connected or not expect.matches(value, text):
            return False
        self._pong_until = math.inf
        return True
