"""A successor connection's own states (through the table; the source's stay as they are) and
when it may take over: subscribed, and none of its sends held by the source's rate limit (its
own pacer on the source's rate-limit window), so nothing is left behind."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.upstream.actions import Action
from bridge.upstream.handoff import Handover
from bridge.upstream.ratelimit import Pacer
from bridge.upstream.state import ConnState, Event, transition


class Takeover:
    """A successor's ``state``; its sends, paced; ``Handover`` after them once it is
    subscribed and its pacer holds none. ``next``: when a held send may go (``release``)."""

    __slots__ = ("_pacer", "_ready", "state")

    def __init__(self, pacer: Pacer) -> None:
        self._pacer, self._ready, self.state = pacer, False, ConnState.CONNECTING

    @property
    def next(self) -> float:
        return self._pacer.next

    def release(self, now: float) -> list[Action]:
        """The held sends whose time has come."""
        return self._pacer.release(now) if now >= self._pacer.next else []

    def said(self, said: Sequence[Action | Event], now: float) -> list[Action]:
        """What its conversation said: states entered, the actions as they go now (held sends
        wait), then ``Handover`` if it is time."""
        actions: list[Action] = []
        for item in said:
            if isinstance(item, Event):
                self.state = transition(self.state, item)
                self._ready = self._ready or self.state is ConnState.CONNECTED
            else:
                actions.append(item)
        out = self._pacer.pace(actions, now)
        if self._ready and not self._pacer.busy:
            self._ready = False
            out.append(Handover())
        return out
