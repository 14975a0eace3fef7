"""Connection states of a source, and every transition between them, written as one table.

Theory of operation
-------------------
Rule 1: a source's state changes only here, through ``transition``, and only the session
engine calls it. The driver feeds events into the session (``connecting``, ``start``,
frames, ``lost``, ``stop``); the session runs its plan, which is a list of events too; each
change comes out as one ``SetState`` action, which the driver logs and reports. No other
code assigns a state.

Rule 2: a transition that is not in the table is a bug in the bridge, not a condition of
the network: ``transition`` raises RuntimeError for it.

A source starts CONNECTING. The plan of an open connection takes it through AUTHENTICATING
and SUBSCRIBING (when configured) to CONNECTED. A reload or a sequence gap may subscribe
again on the live connection (CONNECTED -> SUBSCRIBING -> CONNECTED). When a connection
ends or fails to open, the source is RECONNECTING while it waits for the next attempt, or
FAILED when ``max_attempts`` is spent. ``stop()`` ends in STOPPED from any state but FAILED.
With ``rollover: overlap`` a successor connection runs its own plan beside a CONNECTED one
(its states go through this table too, apart from the source's); once it is CONNECTED it
takes over, and the source stays CONNECTED through ROLLOVER.
"""

from __future__ import annotations

import enum
from typing import Final


class ConnState(enum.Enum):
    """The lifecycle of one source; each transition is logged once."""

    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    SUBSCRIBING = "subscribing"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    """What moves a source from one state to the next."""

    CONNECTING = "connecting"  # an attempt to open the socket begins
    AUTH = "auth"  # the plan begins authenticating
    SUBSCRIBE = "subscribe"  # the plan begins subscribing (again, on a live connection)
    READY = "ready"  # the plan ran to its end: data flows
    ROLLOVER = "rollover"  # a successor connection, subscribed beside this one, took over
    LOST = "lost"  # the connection ended or failed to open; another attempt follows
    GIVE_UP = "give_up"  # ... and none follows: max_attempts is spent
    STOP = "stop"  # stop() was called and the source has closed


C, A, S, OK = (ConnState.CONNECTING, ConnState.AUTHENTICATING, ConnState.SUBSCRIBING,
               ConnState.CONNECTED)
R, F, X = ConnState.RECONNECTING, ConnState.FAILED, ConnState.STOPPED
_ENDINGS: Final = {Event.LOST: R, Event.GIVE_UP: F, Event.STOP: X}

TRANSITIONS: Final[dict[ConnState, dict[Event, ConnState]]] = {
    C: {Event.CONNECTING: C, Event.AUTH: A, Event.SUBSCRIBE: S, Event.READY: OK, **_ENDINGS},
    A: {Event.SUBSCRIBE: S, Event.READY: OK, **_ENDINGS},
    S: {Event.SUBSCRIBE: S, Event.READY: OK, **_ENDINGS},
    OK: {Event.SUBSCRIBE: S, Event.ROLLOVER: OK, **_ENDINGS},
    R: {Event.CONNECTING: C, Event.STOP: X},
    F: {},
    X: {},
}


def transition(state: ConnState, event: Event) -> ConnState:
    """The state after ``event`` in ``state``; a missing transition is a bug (RuntimeError)."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise RuntimeError(f"no transition from {state} on {event.value}") from None
