"""Running the session plan: what to do next, what the session waits for, until when."""

from __future__ import annotations

import math
from typing import Any

from bridge.config.model import ProtocolSpec
from bridge.messages import INVALID
from bridge.routing.context import Unset
from bridge.upstream.actions import Send
from bridge.upstream.plan import Item, Say, Wait
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event


class PlanRunner:
    """The plan of one connection (auth, subscribe; later subscribe steps again), one item
    at a time: ``advance`` hands out the sends (rendered by ``render``) and state events up
    to the next wait, which a message answering it ends (``bridge.upstream.verdict.heard``)
    and ``timed_out`` when its time is up. A protocol
    preset's ``refuse`` is a rejection at any time, waiting or not. A message reading an unset
    ``{var.NAME}`` is ``held``: ``resume`` tries it again once a variable is set."""

    __slots__ = ("_items", "_previous", "held", "refuse", "render", "until", "wait")

    def __init__(self, render: Renderer, protocol: ProtocolSpec | None = None) -> None:
        self.render = render
        self.refuse = protocol.refuse if protocol is not None else None
        self._items: list[Item] = []
        self.wait: Wait | None = None
        self.held: Say | None = None  # the message waiting for a variable
        self._previous: Any = INVALID  # what the held message's {msg.*} reads
        self.until = math.inf  # the current wait's deadline; inf: no wait

    def load(self, items: list[Item]) -> None:
        """Run ``items`` from now on, instead of what was left."""
        self._items, self.wait, self.held, self.until = list(items), None, None, math.inf

    def extend(self, items: list[Item]) -> bool:
        """Run ``items`` after what is left; True when nothing waits, so ``advance`` now."""
        self._items += items
        return self.wait is None and self.held is None

    def advance(self, now: float, previous: Any) -> list[Send | Event]:
        """The items up to the next wait, which starts at ``now``; ``previous`` is the message
        that ended the last wait (what {msg.*} reads). Raises TemplateError."""
        out: list[Send | Event] = []
        self.wait, self.held, self.until, self._previous = None, None, math.inf, previous
        while self._items and self.wait is None:
            item = self._items[0]
            if isinstance(item, Say):
                try:
                    out.append(self.render.send(item.send, now, previous))
                except Unset:
                    self.held, self.until = item, now + item.timeout
                    return out
            elif isinstance(item, Wait):
                self.wait, self.until = item, now + item.timeout
            else:
                out.append(item)
            self._items.pop(0)
        return out

    def resume(self, now: float) -> list[Send | Event]:
        """A variable was set: the held message and what follows it, if it renders now; its
        deadline stays the one it was held with. Raises TemplateError."""
        if self.held is None:
            return []
        until, out = self.until, self.advance(now, self._previous)
        if self.held is not None:
            self.until = until
        return out

    @property
    def listening(self) -> bool:
        """Whether a message may mean something to the plan: it waits, or a refusal may come."""
        return self.wait is not None or self.refuse is not None

    def timed_out(self, now: float) -> str | None:
        """The stage ("auth", "subscribe") whose wait is over by ``now``, or None."""
        pending = self.held or self.wait
        return pending.stage if pending is not None and now >= self.until else None
