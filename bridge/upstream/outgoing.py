"""Messages waiting to go upstream: bounded in count and age, kept in order across reconnects."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from bridge.routing.template import Template
from bridge.upstream.actions import Notice, Send


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: ``send`` rendered with ``mqtt`` when its turn comes (so ``{seq}`` is
    the live connection's); ``call`` is the RPC it carries, None for a plain publish."""
    send: Template
    mqtt: Any
    queued_at: float
    call: int | None = None


class OutgoingQueue:
    """FIFO of ``Outgoing``; when full the oldest is dropped (``overflow``), and ``take`` drops
    those older than ``max_age`` seconds (``expired``). ``dropped`` counts both by reason."""

    def __init__(self, max_messages: int, max_age: float) -> None:
        self.max_messages, self.max_age = max_messages, max_age
        self._items: deque[Outgoing] | None = None  # made at the first message (most never)
        self.dropped: Counter[str] = Counter()
        self._overflowing = False  # an episode of drops for room: logged once

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    def put(self, item: Outgoing) -> Outgoing | None:
        """Queue ``item``; returns the oldest message when it had to make room for it."""
        items = self._queue()
        items.append(item)
        if len(items) > self.max_messages:
            self.dropped["overflow"] += 1
            return items.popleft()
        return None

    def overflow_notice(self) -> list[Notice]:
        """The line for a drop that made room: once per episode; the next ``take`` (a flush
        to a connected upstream) ends the episode."""
        if self._overflowing:
            return []
        self._overflowing = True
        return [Notice(f"outgoing queue full ({self.max_messages}), dropping the oldest")]

    def take(self, now: float) -> tuple[Outgoing | None, list[Outgoing]]:
        """The next message still young enough, and the expired ones dropped on the way."""
        expired: list[Outgoing] = []
        self._overflowing = False
        while self._items:
            item = self._items.popleft()
            if self.max_age <= 0 or now - item.queued_at <= self.max_age:
                return item, expired
            self.dropped["expired"] += 1
            expired.append(item)
        return None, expired

    def push_front(self, item: Outgoing) -> None:
        """Put back a message the connection could not send: it goes first next time."""
        self._queue().appendleft(item)

    def requeue(self, sends: list[Send]) -> None:
        """Sends that never went out: the publishes among them go first again, in order (a
        request does not: its call is answered when the connection ends)."""
        for send in reversed(sends):
            if isinstance(origin := send.origin, Outgoing) and origin.call is None:
                self._queue().appendleft(origin)

    def _queue(self) -> deque[Outgoing]:
        """The queue itself, made on first use."""
        if self._items is None:
            self._items = deque()
        return self._items
