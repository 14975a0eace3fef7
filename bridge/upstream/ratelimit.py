"""Rate limiting of everything sent upstream: exchanges disconnect clients that send too fast.

A window of the latest sends decides when each send may go (never more than the limit in any
window of its length: a token bucket that refills while it bursts would let one more through and
get the connection closed); the pacer holds the sends that must wait, in order, with the time
each may go. The wait is a deadline the driver sleeps to, never a sleep here, so pacing is
tested with a fake clock."""

from __future__ import annotations

import math
from collections import deque
from typing import Final

from bridge.upstream.actions import Action, Send

SLACK: Final = 0.05  # of the window: what a message's way to the upstream may add to a gap


class SendWindow:
    """At most ``messages`` sends in any window of ``per`` seconds, as exchanges count what a
    client sends: a send waits until ``per`` (and ``SLACK`` of it more, for the way to the
    upstream, which counts on arrival) has passed since the send ``messages`` before it. Times
    are monotonic seconds passed in by the caller."""

    __slots__ = ("_sent", "_span", "capacity")

    def __init__(self, messages: int, per: float) -> None:
        self.capacity = messages
        self._span = max(per, 0.0) * (1.0 + SLACK)
        self._sent: deque[float] = deque(maxlen=messages)  # the latest sends' times

    def delay(self, now: float) -> float:
        """Take a place: how long to wait before sending (0.0: now). The place is reserved, so
        callers that each wait their delay go out in turn, never ``messages`` + 1 in a window."""
        at = max(now, self._sent[0] + self._span) if len(self._sent) == self.capacity else now
        self._sent.append(at)
        return at - now


class Pacer:
    """The sends of one source in order, each released once the window has room for it (every
    send, when there is no window). ``next`` is when the first held send may go."""

    __slots__ = ("_held", "_window", "next")

    def __init__(self, window: SendWindow | None) -> None:
        self._window = window
        self._held: deque[tuple[float, Send]] | None = None  # made when a send is first held
        self.next = math.inf

    def twin(self) -> Pacer:
        """A pacer for another connection of the source: its own held sends, the same window."""
        return Pacer(self._window)

    @property
    def busy(self) -> bool:
        """Whether sends are held: anything sent now would queue behind them."""
        return bool(self._held)

    def pace(self, out: list[Action], now: float) -> list[Action]:
        """``out`` without the sends that must wait; those are held, in order."""
        window = self._window
        if window is None:
            return out
        kept: list[Action] = []
        for action in out:
            if isinstance(action, Send):
                wait = window.delay(now)
                if wait > 0 or self._held:
                    if self._held is None:
                        self._held = deque()
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
        held, self._held, self.next = [s for _, s in self._held or ()], None, math.inf
        return held
