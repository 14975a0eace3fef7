"""RPC over a WebSocket: every call from its request to its one answer, replies matched by id.

A call is answered exactly once: with the reply frame, or with an error response (as JSON
text, never silence) when it times out, is dropped, or its connection ends first."""

from __future__ import annotations

import itertools
import math
from typing import Any

from bridge.config.outbound import RpcSpec
from bridge.upstream.actions import Answer, error_body


class Calls:
    """The open calls of one source, across its connections.

    A request's id is the value of ``id_field`` in the message as rendered (usually ``{seq}``);
    a reply carrying the same value in the same field answers it, when it also matches
    ``match`` (if set). A reply matching ``error`` is an upstream error. Each call times out
    ``timeout`` seconds after ``open``; ``next`` is the earliest such deadline."""

    def __init__(self, spec: RpcSpec) -> None:
        self.id_field = spec.id_field
        self.match = spec.match
        self.error = spec.error
        self.timeout = spec.timeout
        self.waiting: dict[str, int] = {}  # sent on this connection: the id as JSON text -> call
        self._open: dict[int, tuple[Any, float]] = {}  # call -> (answer to, deadline)
        self._keys = itertools.count(1)
        self.next = math.inf

    def open(self, to: Any, now: float) -> int:
        """A new call, answered to ``to``; the key the queued request carries."""
        key = next(self._keys)
        self._open[key] = (to, now + self.timeout)
        self.next = min(self.next, now + self.timeout)
        return key

    def is_open(self, key: int) -> bool:
        """Whether ``key`` still awaits its answer (a queued request whose call timed out
        is not sent)."""
        return key in self._open

    def answer(self, key: int, payload: str | bytes) -> list[Answer]:
        """Answer ``key`` (nothing, when it was answered already: a late reply, a timeout)."""
        entry = self._open.pop(key, None)
        if entry is None:
            return []
        for ident in [i for i, k in self.waiting.items() if k == key]:
            del self.waiting[ident]
        self.next = next(iter(self._open.values()))[1] if self._open else math.inf
        return [Answer(entry[0], payload)]

    def sent(self, rendered: Any, key: int) -> list[Answer]:
        """``rendered`` goes out for ``key``: awaited by its id, or answered now without one."""
        ident = self._id(rendered)
        if ident is None:
            return self.answer(key, error_body(f"the request has no '{self.id_field}' to match"))
        self.waiting[ident] = key
        return []

    def reply(self, value: Any, raw: str | bytes) -> list[Answer] | None:
        """The answer ``value`` (whose frame is ``raw``) carries, or None: not a reply."""
        key = self.waiting.get(ident) if (ident := self._id(value)) is not None else None
        if key is None:
            return None
        if self.error is not None and self.error.matches(value):
            return self.answer(key, error_body("upstream error", value))
        if self.match is not None and not self.match.matches(value):
            return None  # e.g. an ack that shares the id: the result comes later
        return self.answer(key, raw)

    def expire(self, now: float) -> list[Answer]:
        """Answer every call whose deadline passed."""
        late = [k for k, (_, until) in self._open.items() if now >= until]
        body = error_body(f"no reply within {self.timeout:g}s")
        return [a for k in late for a in self.answer(k, body)]

    def lost(self, reason: str) -> list[Answer]:
        """The connection ended: its sent calls never get their reply (ids are per connection)."""
        return [a for k in list(self.waiting.values()) for a in self.answer(k, error_body(reason))]

    def close(self, reason: str) -> list[Answer]:
        """The source ends: every open call, sent or still queued."""
        return [a for k in list(self._open) for a in self.answer(k, error_body(reason))]

    def _id(self, value: Any) -> str | None:
        if not isinstance(value, dict) or self.id_field not in value:
            return None
        ident = value[self.id_field]
        return None if isinstance(ident, dict | list) else repr(ident)
