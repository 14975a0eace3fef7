"""One connection's exchange with the upstream: plan, replies, heartbeat, quiet channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.config.model import SourceConfig
from bridge.config.specs import Step
from bridge.messages import INVALID, Message
from bridge.upstream.actions import Action, Fail, Notice
from bridge.upstream.handshake import PlanRunner
from bridge.upstream.plan import compile_plan, step_plan, subscribe_plan
from bridge.upstream.recovery import Recovery
from bridge.upstream.render import Renderer
from bridge.upstream.state import Event
from bridge.upstream.watch import Watch

Said = Action | Event  # what to do, or a state the plan reached (the session owns states)
Change = tuple[tuple[Step, ...], tuple[Step, ...]]  # steps to unsubscribe, steps to subscribe


class Conversation:
    """What is said on one connection and until when an answer may take. It renders the
    sends (``{seq}`` restarts with each connection); a message it cannot render is a ``Fail``,
    so none of its methods raise."""

    def __init__(self, cfg: SourceConfig, hostname: str, wall: Callable[[], float] | None) -> None:
        self.cfg, self.render = cfg, Renderer(cfg.name, hostname, wall)
        self.plan, self.watch = PlanRunner(self.render, cfg.protocol), Watch()

    @property
    def next(self) -> float:
        """The earliest deadline: a wait of the plan, keepalive, a quiet channel."""
        return min(self.plan.until, self.watch.next)

    def open(self, now: float) -> list[Said]:
        """A new connection: its plan, up to the first wait."""
        self.render.restart()
        self.plan.load(compile_plan(self.cfg))
        return self.render.guard(self._open, now, INVALID)

    def _open(self, now: float, previous: Any) -> list[Said]:
        self.watch = Watch(self.cfg, now, self.render)  # its interval may be a template
        return list(self.plan.advance(now, previous))

    def resubscribe(self, cfg: SourceConfig, now: float, connected: bool,
                    change: Change | None = None) -> list[Said]:
        """Subscribe with ``cfg`` on the live connection: all of it, the old subscriptions
        unsubscribed first once CONNECTED; or with ``change`` (a pool moved items) only its
        unsubscribe and subscribe steps, the rest staying as they are. Before CONNECTED, the
        whole of ``cfg`` is subscribed either way."""
        stop, start = change or ((self.cfg.unsubscribe if connected else ()), None)
        self.cfg = cfg
        out = list[Said](self.render.each((step.send for step in stop), now))
        self.plan.load(subscribe_plan(cfg, start if connected else None))
        return out + self.render.guard(self.plan.advance, now, INVALID)

    def hear(self, msg: Message, value: Any, now: float, connected: bool
             ) -> tuple[bool, list[Said]]:
        """A message (``value``: its JSON): whether it was the session's own (an awaited
        answer, a pong), and what follows: the plan going on, a rejection's ``Fail``, the
        ``replies`` it triggers. An answer its step ``deliver``s is data, not the session's."""
        text = msg.text
        own = self.watch.busy and self.watch.seen(value, text, now, connected)  # a pong
        said: list[Said] = []
        if self.plan.listening and (
                heard := self.plan.heard(value, text, now, self.cfg.name)) is not None:
            own, said = heard
            if said and isinstance(said[0], Fail):
                return True, said
        for reply in self.cfg.replies:
            if reply.when.matches(value, text):
                said += self.render.replies((reply,), value, msg.data, text, now)
        return own, said

    def timed_out(self, now: float, last_rx: float) -> str | None:
        """The stage whose deadline passed ("auth", "subscribe", "heartbeat", "idle")."""
        return self.plan.timed_out(now) or self.watch.timed_out(now, last_rx)

    def due(self, now: float, recovery: Recovery) -> list[Said]:
        """The heartbeat, if due, and each ``expect_every`` step that went quiet sent again
        (no reconnect; counted under ``resubscribe``)."""
        beat, out = self.watch.beat(now), list[Said]()
        if beat is not None:
            out += self.render.guard(lambda at, _: [self.render.send(beat.send, at)], now, None)
        for index in self.watch.quiet_steps(now):
            recovery.counts["resubscribe"] += 1
            recovery.reset()  # the channel may number its messages afresh
            every = self.cfg.subscribe[index].expect_every
            out.append(Notice(f"subscribe[{index}] quiet for {every:g}s; sending it again"))
            if self.plan.extend(step_plan(self.cfg.subscribe[index])):
                out += self.render.guard(self.plan.advance, now, INVALID)
        return out

    def unsubscribe(self, now: float) -> list[Said]:
        return list(self.render.each((step.send for step in self.cfg.unsubscribe), now))
