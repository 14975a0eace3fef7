"""One connection's exchange with the upstream: plan, replies, heartbeat, quiet channels."""

from __future__ import annotations

from typing import Any

from bridge.config.model import SourceConfig
from bridge.config.specs import Step
from bridge.messages import INVALID, Message
from bridge.upstream.actions import Action, Fail
from bridge.upstream.capture import Captures
from bridge.upstream.handshake import PlanRunner
from bridge.upstream.heartbeat import Heartbeat
from bridge.upstream.plan import compile_plan, subscribe_plan
from bridge.upstream.render import Renderer
from bridge.upstream.replies import replies
from bridge.upstream.state import Event
from bridge.upstream.verdict import heard
from bridge.upstream.watch import Watch

Said = Action | Event  # what to do, or a state the plan reached (the session owns states)
Change = tuple[tuple[Step, ...], tuple[Step, ...]]  # steps to unsubscribe, steps to subscribe


class Conversation:
    """What is said on one connection (its deadlines: ``bridge.upstream.timers``). It renders the
    sends (``{seq}`` restarts with each connection); a message it cannot render is a ``Fail``,
    so none of its methods raise. ``render``'s namespaces (the captured values among them)
    are the source's, kept across its connections and shared with a successor's."""

    def __init__(self, cfg: SourceConfig, render: Renderer) -> None:
        self.cfg, self.render = cfg, render
        self.plan, self.watch = PlanRunner(self.render, cfg.protocol), Watch()
        self.captures = Captures(cfg.capture, self.render.names["var"])
        self.beat = Heartbeat(cfg.heartbeat, self.render)

    def open(self, now: float) -> list[Said]:
        """A new connection: its plan, up to the first wait."""
        self.render.restart()
        self.watch, self.beat = Watch(self.cfg, now), Heartbeat(self.cfg.heartbeat, self.render)
        self.plan.load(compile_plan(self.cfg))
        return self.render.guard(self._open, now, INVALID)

    def _open(self, now: float, previous: Any) -> list[Said]:
        self.beat.pace(self.watch, now)  # known now: from a response, or captured before
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
        ``replies`` it triggers, and what waited for a variable the message set
        (``capture``). An answer its step ``deliver``s is data, not the session's."""
        text = msg.text
        own = self.watch.busy and self.watch.seen(value, text, now, connected)  # a pong
        said: list[Said] = []
        listening = self.plan.listening  # a wait the captures' sends reach is not for this one
        if self.captures.active and self.captures.hear(value, msg.data, now, self.render):
            said += self.render.guard(lambda at, _: [*self.plan.resume(at),
                                                     *self.beat.resume(self.watch, at)], now, None)
        if listening and (told := heard(self.plan, value, text, now, self.cfg.name)) is not None:
            own, more = told
            if more and isinstance(more[0], Fail):
                return True, more
            said += more
        said += replies(self.render, self.cfg.replies, msg, value, now)
        return own, said

    def unsubscribe(self, now: float) -> list[Said]:
        return list(self.render.each((step.send for step in self.cfg.unsubscribe), now))
