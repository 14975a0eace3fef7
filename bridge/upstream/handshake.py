"""Running the session plan: what to do next, what the session waits for, until when."""

from __future__ import annotations

import math
from typing import Any

from bridge.errors import AuthRejected, SourceError
from bridge.routing.template import Template
from bridge.upstream.actions import Action, Fail, Refused, Send
from bridge.upstream.plan import Item, Wait
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event


class PlanRunner:
    """The plan of one connection (auth, subscribe; later subscribe steps again), one item
    at a time: ``advance`` hands out the sends (rendered by ``render``) and state events up
    to the next wait, which ``answer`` ends when a message matches it and ``timed_out`` when
    its time is up."""

    __slots__ = ("_items", "_render", "until", "wait")

    def __init__(self, render: Renderer) -> None:
        self._render = render
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

    def heard(self, value: Any, raw: str | bytes, now: float, source: str
              ) -> list[Action | Event] | None:
        """What ``value`` means to the current wait: None when it is not its answer; else
        what follows: a rejection's ``Fail``, or the plan going on (after ``Refused`` when the
        upstream refused the wait's pool items: those, not the connection)."""
        answer = self.answer(value, source)
        if answer is None:
            return None
        if isinstance(answer, SourceError):
            return [Fail(answer)]
        said: list[Action | Event] = []
        if answer == "refused" and self.wait is not None:
            said.append(Refused(self.wait.items, raw if isinstance(raw, str) else
                                raw.decode("utf-8", "replace")))
        return said + self._render.guard(self.advance, now, value)

    def answer(self, value: Any, source: str) -> str | SourceError | None:
        """What ``value`` means to the current wait: "expected", "refused" (pool items'
        subscription rejected), the error of any other rejection (by the server, at the
        wait's stage), or None."""
        wait = self.wait
        if wait is None:
            return None
        if wait.reject is not None and wait.reject.matches(value):
            if wait.items:
                return "refused"
            kind = AuthRejected if wait.stage == "auth" else SourceError
            return kind(source, f"{wait.stage} rejected by the server")
        return "expected" if wait.expect.matches(value) else None

    def timed_out(self, now: float) -> str | None:
        """The stage ("auth", "subscribe") whose wait is over by ``now``, or None."""
        return self.wait.stage if self.wait is not None and now >= self.until else None
