"""Running the session plan: what to do next, what the session waits for, until when."""

from __future__ import annotations

import math
from typing import Any, Final

from bridge.errors import AuthRejected, SourceError
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.actions import Send
from bridge.upstream.plan import Item, Wait
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event

REASON_CHARS: Final = 200  # of the server's refusal, in the log line and the last error


class PlanRunner:
    """The plan of one connection (auth, subscribe; later subscribe steps again), one item
    at a time: ``advance`` hands out the sends (rendered by ``render``) and state events up
    to the next wait, which ``answer`` ends when a message matches it and ``timed_out`` when
    its time is up. ``refuse`` (a protocol preset's) is a rejection at any time, waiting or
    not."""

    __slots__ = ("_items", "_render", "refuse", "until", "wait")

    def __init__(self, render: Renderer, refuse: Pattern | None = None) -> None:
        self._render, self.refuse = render, refuse
        self._items: list[Item] = []
        self.wait: Wait | None = None
        self.until = math.inf  # the current wait's deadline; inf: no wait

    def load(self, items: list[Item]) -> None:
        """Run ``items`` from now on, instead of what was left."""
        self._items, self.wait, self.until = list(items), None, math.inf

    def extend(self, items: list[Item]) -> bool:
        """Run ``items`` after what is left; True when nothing waits, so ``advance`` now."""
        self._items += items
        return self.wait is None

    def advance(self, now: float, previous: Any) -> list[Send | Event]:
        """The items up to the next wait, which starts at ``now``; ``previous`` is the message
        that ended the last wait (what {msg.*} reads). Raises TemplateError."""
        out: list[Send | Event] = []
        self.wait, self.until = None, math.inf
        while self._items and self.wait is None:
            item = self._items.pop(0)
            if isinstance(item, Wait):
                self.wait, self.until = item, now + item.timeout
            elif isinstance(item, Template):
                out.append(self._render.send(item, now, previous))
            else:
                out.append(item)
        return out

    @property
    def listening(self) -> bool:
        """Whether a message may mean something to the plan: it waits, or a refusal may come."""
        return self.wait is not None or self.refuse is not None

    def answer(self, value: Any, source: str, raw: str | bytes = "") -> str | SourceError | None:
        """What ``value`` means to the current wait: "expected", the error of a rejection
        (by the server, at the wait's stage, with ``raw``'s excerpt as its reason), or None."""
        wait = self.wait
        refused = self.refuse is not None and self.refuse.matches(value)
        if refused or (wait is not None and wait.reject is not None and wait.reject.matches(value)):
            stage = "connection" if wait is None else wait.stage
            kind = AuthRejected if stage == "auth" else SourceError
            return kind(source, f"{stage} rejected by the server: {excerpt(raw)}")
        return "expected" if wait is not None and wait.expect.matches(value) else None

    def timed_out(self, now: float) -> str | None:
        """The stage ("auth", "subscribe") whose wait is over by ``now``, or None."""
        return self.wait.stage if self.wait is not None and now >= self.until else None


def excerpt(raw: str | bytes) -> str:
    """The server's words, at most ``REASON_CHARS`` of them, control characters as spaces
    (a STOMP frame's NUL, a NATS line's CRLF); secrets in them are redacted by the logger."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."
