"""What the sans-I/O session asks its driver to do: the actions it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.errors import SourceError
from bridge.messages import INVALID, Message
from bridge.upstream.attempt import Dial, Fetch, Redact
from bridge.upstream.handoff import Handover, Rollover
from bridge.upstream.state import ConnState


@dataclass(frozen=True, slots=True)
class Send:
    """A text frame to send now. ``origin`` is the queued message it carries (MQTT to
    upstream), handed back with ``Session.unsent`` when the socket refuses it."""
    data: str
    origin: Any = field(default=None, compare=False)


@dataclass(slots=True)  # not frozen: one per message, and frozen pays object.__setattr__
class Deliver:
    msg: Message


@dataclass(frozen=True, slots=True)
class SetState:
    state: ConnState


@dataclass(frozen=True, slots=True)
class Fail:
    error: SourceError


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Notice:
    """An event worth one log line (already rate-limited): a gap, a quiet channel, invalid
    frames, outgoing messages dropped."""
    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The one answer to an RPC: ``to`` is what the caller passed with the request, ``payload``
    the reply frame, or ``{"error": ...}`` as JSON text."""
    to: Any
    payload: str | bytes


def error_body(reason: str, reply: Any = INVALID) -> str:
    """An RPC's error response, never silence; ``reply`` is the upstream's error frame, when
    there is one."""
    body = {"error": reason} if reply is INVALID else {"error": reason, "reply": reply}
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Refused:
    """The upstream refused the subscription of these pool items (an error ack, such as a
    delisted symbol): ``reply`` is its answer. The connection goes on without them."""
    items: tuple[str, ...]
    reply: str


@dataclass(frozen=True, slots=True)
class Unread:
    """Whether frames may now be delivered without ``screen`` (CONNECTED, nothing to match),
    until the next ``Unread`` or the end of the connection; the driver then reports the time
    of the last such frame with ``tick``."""
    on: bool


# Send a text frame; Deliver to the routes; SetState; Fail = drop this connection; Close cleanly;
# Notice = log a line; Answer = hand an RPC its reply; Unread = the driver's fast path;
# Refused = pool items the upstream would not subscribe; Fetch = an HTTP request; Dial = open
# the socket; Redact = new secrets; Rollover = run a successor connection; Handover = it takes
# over.
Action = (Send | Deliver | SetState | Fail | Close | Notice | Answer | Unread | Refused | Fetch
          | Dial | Redact | Rollover | Handover)

# What ``Session.screen`` returns for a frame it passed on unread: deliver it, and if a route
# then finds it is not JSON, say so with ``unread_invalid``. Shared and never mutated.
UNREAD: Final[list[Action]] = []
