"""When a successor connection may take over: subscribed, and none of its sends held by the
source's rate limit (its own pacer on the source's bucket), so nothing is left behind."""

from __future__ import annotations

from bridge.upstream.actions import Action
from bridge.upstream.handoff import Handover
from bridge.upstream.ratelimit import Pacer


class Takeover:
    """A successor's sends, paced; ``Handover`` after them once it is ``subscribed`` and its
    pacer holds none. ``next``: when a held send may go (``release`` then)."""

    __slots__ = ("_pacer", "_ready")

    def __init__(self, pacer: Pacer) -> None:
        self._pacer, self._ready = pacer, False

    @property
    def next(self) -> float:
        return self._pacer.next

    def release(self, now: float) -> list[Action]:
        """The held sends whose time has come."""
        return self._pacer.release(now) if now >= self._pacer.next else []

    def out(self, actions: list[Action], subscribed: bool, now: float) -> list[Action]:
        """``actions`` as they go now (held sends wait), then ``Handover`` if it is time."""
        self._ready = self._ready or subscribed
        out = self._pacer.pace(actions, now)
        if self._ready and not self._pacer.busy:
            self._ready = False
            out.append(Handover())
        return out
