"""One connection's exchange with the upstream: plan, replies, heartbeat, quiet channels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.config.model import SourceConfig
from bridge.errors import SourceError
from bridge.messages import INVALID
from bridge.routing.template import TemplateError
from bridge.upstream.actions import Action, Fail, Notice
from bridge.upstream.handshake import PlanRunner
from bridge.upstream.plan import compile_plan, step_plan, subscribe_plan
from bridge.upstream.recovery import Recovery
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event
from bridge.upstream.watch import Watch

Said = Action | Event  # what to do, or a state the plan reached (the session owns states)


class Conversation:
    """What is said on one connection and until when an answer may take. It renders the
    sends (``{seq}`` restarts with each connection); a message it cannot render is a ``Fail``,
    so none of its methods raise."""

    def __init__(self, cfg: SourceConfig, hostname: str, wall: Callable[[], float] | None) -> None:
        self.cfg, self.render = cfg, Renderer(cfg.name, hostname, wall)
        self.plan, self.watch = PlanRunner(self.render), Watch()

    @property
    def next(self) -> float:
        """The earliest deadline: a wait of the plan, keepalive, a quiet channel."""
        return min(self.plan.until, self.watch.next)

    def open(self, now: float) -> list[Said]:
        """A new connection: its plan, up to the first wait."""
        self.render.restart()
        self.plan.load(compile_plan(self.cfg))
        return self._guard(self._open, now, INVALID)

    def _open(self, now: float, previous: Any) -> list[Said]:
        self.watch = Watch(self.cfg, now, self.render)  # its interval may be a template
        return list(self.plan.advance(now, previous))

    def resubscribe(self, cfg: SourceConfig, now: float) -> list[Said]:
        """Subscribe with ``cfg`` on the live connection."""
        self.cfg = cfg
        self.plan.load(subscribe_plan(cfg))
        return self._guard(self.plan.advance, now, INVALID)

    def hear(self, value: Any, raw: str | bytes, now: float, connected: bool
             ) -> tuple[bool, list[Said]]:
        """A message: whether it was the session's own (an awaited answer, a pong), and what
        follows: the plan going on, a rejection's ``Fail``, the ``replies`` it triggers."""
        own = self.watch.busy and self.watch.seen(value, now, connected)  # a pong
        said: list[Said] = []
        if self.plan.wait is not None:
            answer = self.plan.answer(value, self.cfg.name)
            if isinstance(answer, SourceError):
                return True, [Fail(answer)]
            if answer == "expected":
                own, said = True, self._guard(self.plan.advance, now, value)
        for reply in self.cfg.replies:
            if reply.when.matches(value):
                said += self.render.replies((reply,), value, raw, now)
        return own, said

    def timed_out(self, now: float, last_rx: float) -> str | None:
        """The stage whose deadline passed ("auth", "subscribe", "heartbeat", "idle")."""
        return self.plan.timed_out(now) or self.watch.timed_out(now, last_rx)

    def due(self, now: float, recovery: Recovery) -> list[Said]:
        """The heartbeat, if due, and each ``expect_every`` step that went quiet sent again
        (no reconnect; counted under ``resubscribe``)."""
        beat, out = self.watch.beat(now), list[Said]()
        if beat is not None:
            out += self._guard(lambda at, _: [self.render.send(beat.send, at)], now, None)
        for index in self.watch.quiet_steps(now):
            recovery.counts["resubscribe"] += 1
            recovery.reset()  # the channel may number its messages afresh
            every = self.cfg.subscribe[index].expect_every
            out.append(Notice(f"subscribe[{index}] quiet for {every:g}s; sending it again"))
            if self.plan.extend(step_plan(self.cfg.subscribe[index])):
                out += self._guard(self.plan.advance, now, INVALID)
        return out

    def unsubscribe(self, now: float) -> list[Said]:
        return list(self.render.each((step.send for step in self.cfg.unsubscribe), now))

    def _guard(self, make: Callable[[float, Any], Sequence[Said]], now: float, arg: Any
               ) -> list[Said]:
        try:
            return list(make(now, arg))
        except TemplateError as exc:
            return [Fail(SourceError(self.cfg.name, f"cannot render a message to send: {exc}"))]
