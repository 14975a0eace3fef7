"""One connection's exchange with the upstream: plan, replies, heartbeat, quiet channels."""

from __future__ import annotations

from typing import Any

from bridge.config.model import SourceConfig
from bridge.errors import SourceError
from bridge.messages import INVALID
from bridge.upstream.actions import Action, Fail
from bridge.upstream.capture import Captures
from bridge.upstream.handshake import PlanRunner
from bridge.upstream.heartbeat import Heartbeat
from bridge.upstream.plan import compile_plan, subscribe_plan
from bridge.upstream.recovery import Recovery
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event
from bridge.upstream.watch import Watch

Said = Action | Event  # what to do, or a state the plan reached (the session owns states)


class Conversation:
    """What is said on one connection and until when an answer may take. It renders the
    sends (``{seq}`` restarts with each connection); a message it cannot render is a ``Fail``,
    so none of its methods raise. ``render``'s namespaces (the captured values among them)
    are the source's, kept across its connections and shared with a successor's."""

    def __init__(self, cfg: SourceConfig, render: Renderer) -> None:
        self.cfg, self.render = cfg, render
        self.plan, self.watch = PlanRunner(self.render), Watch()
        self.captures = Captures(cfg.capture, self.render.names["var"])
        self.beat = Heartbeat(cfg.heartbeat, self.render)

    @property
    def next(self) -> float:
        """The earliest deadline: a plan's wait, keepalive, a held heartbeat, a quiet channel."""
        return min(self.plan.until, self.watch.next, self.beat.until)

    def open(self, now: float) -> list[Said]:
        """A new connection: its plan, up to the first wait."""
        self.render.restart()
        self.watch, self.beat = Watch(self.cfg, now), Heartbeat(self.cfg.heartbeat, self.render)
        self.plan.load(compile_plan(self.cfg))
        return self.render.guard(self._open, now, INVALID)

    def _open(self, now: float, previous: Any) -> list[Said]:
        self.beat.pace(self.watch, now)  # known now: from a response, or captured before
        return list(self.plan.advance(now, previous))

    def resubscribe(self, cfg: SourceConfig, now: float) -> list[Said]:
        """Subscribe with ``cfg`` on the live connection."""
        self.cfg = cfg
        self.plan.load(subscribe_plan(cfg))
        return self.render.guard(self.plan.advance, now, INVALID)

    def hear(self, value: Any, raw: str | bytes, now: float, connected: bool
             ) -> tuple[bool, list[Said]]:
        """A message: whether it was the session's own (an awaited answer, a pong), and what
        follows: the plan going on, a rejection's ``Fail``, the ``replies`` it triggers, and
        what waited for a variable the message set (``capture``)."""
        own = self.watch.busy and self.watch.seen(value, now, connected)  # a pong
        said: list[Said] = []
        waiting = self.plan.wait  # a wait the captures' sends reach is not for this message
        if self.captures.active and self.captures.hear(value, raw, now, self.render):
            said += self.render.guard(lambda at, _: [*self.plan.resume(at),
                                                     *self.beat.resume(self.watch, at)], now, None)
        if waiting is not None:
            answer = self.plan.answer(value, self.cfg.name)
            if isinstance(answer, SourceError):
                return True, [Fail(answer)]
            if answer == "expected":
                own = True
                said += self.render.guard(self.plan.advance, now, value)
        for reply in self.cfg.replies:
            if reply.when.matches(value):
                said += self.render.replies((reply,), value, raw, now)
        return own, said

    def timed_out(self, now: float, last_rx: float) -> str | None:
        """The stage whose deadline passed ("auth", "subscribe", "heartbeat", "idle")."""
        held = "heartbeat" if self.beat.timed_out(now) else None
        return self.plan.timed_out(now) or held or self.watch.timed_out(now, last_rx)

    def due(self, now: float, recovery: Recovery) -> list[Said]:
        """The heartbeat, if due, and each ``expect_every`` step that went quiet sent again
        (no reconnect; counted under ``resubscribe``)."""
        out = self.render.guard(lambda at, _: self.beat.due(self.watch, at), now, None)
        for notice, items in self.watch.quiet(now, self.cfg, recovery):
            out.append(notice)
            if self.plan.extend(items):
                out += self.render.guard(self.plan.advance, now, INVALID)
        return out

    def unsubscribe(self, now: float) -> list[Said]:
        return list(self.render.each((step.send for step in self.cfg.unsubscribe), now))
