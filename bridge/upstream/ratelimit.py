"""Rate limiting of everything sent upstream: exchanges disconnect clients that send too fast.

A token bucket decides when each send may go; the pacer holds the sends that must wait, in
order, with the time each may go. The wait is a deadline the driver sleeps to, never a sleep
here, so pacing is tested with a fake clock."""

from __future__ import annotations

import math
from collections import deque

from bridge.upstream.actions import Action, Send


class TokenBucket:
    """``messages`` per ``per`` seconds, bursting up to ``messages``; times are monotonic seconds
    passed in by the caller."""

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


class Pacer:
    """The sends of one source in order, each released once the bucket has its token (every
    send, when there is no bucket). ``next`` is when the first held send may go."""

    __slots__ = ("_bucket", "_held", "next")

    def __init__(self, bucket: TokenBucket | None) -> None:
        self._bucket = bucket
        self._held: deque[tuple[float, Send]] = deque()
        self.next = math.inf

    def twin(self) -> Pacer:
        """A pacer for another connection of the source: its own held sends, the same bucket."""
        return Pacer(self._bucket)

    @property
    def busy(self) -> bool:
        """Whether sends are held: anything sent now would queue behind them."""
        return bool(self._held)

    def pace(self, out: list[Action], now: float) -> list[Action]:
        """``out`` without the sends that must wait; those are held, in order."""
        bucket = self._bucket
        if bucket is None:
            return out
        kept: list[Action] = []
        for action in out:
            if isinstance(action, Send):
                wait = bucket.delay(now)
                if wait > 0 or self._held:
                    self._held.append((now + wait, action))
                    continue
            kept.append(action)
        self.next = self._held[0][0] if self._held else math.inf
        return kept

    def release(self, now: float) -> list[Action]:
        """The held sends whose time has come, in order."""
        out: list[Action] = []
        while self._held and self._held[0][0] <= now:
            out.append(self._held.popleft()[1])
        self.next = self._held[0][0] if self._held else math.inf
        return out

    def drop(self) -> list[Send]:
        """The connection ended: the held sends, which never went out."""
        held, self._held, self.next = [s for _, s in self._held], deque(), math.inf
        return held
