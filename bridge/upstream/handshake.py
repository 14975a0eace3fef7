"""Running the session plan: what to do next, what the session waits for, until when."""

from __future__ import annotations

import math
from typing import Any

from bridge.config.model import ProtocolSpec
from bridge.errors import AuthRejected, Rejected, SourceError
from bridge.routing.template import Template
from bridge.upstream.actions import Send
from bridge.upstream.plan import Item, Wait
from bridge.upstream.render import Renderer, excerpt
from bridge.upstream.state import Event


class PlanRunner:
    """The plan of one connection (auth, subscribe; later subscribe steps again), one item
    at a time: ``advance`` hands out the sends (rendered by ``render``) and state events up
    to the next wait, which ``answer`` ends when a message matches it and ``timed_out`` when
    its time is up. A protocol preset's ``refuse`` is a rejection at any time, waiting or
    not."""

    __slots__ = ("_items", "_render", "refuse", "until", "wait")

    def __init__(self, render: Renderer, protocol: ProtocolSpec | None = None) -> None:
        self._render = render
        self.refuse = protocol.refuse if protocol is not None else None
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

    def answer(self, value: Any, text: str | None, source: str) -> str | SourceError | None:
        """What a message (its JSON ``value``, its frame's ``text``) means to the current wait:
        "expected" (or "deliver", when its step delivers it: data, not the session's own), the
        error of a rejection (by the server, at the wait's stage, or at any time by a preset's
        ``refuse``), or None."""
        wait = self.wait
        rejected = wait is not None and wait.reject is not None and wait.reject.matches(value, text)
        if rejected or (self.refuse is not None and self.refuse.matches(value, text)):
            stage = "connection" if wait is None else wait.stage
            kind = AuthRejected if stage == "auth" else Rejected
            return kind(source, f"{stage} rejected by the server: {excerpt(text, value)}")
        if wait is None or not wait.expect.matches(value, text):
            return None
        return "deliver" if wait.deliver else "expected"

    def refused(self, code: int, reason: str, source: str) -> SourceError | None:
        """The rejection a close by the server (``code``, ``reason``) is to the current wait,
        when its ``reject`` names that code (``$close``), else None."""
        wait = self.wait
        if wait is None or wait.reject is None or not wait.reject.closes(code, reason):
            return None
        kind = AuthRejected if wait.stage == "auth" else Rejected
        why = f"close code {code}" + (f": {excerpt(reason, None)}" if reason else "")
        return kind(source, f"{wait.stage} rejected by the server with {why}")

    def timed_out(self, now: float) -> str | None:
        """The stage ("auth", "subscribe") whose wait is over by ``now``, or None."""
        return self.wait.stage if self.wait is not None and now >= self.until else None
