"""A token bucket: exchanges disconnect clients that send too fast, so every send takes a token."""

from __future__ import annotations


class TokenBucket:
    """``messages`` per ``per`` seconds, bursting up to ``messages``; times are monotonic seconds
    passed in by the caller, so pacing is tested with a fake clock and no sleeping."""

    __slots__ = ("_at", "_rate", "_tokens", "capacity")

    def __init__(self, messages: int, per: float, now: float) -> None:
        self.capacity = float(messages)
        self._rate = messages / per if per > 0 else float("inf")  # tokens per second
        self._tokens, self._at = self.capacity, now

    def delay(self, now: float) -> float:
        """Take a token: how long to wait before sending (0.0: now). The token is reserved, so
        callers that each wait their delay go out in turn, ``messages`` per ``per``."""
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self._rate)
            self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0.0 else -self._tokens / self._rate
