"""The deadlines of a connection together: its conversation's (a plan's wait, keepalive and
pong, a held heartbeat, quiet channels) and, for the live one, its HTTP steps' timers (``every``,
``subscribed``) and its age (``max_connection_age``). Each is a time the driver ticks at."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.messages import INVALID
from bridge.upstream.conversation import Conversation, Said
from bridge.upstream.recovery import Recovery

if TYPE_CHECKING:  # LiveTimers reads them; the successor (which renewal makes) uses the rest
    from bridge.upstream.lifecycle import Lifecycle
    from bridge.upstream.renewal import Renewal


def earliest(talk: Conversation) -> float:
    """The earliest deadline of ``talk``: a plan's wait, keepalive, a held heartbeat, a quiet
    channel."""
    return min(talk.plan.until, talk.watch.next, talk.beat.until)


def timed_out(talk: Conversation, now: float, last_rx: float) -> str | None:
    """The stage whose deadline passed ("auth", "subscribe", "heartbeat", "idle")."""
    held = "heartbeat" if talk.beat.timed_out(now) else None
    return talk.plan.timed_out(now) or held or talk.watch.timed_out(now, last_rx)


def due(talk: Conversation, now: float, recovery: Recovery) -> list[Said]:
    """The heartbeat, if due, and each ``expect_every`` step that went quiet sent again (no
    reconnect; counted under ``resubscribe``)."""
    render, plan = talk.render, talk.plan
    out = render.guard(lambda at, _: talk.beat.due(talk.watch, at), now, None)
    for notice, items in talk.watch.quiet(now, talk.cfg, recovery):
        out.append(notice)
        if plan.extend(items):
            out += render.guard(plan.advance, now, INVALID)
    return out


class LiveTimers:
    """The live connection's deadlines: its conversation's (``life.talk``, a successor's once
    it took over), its HTTP steps' and its age (``renew``)."""

    __slots__ = ("_life", "_renew")

    def __init__(self, life: Lifecycle, renew: Renewal) -> None:
        self._life, self._renew = life, renew

    @property
    def next(self) -> float:
        return min(earliest(self._life.talk), self._life.http.next, self._renew.until)

    def timed_out(self, now: float, last_rx: float) -> str | None:
        return timed_out(self._life.talk, now, last_rx)

    def due(self, now: float, recovery: Recovery) -> list[Said]:
        """What is due by ``now``: a renewal for age, the conversation's, the HTTP steps'."""
        return [*self._renew.aged(now), *due(self._life.talk, now, recovery),
                *self._life.http.due(now)]
