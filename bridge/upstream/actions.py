"""What the sans-I/O session asks its driver to do: the actions it returns."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import SourceError
from bridge.messages import Message
from bridge.upstream.state import ConnState


@dataclass(frozen=True, slots=True)
class Send:
    data: str


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
    """A recovery event worth one log line (already rate-limited): a gap, a quiet channel."""
    text: str


# Send a text frame; Deliver to the routes; SetState; Fail = drop this connection; Close cleanly;
# Notice = log a line.
Action = Send | Deliver | SetState | Fail | Close | Notice
