"""One source's client: drives its Session over connections from the reconnect iterator.

The driver moves bytes and time and nothing else: it feeds the session events (frames, the
clock, MQTT requests, stop) and performs the actions that come out. Reconnecting and its
backoff live in ``bridge.upstream.reconnect``; every protocol rule lives in the session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from bridge.config.model import SourceConfig
from bridge.errors import HandshakeRejected, OperationTooBig, SourceError
from bridge.frames import FrameDecoder
from bridge.inflate import Undecodable
from bridge.logs import add_secrets
from bridge.messages import Message, byte_size
from bridge.protocols.wire import Frames, PresetFrames
from bridge.routing.template import Template
from bridge.stats.source import SourceStats
from bridge.tls import source_context
from bridge.upstream.actions import (
    UNREAD,
    Action,
    Answer,
    Close,
    Deliver,
    Fail,
    Notice,
    Refused,
    Send,
    SetState,
    Unread,
)
from bridge.upstream.attempt import Dial, Fetch, Redact
from bridge.upstream.connection import Connection, open_connection
from bridge.upstream.conversation import Change
from bridge.upstream.handoff import Rollover
from bridge.upstream.http import Fetcher
from bridge.upstream.http_result import HttpRequest, HttpResult
from bridge.upstream.overlap import Overlap
from bridge.upstream.pump import DeliverFn, Pump, Rest
from bridge.upstream.reconnect import Reconnect
from bridge.upstream.recovery import Recovery
from bridge.upstream.session import Session
from bridge.upstream.spacing import Gate
from bridge.upstream.state import ConnState
from bridge.upstream.urls import safe_url
from bridge.upstream.waiting import Waiting

logger = logging.getLogger("bridge.upstream")

# Shutdown: how long the unsubscribe messages may take, then how long the close handshake may.
STOP_SEND_GRACE: Final = 2.0
CLOSE_GRACE: Final = 3.0
# After a failure the peer is suspect: send a close frame but do not wait long for its answer.
FAILED_CLOSE_GRACE: Final = 1.0

AnswerFn = Callable[[str | bytes], None]  # an RPC's reply frame, or {"error": ...} as JSON text
StateFn = Callable[[str, ConnState], None]
RefusedFn = Callable[[tuple[str, ...], str], None]  # pool items the upstream refused, its reply


class SourceClient:
    """Keeps one source connected until ``stop()``, or until ``max_attempts`` is exhausted."""

    def __init__(
        self,
        cfg: SourceConfig,
        deliver: DeliverFn,
        *,
        on_state: StateFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        hostname: str = "",
        rand: Callable[[], float] = random.random,
        recovery: Recovery | None = None,
        gate: Gate | None = None,
        on_refused: RefusedFn | None = None,
        label: str = "",
    ) -> None:
        """A pool's connection shares the pool's ``recovery`` (dedup, sequence), passes its
        ``gate`` before opening, reports refused items to ``on_refused``, and is ``label``
        (``binance#3``) in its log lines."""
        self.cfg = cfg
        self.state = ConnState.CONNECTING  # the state the session last reported
        recovery = recovery or Recovery(cfg)  # outlives each connection: replays come after one
        self.stats = SourceStats(recovery=recovery.counts)
        self._session = Session(cfg, hostname=hostname, wall=wall, recovery=recovery,
                                stats=self.stats)
        self._label = label or cfg.name
        self._reconnect: Reconnect[Connection] = Reconnect(
            self._label, cfg.reconnect, self._open, self._lost, self._pause, clock=clock,
            rand=rand)
        self._deliver, self._on_state, self._clock, self._wall = deliver, on_state, clock, wall
        self._gate, self._on_refused = gate, on_refused
        self._log = logging.LoggerAdapter(logger, {"source": cfg.name})
        self._announced: ConnState | None = None  # the state last logged and reported
        self._stopping = False
        self._waiting = Waiting(clock, self._session.deadline, self._tick,
                                lambda: self._stopping)
        self._connected_at: float | None = None
        # new subscriptions from a reload, and what a pool moved (None: all of them again)
        self._pending: tuple[SourceConfig, Change | None] | None = None
        self._backlog: list[Action] = []  # sends from events fed between two frames
        self._unread = False  # the session said frames may pass without screen() (Unread)
        frames = cfg.frames  # decoding beyond JSON text, done here, before the session
        self._frames: Frames | None = None if frames is None else \
            FrameDecoder(frames, cfg.name, cfg.max_message_size)
        if cfg.protocol is not None:  # a preset's wire format, read after ``frames``
            self._frames = PresetFrames(cfg.protocol.type, cfg.name, self._frames)
        self._pump = Pump(cfg.name, self.stats, self._session, frames=self._frames,
                          clock=clock, wall=wall, deliver=deliver)
        self._http = Fetcher(cfg.name, cfg.proxy, lambda: source_context(self.cfg, "https:"),
                             self._fetched)
        self._overlap: Overlap[Connection] = Overlap(  # a successor (rollover: overlap)
            cfg.name, self.stats, clock, wall=wall, dial=self._dial, fetch=self._http.fetch,
            frames=self._frames,
            close=lambda conn: self._close(conn, FAILED_CLOSE_GRACE),
            deliver=lambda msg: self._deliver(msg),  # noqa: PLW0108 - the one retarget() set
            other=lambda action: self._apply_idle([action]), wake=self._wake)

    async def run(self) -> None:
        """Connect and serve, reconnecting with backoff; return once stopped or failed."""
        async for conn in self._reconnect:
            error = await self._serve(conn)
            self._reconnect.ended(error, self._connected_at)
        self._perform(self._session.stopped())

    @property
    def recovery(self) -> Recovery:
        """What the source remembers across connections (dedup window, counts)."""
        return self._session.recovery

    def retarget(self, deliver: DeliverFn) -> None:
        """A reload changed the routes or sinks: deliver from now on through ``deliver``."""
        self._deliver = deliver
        self._wake()  # the receive run ends before its next frame; the next run takes this

    def resubscribe(self, cfg: SourceConfig, change: Change | None = None) -> None:
        """A reload changed only the subscriptions: apply them on the live socket, no reconnect;
        ``change``: a pool moved items, so only these steps go (see ``Session.resubscribe``)."""
        if self.state in (ConnState.SUBSCRIBING, ConnState.CONNECTED):
            # Picked up by the connection's loop; a second change before it was: all again.
            self._pending = (cfg, change if self._pending is None else None)
            self._wake()
        else:
            self.cfg = cfg  # not connected: the next connection subscribes with it
            self._perform(self._session.resubscribe(cfg, self._clock(), change))

    def subscribe_again(self) -> None:
        """An operator asked: the subscribe steps again on the live connection (after the
        unsubscribe steps), as a reload that changed them would; between connections, the next
        one subscribes as always."""
        self.resubscribe(self.cfg)

    def reconnect(self) -> None:
        """An operator asked for a new connection: the live one is closed and the next opens
        as after a failure, the counters going on; between connections, now."""
        self._backlog += self._session.reconnect(self._clock())  # a Fail, when live
        self._waiting.hurry = self.state is ConnState.RECONNECTING
        self._wake()

    def publish(self, send: Template, mqtt: Any) -> None:
        """Send ``send`` upstream, rendered with ``mqtt`` (see ``mqtt_value``), once CONNECTED:
        in order, after auth and subscribe, kept (``cfg.outbox``) while the upstream is down."""
        self._perform(self._session.publish(send, mqtt, self._clock()))

    def call(self, mqtt: Any, answer: AnswerFn) -> None:
        """Send ``cfg.rpc.send`` rendered with ``mqtt``; ``answer`` is called exactly once, with
        the reply frame, or with an error response on timeout, disconnect or upstream error."""
        self._perform(self._session.call(mqtt, answer, self._clock()))

    def stop(self) -> None:
        """Ask ``run()`` to unsubscribe, close and return; safe to call at any time, repeatedly."""
        self._stopping = True
        self._reconnect.stop()
        self._wake()

    def _wake(self) -> None:
        self._pump.halt()  # the frames that come before the loop wakes wait for it, in order
        self._waiting.wake()

    def _perform(self, actions: list[Action]) -> None:
        """Actions of an event fed outside the connection's loop: sends wait for the loop."""
        sends = [a for a in actions if isinstance(a, Send)]
        self._apply_idle([a for a in actions if not isinstance(a, Send)])
        if sends:
            self._backlog += sends
        self._wake()  # the loop's deadline may have moved (an RPC's timeout)

    # --- between connections --------------------------------------------------------------

    async def _open(self) -> Connection | None:
        """One attempt to open the socket; None when ``stop()`` came first."""
        self._connected_at, self._waiting.hurry = None, False
        actions = self._session.connecting(self._clock())
        while True:  # the attempt's HTTP steps, in order, until the session says Dial
            self._apply_idle(actions)
            if failed := next((a for a in actions if isinstance(a, Fail)), None):
                raise failed.error
            if (step := next((a for a in actions if isinstance(a, Fetch)), None)) is None:
                break
            outcome = await self._waiting.serving(lambda s=step: self._http.fetch(s.request), None)  # type: ignore[misc]
            if outcome is None:
                return None  # stop() came
            actions = self._session.fetched(step.request, outcome, self._clock())
        dial = next(a for a in actions if isinstance(a, Dial))
        # One that opened just as stop() came is served too: its loop stops at once, with
        # the unsubscribe messages and a close frame, as for any other connection.
        return await self._waiting.serving(lambda: self._dial(dial), None)

    async def _dial(self, dial: Dial) -> Connection:
        """Open one connection of the source at ``dial``'s URL and headers, through the
        pool's gate (``connect_every``) when the source is one connection of a pool."""
        tls = source_context(self.cfg, dial.url)
        if self._gate is None:
            return await open_connection(self.cfg, tls, dial.url, dial.headers)
        await self._gate.admit()
        try:
            conn = await open_connection(self.cfg, tls, dial.url, dial.headers)
        except SourceError as exc:
            self._gate.opened(exc.status if isinstance(exc, HandshakeRejected) else None, False)
            raise
        self._gate.opened(None, True)
        return conn

    def _fetched(self, request: HttpRequest, outcome: HttpResult | str) -> None:
        """An HTTP step run while connected answered: what follows goes to the connection's
        loop (a ``Deliver``, a ``Fail``)."""
        self._backlog += self._session.fetched(request, outcome, self._clock())
        self._wake()

    def _lost(self, error: SourceError, reason: str, delay: float | None) -> None:
        self._apply_idle(self._session.lost(error, reason, delay is not None))

    async def _pause(self, delay: float) -> None:
        await self._waiting.serving(None, delay)

    def _tick(self, now: float) -> None:
        """The session's deadline came while no connection is served (an RPC's timeout)."""
        self._apply_idle(self._session.tick(now, self._pump.heard))

    def _apply_idle(self, actions: Sequence[Action]) -> None:
        """Actions that need no connection: states, log lines, RPC answers."""
        for action in actions:
            if isinstance(action, SetState):
                self._set_state(action.state)
            elif isinstance(action, Answer):
                action.to(action.payload)
            elif isinstance(action, Notice):
                self._log.warning("source %s: %s", self._label, action.text)
            elif isinstance(action, Send):
                self._session.unsent(action)  # no connection to take it: first next time
            elif isinstance(action, Unread):
                self._unread = action.on
            elif isinstance(action, Refused) and self._on_refused is not None:
                self._on_refused(action.items, action.reply)
            elif isinstance(action, Redact):
                add_secrets(action.values)

    # --- one connection -------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> SourceError | None:
        """The one loop of a connection: frames in, the session's deadlines, events; the
        error that ended it, or None when stopped."""
        self.stats.handshake_seconds = conn.handshake_seconds
        session, self._unread = self._session, False
        self._pump.frames = None if self._frames is None else self._frames.fresh()
        try:
            await self._apply(conn, session.start(self._clock()))
            while not self._stopping:
                now = self._clock()
                if (rest := self._pump.rest) is not None:  # left by the data callback
                    self._pump.rest = None
                    await self._finish(conn, rest)
                    continue
                if self._overlap.end is not None:
                    conn = await self._took_over(conn, now)
                    continue
                if self._pending is not None:
                    (self.cfg, change), self._pending = self._pending, None
                    await self._apply(conn, session.resubscribe(self.cfg, now, change))
                    continue
                if self._backlog:
                    backlog, self._backlog = self._backlog, []
                    await self._apply(conn, backlog)
                    continue
                due = session.deadline()
                if due is not None and due <= now:
                    await self._apply(conn, session.tick(now, self._pump.heard))
                    continue
                with contextlib.suppress(TimeoutError):
                    await self._receive(conn, due)
            await self._shutdown(conn)
        except SourceError as exc:
            self._http.cancel()
            backlog, self._backlog = self._backlog, []
            self._apply_idle(backlog[::-1])  # never sent: first in line next time
            await self._close(conn, FAILED_CLOSE_GRACE)
            return session.refused(exc)  # a close code the plan's reject names: a rejection
        finally:
            await self._overlap.drop()
        return None

    async def _receive(self, conn: Connection, due: float | None) -> None:
        """Read frames until a deadline is due, ``stop()``, a reload or an event: the hot path.

        Frames already buffered whole are taken here. While none is, the connection hands each
        one to the pump in its data callback (``consume``), and this task sleeps in ``recv``
        (for what the pump is not handed: fragments, the end of the stream) until the pump
        wakes it with a rest, or an event does. One timer serves the whole run and moves only
        when the deadline does."""
        loop, clock, session, pump = asyncio.get_running_loop(), self._clock, self._session, \
            self._pump
        deliver, take, turn = self._deliver, conn.take, 0
        step = pump.arm(deliver, self._unread)
        async with asyncio.timeout(None) as wakeup:
            self._waiting.wakeup, armed = wakeup, None
            try:  # a retarget() ends the run before the next frame: none reaches a replaced sink
                while not self._stopping and self._pending is None and not self._backlog \
                        and self._overlap.end is None and pump.rest is None \
                        and self._deliver is deliver:
                    if due != armed:
                        wakeup.reschedule(None if due is None else loop.time() + due - clock())
                        armed = due
                    if (turn := turn + 1) & 255 == 0:  # one read can hold thousands of frames:
                        await asyncio.sleep(0)  # the sinks get their turn, queues stay short
                        due = session.deadline()  # other tasks ran: the session may have moved
                        continue  # and a reload may have retargeted: the conditions again
                    if (data := pump.held) is not None:  # came as the last run was cut short
                        pump.held = None
                    elif (data := take()) is None:  # nothing buffered whole: the pump's turn
                        data = await pump.next(conn)
                        if (rest := pump.rest) is not None:  # before any frame after it
                            pump.rest = None
                            await self._finish(conn, rest)
                            due, deliver = session.deadline(), self._deliver
                            step = pump.arm(deliver, self._unread)
                        if data is None:
                            continue
                        if self._deliver is not deliver:  # retargeted while it waited
                            deliver = self._deliver
                            step = pump.arm(deliver, self._unread)
                    if (rest := step(data)) is not None:
                        await self._finish(conn, rest)
                        due, deliver = session.deadline(), self._deliver
                        step = pump.arm(deliver, self._unread)
                        if due is not None and due <= rest.now:
                            return
                    elif due is not None and due <= clock():
                        return
            finally:
                self._waiting.wakeup = None

    async def _finish(self, conn: Connection, rest: Rest | Exception) -> None:
        """What a frame left for the task (``Pump.step``): back-pressure, then actions, or the
        messages decoded from it; an error the data callback caught is raised here."""
        if isinstance(rest, Exception):
            raise rest
        if rest.pending is not None:
            await rest.pending
        if rest.actions is not None:
            await self._apply(conn, rest.actions)
        if rest.items is not None:
            await self._decoded(conn, rest.items, rest.frame, rest.now)

    async def _decoded(self, conn: Connection, items: list[Message | Undecodable],
                       frame: str | bytes, now: float) -> None:
        """The messages ``frames`` decoded from ``frame``, each screened by the session; one
        that could not be decoded is the session's to count and forward or drop."""
        session = self._session
        for item in items:
            if isinstance(item, Undecodable):
                part = frame if item.part is None else item.part  # a split frame's piece
                raw = Message(self.cfg.name, part, self._wall())
                await self._apply(conn, session.undecodable(item, raw, now))
            elif (actions := session.screen(item, now)) is None or actions is UNREAD:
                if (pending := self._deliver(item)) is not None:
                    await pending
            else:
                await self._apply(conn, actions)

    async def _apply(self, conn: Connection, actions: list[Action]) -> None:
        for index, action in enumerate(actions):
            if isinstance(action, Deliver):
                pending = self._deliver(action.msg)
                if pending is not None:
                    await pending
            elif isinstance(action, Send):
                try:
                    await conn.send(action.data)
                except SourceError:
                    sends = [a for a in actions[index:] if isinstance(a, Send)]
                    self._apply_idle(sends[::-1])  # never sent: first in line next time
                    raise
                self.stats.sent += 1
            elif isinstance(action, Fail):
                raise action.error
            elif isinstance(action, Close):
                await self._close(conn, CLOSE_GRACE)
            elif isinstance(action, Fetch):
                self._http.start(action.request)
            elif isinstance(action, Rollover):
                self._overlap.begin(action.leg)
            else:
                self._apply_idle([action])

    # --- a successor connection (rollover: overlap) ---------------------------------------

    async def _took_over(self, old: Connection, now: float) -> Connection:
        """The successor ended: subscribed, it is the live connection from now on, and the old
        one is closed, then what it received up to its close handshake is delivered (all the
        server sent before its close frame: no gap; dedup removes repeats); failed, the
        session renews the old one the plain way (a ``Fail``: raised)."""
        assert self._overlap.end is not None
        (leg, end), self._overlap.end, self._overlap.task = self._overlap.end, None, None
        if isinstance(end, SourceError):
            await self._apply(old, leg.lost(end, now))
            return old
        await self._apply(end, leg.handover(now))
        await self._close(old, CLOSE_GRACE)
        frames, self._pump.frames = self._pump.frames, self._overlap.frames  # the successor's
        while (data := old.take()) is not None:  # the old one's last frames, on its own stream
            self.stats.received += 1
            self.stats.bytes += byte_size(data)
            try:
                items: list[Message | Undecodable] = [Message(self.cfg.name, data, self._wall())] \
                    if frames is None else frames.decode(data, self._wall())
            except OperationTooBig:  # its last operation outgrew its bound: that one is gone
                break
            await self._decoded(end, items, data, self._clock())
        self.stats.handshake_seconds = end.handshake_seconds
        return end

    async def _shutdown(self, conn: Connection) -> None:
        """Send the unsubscribe messages (paced) and a close frame, each bounded in time."""
        self._http.cancel()
        actions = self._session.stop(self._clock())
        try:
            async with asyncio.timeout(STOP_SEND_GRACE):
                while not any(isinstance(a, Close) for a in actions):
                    await self._apply(conn, actions)
                    due = self._session.deadline()
                    if due is None:
                        break
                    await asyncio.sleep(max(0.0, due - self._clock()))
                    actions = self._session.tick(self._clock(), self._pump.heard)
                else:
                    await self._apply(conn, [a for a in actions if not isinstance(a, Close)])
        except (SourceError, TimeoutError) as exc:
            why = exc.detail if isinstance(exc, SourceError) else "timed out"
            self._log.info("source %s: unsubscribe not sent before closing: %s", self._label,
                          why)
        await self._close(conn, CLOSE_GRACE)

    async def _close(self, conn: Connection, grace: float) -> None:
        try:
            async with asyncio.timeout(grace):
                await conn.close(1000)
        except TimeoutError:
            pass  # the adapter aborts the transport when its close is cut short

    def _set_state(self, state: ConnState) -> None:
        self.state = state
        if state is ConnState.CONNECTED:
            self._connected_at = self._clock()
        if state is self._announced:
            return
        self._announced = state
        name = self.cfg.name
        if state is ConnState.CONNECTING:
            self._log.debug("source %s: connecting to %s", self._label, safe_url(self.cfg.url))
        elif state in (ConnState.AUTHENTICATING, ConnState.SUBSCRIBING):
            self._log.debug("source %s: %s", self._label, state)
        elif state in (ConnState.CONNECTED, ConnState.STOPPED):
            self._log.info("source %s: %s", self._label, state)
        # RECONNECTING and FAILED are logged by the reconnect iterator, with their reason.
        if self._on_state is not None:
            self._on_state(name, state)
