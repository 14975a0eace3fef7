"""A successor connection (``rollover: overlap``): the whole session run on a new connection
beside the live one, which goes on delivering until the successor is subscribed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bridge.errors import SessionTimeout, SourceError
from bridge.messages import INVALID, Message
from bridge.upstream.actions import Action, Fail
from bridge.upstream.conversation import Conversation
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.ratelimit import Pacer
from bridge.upstream.recovery import KEEP, Recovery
from bridge.upstream.state import ConnState
from bridge.upstream.steps import HttpSteps
from bridge.upstream.takeover import Takeover
from bridge.upstream.timers import due, earliest, timed_out

if TYPE_CHECKING:
    from bridge.upstream.renewal import Renewal

_DELIVERING = (ConnState.SUBSCRIBING, ConnState.CONNECTED)


class Successor:
    """One connection's session apart from the source's: its own conversation (plan,
    ``{seq}``), the source's captured values and recovery (dedup removes what both
    connections deliver). Its states go through the table, but they are its own: the source
    stays CONNECTED. Its sends pass ``pacer`` (the source's rate limit). Events from its
    driver, actions out, like the session: ``start``, ``screen``, ``tick`` once ``deadline``
    has come; ``Handover`` when its plan is done and its sends are out, then ``handover``;
    ``lost`` when it ends before."""

    __slots__ = ("_http", "_recovery", "_renewal", "_take", "last_rx", "opened", "talk")

    def __init__(self, talk: Conversation, recovery: Recovery, renewal: Renewal,
                 pacer: Pacer, http: HttpSteps) -> None:
        self.talk, self._recovery, self._renewal, self._http = talk, recovery, renewal, http
        self.last_rx = self.opened = 0.0
        self._take = Takeover(pacer)

    def connecting(self, now: float) -> list[Action]:
        """Before it opens: its ``connect`` HTTP steps (``Fetch``, see ``fetched``), then
        ``Dial`` (the URL and headers rendered with their answers), or a ``Fail``."""
        return self._http.begin(now)

    def fetched(self, request: HttpRequest, outcome: HttpResult | str, now: float
                ) -> list[Action]:
        return self._http.fetched(request, outcome, now)

    def start(self, now: float) -> list[Action]:
        """Its socket is open: the plan, up to its first wait."""
        self.last_rx = self.opened = now
        return self._take.said(self.talk.open(now), now)

    def screen(self, msg: Message, now: float) -> list[Action]:
        """A frame on its connection: the session's own, or data, delivered once subscribing
        began, through dedup (no gap checks: the live connection numbers the same stream)."""
        self.last_rx, value = now, msg.json
        own, said = self.talk.hear(msg, value, now, False)
        out = self._take.said(said, now)
        if own or self._take.state not in _DELIVERING or any(isinstance(a, Fail) for a in out):
            return out
        check = self._recovery.check(value, msg.data, now, False) \
            if self._recovery.active and value is not INVALID else KEEP
        return [*out, *check.actions(msg)]

    def tick(self, now: float) -> list[Action]:
        """Its deadlines: held sends released, a plan's wait that passed fails it."""
        out = self._take.release(now)
        if (stage := timed_out(self.talk, now, self.last_rx)) is not None:
            return [*out, Fail(SessionTimeout(self.talk.cfg.name, f"rollover {stage}"))]
        return out + self._take.said(due(self.talk, now, self._recovery), now)

    def deadline(self) -> float | None:
        when = min(earliest(self.talk), self._take.next)
        return when if when < math.inf else None

    def handover(self, now: float) -> list[Action]:
        """After ``Handover``: this is the live connection from now on, the session's to
        drive; close the old one (no unsubscribe: the server cleans up after it)."""
        return self._renewal.handover(self, now)

    def lost(self, error: SourceError, now: float) -> list[Action]:
        """It failed or closed before ``Handover``: the live connection is renewed the plain
        way (a ``Fail`` for it), closed first."""
        return self._renewal.failed(error, now)
