"""A source's life across its connections: its state (only through the table), the live
conversation, what each turn and ending means for the counters, held sends and open calls."""

from __future__ import annotations

from bridge.config.model import SourceConfig
from bridge.errors import Rejected, SourceError
from bridge.stats.source import SourceStats
from bridge.upstream.actions import Action, Close, SetState
from bridge.upstream.conversation import Change, Conversation
from bridge.upstream.outbound import Outbound
from bridge.upstream.recovery import Recovery
from bridge.upstream.state import ConnState, Event, transition
from bridge.upstream.steps import HttpSteps
from bridge.upstream.tokens import made_per_render


class Lifecycle:
    """The one holder of a source's ``ConnState`` and of ``talk``, the live connection's
    conversation (a successor's once it took over). ``enter`` applies the table; ``lost`` and
    ``stopped`` end a connection and the source; ``closing`` is a clean close under way, done
    once the sends the pacer holds are out."""

    __slots__ = ("_out", "_stats", "closing", "http", "recovery", "state", "talk")

    def __init__(self, stats: SourceStats, out: Outbound, talk: Conversation,
                 recovery: Recovery) -> None:
        self._stats, self._out, self.talk, self.recovery = stats, out, talk, recovery
        # What lasts across connections beside the state: HTTP results, {sign...}, {jwt...}
        self.http = HttpSteps(talk.cfg, talk.render)
        talk.render.derived.update(made_per_render(talk.cfg))
        self.state, self.closing = ConnState.CONNECTING, False

    def enter(self, event: Event, now: float = 0.0) -> SetState:
        """The state ``event`` leads to, by the table. Each step of the plan and a successor
        taking over start the numbering afresh; READY and ROLLOVER count, start the clocks."""
        self.state = transition(self.state, event)
        if event in (Event.AUTH, Event.SUBSCRIBE):
            self.recovery.reset()
            self.talk.watch.subscribing()
        elif event in (Event.READY, Event.ROLLOVER):  # a connection is live, or a successor
            self.recovery.reset()
            if event is Event.READY:
                self._stats.connects += 1
            else:
                self._stats.rollovers += 1
            self.http.timers.subscribed(now)  # its timers, and the steps run after subscribing
            self.talk.watch.connected(self.talk.cfg, now)
        return SetState(self.state)

    def lost(self, error: SourceError, reason: str, retry: bool) -> list[Action]:
        """The connection ended, or never opened, with ``error``; ``retry``: another attempt
        follows (counted under ``reason``), else the source gives up and its calls fail."""
        self.closing = False
        self.http.lost()
        self.talk.plan.load([])  # nothing more to say on it
        self._out.queue.requeue(self._out.pacer.drop())  # never sent: first next time
        self._stats.last_error = str(error)
        self._stats.rejected += isinstance(error, Rejected)  # refused by the server
        if retry:
            self._stats.reconnects[reason] += 1
        calls, out = self._out.calls, list[Action]()
        if calls is not None:
            out += calls.lost("upstream disconnected before replying")
            out += [] if retry else calls.close("upstream failed")
        return [*out, self.enter(Event.LOST if retry else Event.GIVE_UP)]

    def stopped(self) -> list[Action]:
        """The source is done: every open call is answered; STOPPED unless it FAILED."""
        calls = self._out.calls
        out: list[Action] = list(calls.close("the bridge stopped")) if calls is not None else []
        return out if self.state is ConnState.FAILED else [*out, self.enter(Event.STOP)]

    def stop(self, subscribed: bool, now: float) -> list[Action | Event]:
        """A clean shutdown begins: the unsubscribe messages (when ``subscribed``); sends the
        pacer holds go first again if the source ever connects again."""
        self._out.queue.requeue(self._out.pacer.drop())
        self.closing = True
        return list(self.talk.unsubscribe(now)) if subscribed else []

    def resubscribe(self, cfg: SourceConfig, live: bool, now: float,
                    change: Change | None = None) -> list[Action | Event]:
        """Subscribe with ``cfg`` on the ``live`` connection (``change``: only these steps, see
        ``Conversation.resubscribe``); not live: the next connection subscribes with it."""
        if not live:
            self.talk.cfg = cfg
            return []
        return self.talk.resubscribe(cfg, now, self.state is ConnState.CONNECTED, change)

    def close(self) -> list[Action]:
        """A clean close: ``Close`` once the pacer holds no send, else nothing yet."""
        if self._out.pacer.busy:
            return []
        self.closing = False
        return [Close()]
