"""RPC over a WebSocket: which sent request an upstream reply answers, matched by an id field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.routing.pattern import Pattern


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply for the call ``call``: ``error`` is None on success, else the reason."""
    call: int
    error: str | None


class Calls:
    """The requests sent on one connection and awaiting a reply.

    A request's id is the value of ``id_field`` in the message as rendered (usually ``{seq}``);
    a reply carrying the same value in the same field answers it, when it also matches
    ``match`` (if set). A reply matching ``error`` is an upstream error."""

    def __init__(self, id_field: str, match: Pattern | None, error: Pattern | None) -> None:
        self.id_field, self.match, self.error = id_field, match, error
        self.waiting: dict[str, int] = {}  # the id, as JSON text -> the call

    def sent(self, rendered: Any, call: int) -> str | None:
        """Note that ``rendered`` went out for ``call``; None when it carries no id to match."""
        key = self._key(rendered)
        if key is not None:
            self.waiting[key] = call
        return key

    def reply(self, value: Any) -> Answer | None:
        """The answer ``value`` carries, or None when it answers no waiting request."""
        key = self._key(value)
        if key is None or key not in self.waiting:
            return None
        if self.error is not None and self.error.matches(value):
            return Answer(self.waiting.pop(key), "upstream error")
        if self.match is not None and not self.match.matches(value):
            return None  # e.g. an ack that shares the id: the result comes later
        return Answer(self.waiting.pop(key), None)

    def forget(self, call: int) -> None:
        """``call`` was answered otherwise (it timed out): a late reply is no longer its own."""
        for key in [k for k, c in self.waiting.items() if c == call]:
            del self.waiting[key]

    def clear(self) -> list[int]:
        """The connection ended: every waiting call, which will never get its reply."""
        calls, self.waiting = list(self.waiting.values()), {}
        return calls

    def _key(self, value: Any) -> str | None:
        if not isinstance(value, dict) or self.id_field not in value:
            return None
        ident = value[self.id_field]
        return None if isinstance(ident, dict | list) else repr(ident)
