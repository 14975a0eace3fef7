"""When a live connection is replaced on purpose: the server asks (``reconnect_when``), or it
is ``max_connection_age`` old; closed first, or rolled over to a successor subscribed first."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from bridge.config.stateful import RenewSpec
from bridge.errors import SourceError
from bridge.errors_renewal import Renewed, Requested
from bridge.upstream.actions import Action, Fail, Notice
from bridge.upstream.conversation import Conversation
from bridge.upstream.handoff import Rollover
from bridge.upstream.lifecycle import Lifecycle
from bridge.upstream.ratelimit import Pacer
from bridge.upstream.state import ConnState, Event
from bridge.upstream.steps import HttpSteps
from bridge.upstream.successor import Successor

Emit = Callable[[Sequence[Action | Event], float], list[Action]]  # the session's _emit


class Renewal:
    """The renewal rules of one source. ``until`` is the live connection's age deadline;
    ``renew`` ends the connection (``Fail``) or, with ``rollover: overlap`` on a CONNECTED
    one, starts one ``Successor`` at a time (``Rollover``), which on ``handover`` becomes the
    live conversation of ``life``. ``emit``: how the session performs what results."""

    __slots__ = ("_emit", "_life", "_pacer", "_spec", "asking", "leg", "until", "why")

    def __init__(self, spec: RenewSpec, life: Lifecycle, emit: Emit, pacer: Pacer) -> None:
        self._spec, self._life, self._emit, self._pacer = spec, life, emit, pacer
        self.asking = bool(spec.reconnect_when)  # whether ``asks`` can be True at all
        self.until = math.inf
        self.leg: Successor | None = None  # the successor running, if any
        self.why = ""

    def opened(self, now: float) -> None:
        """A connection became the live one at ``now``: its age counts from then, and a
        successor of an earlier one is gone (the driver drops it with its connection)."""
        age, self.leg = self._spec.max_age, None
        self.until = now + age if age > 0 else math.inf

    def asks(self, value: Any) -> bool:
        """Whether the server message ``value`` asks for a new connection."""
        return any(pattern.matches(value) for pattern in self._spec.reconnect_when)

    def aged(self, now: float) -> list[Action | Event]:
        """``until`` came: the live connection is ``max_connection_age`` old."""
        return self.renew("max_connection_age") if now >= self.until else []

    def renew(self, why: str) -> list[Action | Event]:
        """Replace the live connection (``why``: reconnect_when or max_connection_age)."""
        self.until = math.inf  # once per connection
        name = self._life.talk.cfg.name
        if self._spec.rollover != "overlap" or self._life.state is not ConnState.CONNECTED:
            return [Fail(Renewed(name, why))]
        if self.leg is not None:
            return []  # a successor is already on its way
        talk = self._life.talk  # the successor's own conversation, the same namespaces
        fresh = Conversation(talk.cfg, talk.render.twin())
        http = HttpSteps(talk.cfg, fresh.render)  # its connect steps, the source's results
        leg = Successor(fresh, self._life.recovery, self, self._pacer.twin(), http)
        self.leg, self.why = leg, why
        return [Rollover(self.leg)]

    def requested(self) -> list[Action | Event]:
        """An operator asked for a new connection: the live one ends (never rolled over)."""
        return [Fail(Requested(self._life.talk.cfg.name))]

    def handover(self, leg: Successor, now: float) -> list[Action]:
        """``leg`` is subscribed: its conversation is the live one from now on (the source
        stays CONNECTED, through ROLLOVER); its age counts from when it opened. Subscriptions
        a reload changed during the overlap are made on it now."""
        old, self._life.talk = self._life.talk, leg.talk
        self.opened(leg.opened)
        note = Notice(f"rolled over to a new connection ({self.why}); closing the old one")
        changed = [] if old.cfg is leg.talk.cfg else self._life.resubscribe(old.cfg, True, now)
        return self._emit([note, Event.ROLLOVER, *changed], now)

    def failed(self, error: SourceError, now: float) -> list[Action]:
        """The successor failed: the live connection is renewed the plain way, closed first."""
        self.leg = None
        note = Notice(f"rollover ({self.why}) failed: {error.detail}; reconnecting instead")
        return self._emit([note, Fail(Renewed(self._life.talk.cfg.name, self.why))], now)
