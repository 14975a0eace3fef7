"""Per-subscription liveness (``expect_every``): which subscribe steps went quiet, lazily timed."""

from __future__ import annotations

import math
from typing import Any

from bridge.config.specs import Step


class Quiet:
    """The quiet deadline of each subscribe step with ``expect_every``, from CONNECTED on.

    Like idle, the deadlines move lazily: a message only notes when its step last heard
    from (a ``when`` match, or anything without ``when``); ``due`` moves a passed deadline
    that a later message made stale, and only then decides that the step went quiet."""

    __slots__ = ("_at", "_last", "_watch", "active", "next")

    def __init__(self, steps: tuple[Step, ...], now: float) -> None:
        self._watch = [(i, s) for i, s in enumerate(steps) if s.expect_every > 0]
        self._last = [now] * len(self._watch)
        self._at = [now + s.expect_every for _, s in self._watch]
        self.active = bool(self._watch)
        self.next = min(self._at, default=math.inf)  # the earliest deadline: tick() then

    def seen(self, value: Any, text: str | None, now: float) -> None:
        """A message arrived: it keeps alive every step it belongs to."""
        for k, (_, step) in enumerate(self._watch):
            if step.when is None or step.when.matches(value, text):
                self._last[k] = now

    def due(self, now: float) -> list[int]:
        """The indexes of the steps quiet for their whole ``expect_every`` by ``now``; each
        of them is timed again from ``now``, the send that is about to revive it."""
        quiet = []
        for k, (i, step) in enumerate(self._watch):
            if now < self._at[k]:
                continue
            if now >= self._last[k] + step.expect_every:
                quiet.append(i)
                self._last[k] = now
            self._at[k] = self._last[k] + step.expect_every
        self.next = min(self._at, default=math.inf)
        return quiet


NEVER = Quiet((), 0.0)  # no step is watched: before CONNECTED, or none has expect_every
