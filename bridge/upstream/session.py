"""The whole protocol of one source as a sans-I/O state machine: events in, actions out.

The session outlives each connection. Its driver feeds it events and performs the actions it
returns, and reads or writes nothing else. The rules live in atoms that the session composes:
the conversation of a connection (plan, replies, keepalive, quiet channels), recovery (dedup,
sequence), the outbound side (outgoing queue, RPC calls, pacer), invalid-frame accounting, the
renewal of connections (reconnect_when, max_connection_age, rollover) and the state table,
through which every state change goes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from bridge.config.model import SourceConfig
from bridge.errors import SessionTimeout, SourceError
from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.routing.template import Template
from bridge.stats.source import SourceStats
from bridge.upstream.actions import UNREAD, Action, Deliver, Fail, Send
from bridge.upstream.conversation import Change, Conversation
from bridge.upstream.fastpath import FastPath
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.invalid import InvalidFrames
from bridge.upstream.lifecycle import Lifecycle
from bridge.upstream.outbound import Outbound
from bridge.upstream.outgoing import Outgoing
from bridge.upstream.recovery import KEEP, Recovery
from bridge.upstream.render import Renderer
from bridge.upstream.renewal import Renewal
from bridge.upstream.screening import DELIVERING, Screening
from bridge.upstream.state import ConnState, Event
from bridge.upstream.timers import LiveTimers
from bridge.upstream.verdict import closed


class Session:
    """One source's protocol across its connections: each public method is an event. Times
    are monotonic seconds; ``wall`` (if given) supplies ``{now_ms}``. After every event, call
    ``tick()`` once ``deadline()`` has come."""

    def __init__(self, cfg: SourceConfig, *, hostname: str = "",
                 wall: Callable[[], float] | None = None, recovery: Recovery | None = None,
                 stats: SourceStats | None = None) -> None:
        self.recovery = recovery or Recovery(cfg)
        self.stats = stats or SourceStats(recovery=self.recovery.counts)
        self._live, self._last_rx = False, 0.0  # idle is lazy: a frame only notes its time
        talk = Conversation(cfg, Renderer(cfg.name, hostname, wall))  # Lifecycle.talk: live
        self._invalid = InvalidFrames(cfg.on_invalid == "forward", self.stats)
        self._out = Outbound(cfg, self.stats.outgoing)
        self._life = Lifecycle(self.stats, self._out, talk, self.recovery)
        self._renew = renew = Renewal(cfg.renew, self._life, self._emit, self._out.pacer)
        self._fast, self._timers = FastPath(self._life, self._out), LiveTimers(self._life, renew)
        self._screening = Screening(self._life, self._out, self._renew, self._invalid)

    @property
    def state(self) -> ConnState:
        """For tests and inspection; the driver learns states from ``SetState`` actions."""
        return self._life.state

    def connecting(self, now: float = 0.0) -> list[Action]:
        """An attempt begins: its HTTP steps (``Fetch``, see ``fetched``), then ``Dial``."""
        return self._emit([Event.CONNECTING, *self._life.http.begin(now)], now)

    def fetched(self, request: HttpRequest, outcome: HttpResult | str, now: float) -> list[Action]:
        """A ``Fetch``'s response, or why there is none: the attempt's next ``Fetch`` or
        ``Dial``, a ``Fail`` (of the attempt or the connection), a ``Deliver``, a ``Notice``."""
        return self._emit(self._life.http.fetched(request, outcome, now), now)

    def start(self, now: float) -> list[Action]:
        """The socket is open: run the plan until its first wait."""
        self._last_rx, self._live, self._life.closing, self._fast.told = now, True, False, False
        self._renew.opened(now)
        return self._emit(self._life.talk.open(now), now)

    def lost(self, error: SourceError, reason: str, retry: bool) -> list[Action]:
        """The connection ended, or never opened, with ``error`` (``reason`` for metrics);
        ``retry``: another attempt follows, else the source gives up."""
        self._fail(None)
        return self._life.lost(error, reason, retry)

    def refused(self, error: SourceError) -> SourceError:
        """The connection ended with ``error``, before ``lost``: a rejection instead when the
        server closed it with a code the current wait's ``reject`` names (``$close``)."""
        return closed(self._life.talk.plan.wait, error) if self._live else error

    def stop(self, now: float) -> list[Action]:
        """Clean shutdown: the unsubscribe messages (if subscribing began), then Close once
        they are out (the rate limit may hold them: keep ticking)."""
        out = self._life.stop(self._live and self._life.state in DELIVERING, now)
        self._live, self._fast.told = False, False  # nothing to tell
        return self._emit(out, now) + self._life.close()

    def stopped(self) -> list[Action]:
        """The source is done: every open call is answered; STOPPED unless it FAILED."""
        return self._life.stopped()

    def unsent(self, send: Send) -> None:
        """The socket refused ``send``: a queued publish goes first again next connection."""
        self._out.queue.requeue([send])

    def receive(self, msg: Message, now: float) -> list[Action]:
        """A frame came: what to do, always as a list (``Deliver`` included)."""
        out = self.screen(msg, now)
        return [Deliver(msg)] if out is None or out is UNREAD else out

    def screen(self, msg: Message, now: float) -> list[Action] | None:
        """``receive``, but None where that is ``[Deliver(msg)]`` (the driver's fast path),
        or ``UNREAD``: the same, for a frame passed on without reading it."""
        fast = self._fast
        if fast.passing:
            self._last_rx = now
            return UNREAD
        if not self._live:
            return []
        self._last_rx, value = now, msg.json
        first, out, check = self._screening.read(msg, value, now, fast.checks_only)
        if check is None:
            return first + self._emit(out, now)
        if check is KEEP:  # the usual data message
            return [*self._emit(out, now), Deliver(msg)] if out else None
        return self._emit([*out, *self._screening.checked(msg, check, now)], now)

    def unread_invalid(self, now: float) -> list[Action]:
        """A text frame that is not JSON: found by the session, or by a route (``UNREAD``)."""
        return list(self._invalid.seen(now))

    def undecodable(self, error: Undecodable, frame: Message, now: float) -> list[Action]:
        """A frame ``frames`` could not decode: counted, logged, then ``frame`` forwarded as
        received or dropped, as ``on_invalid`` says (forwarded only once subscribing)."""
        delivering = self._live and self._life.state in DELIVERING
        return self._invalid.undecodable(error, frame, now, delivering)

    def tick(self, now: float, heard: float = 0.0) -> list[Action]:
        """Act on every deadline that has passed; afterwards ``deadline()`` is in the future.
        ``heard``: when the last frame delivered unread (``Unread``) came."""
        self._last_rx = max(self._last_rx, heard)
        out = self._out.tick(now) if now >= self._out.next else []
        self._fast.mode(self._live)  # calls answered: fewer replies to look for
        if self._life.closing:
            return out + self._life.close()
        if not self._live:
            return out
        if (stage := self._timers.timed_out(now, self._last_rx)) is not None:
            return out + self._fail(SessionTimeout(self._life.talk.cfg.name, stage))
        return out + self._emit(self._timers.due(now, self.recovery), now)

    def deadline(self) -> float | None:
        """The next time ``tick`` must be called, or None; idle is lazy, so it may come early."""
        when = min(self._out.next, self._timers.next) if self._live else self._out.next
        return when if when < math.inf else None

    def publish(self, send: Template, mqtt: Any, now: float) -> list[Action]:
        """Send ``send`` upstream rendered with ``mqtt``, once CONNECTED: in order, after auth
        and subscribe, kept (``cfg.outbox``) while the upstream is down."""
        return self._emit(self._out.put(Outgoing(send, mqtt, now)), now)

    def call(self, mqtt: Any, to: Any, now: float) -> list[Action]:
        """Send ``cfg.rpc.send`` rendered with ``mqtt``; exactly one ``Answer`` to ``to``
        follows: the reply frame, or an error response (timeout, disconnect, upstream error)."""
        return self._emit(self._out.call(mqtt, to, now, self._life.talk.cfg.name), now)

    def resubscribe(self, cfg: SourceConfig, now: float, change: Change | None = None
                    ) -> list[Action]:
        """Subscribe again on the live socket: after a reload changed only the subscriptions
        (unsubscribe the old, subscribe the new), or after a sequence gap (the same again);
        ``change``: a pool moved items, so only these (unsubscribe, subscribe) steps are sent.
        Not connected: the next connection subscribes with ``cfg``."""
        return self._emit(self._life.resubscribe(cfg, self._live, now, change), now)

    def reconnect(self, now: float) -> list[Action]:
        """An operator asked for a new connection: the live one ends (a ``Fail``) and the next
        opens as after any failure, counted as a reconnect ``requested``; not live: nothing."""
        return self._emit(self._renew.requested(), now) if self._live else []

    def _emit(self, out: Sequence[Action | Event], now: float) -> list[Action]:
        """``out`` as the driver performs it: states entered through the table, sends paced
        (held ones go out from ``tick``), then the outgoing queue's turn."""
        done = [self._life.enter(a, now) if isinstance(a, Event) else a for a in out]
        self._live = self._live and not any(isinstance(a, Fail) for a in done)
        connected = self._live and self._life.state is ConnState.CONNECTED
        done = self._out.pacer.pace(done, now) + \
            self._out.flush(now, self._life.talk.render.mqtt, connected)
        self._fast.mode(self._live)  # states entered, calls sent: what must be read changed?
        return done + self._fast.tell()

    def _fail(self, error: SourceError | None) -> list[Action]:
        """The connection is over for the session: the driver drops it on ``Fail``."""
        self._live = False
        self._fast.mode(self._live)
        return [] if error is None else [Fail(error)]
