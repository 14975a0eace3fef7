"""One source's reconnecting client: opens the connection, drives its Session, backs off, stops."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

from bridge.config.model import SourceConfig
from bridge.errors import ConnectFailed, SourceError
from bridge.messages import INVALID, Message, byte_size
from bridge.routing.rpc import Calls
from bridge.routing.template import Template, TemplateError
from bridge.stats.source import REASONS, SourceStats, reason_of
from bridge.tls import client_context
from bridge.upstream.backoff import backoff
from bridge.upstream.connection import Connection, open_connection
from bridge.upstream.outgoing import Outgoing, OutgoingQueue
from bridge.upstream.ratelimit import TokenBucket
from bridge.upstream.recovery import Recovery
from bridge.upstream.session import Action, Close, Deliver, Fail, Notice, Send, Session, SetState
from bridge.upstream.state import ConnState
from bridge.upstream.urls import safe_url

logger = logging.getLogger("bridge.upstream")

# A connection that delivered data, or stayed connected this long, resets the backoff.
HEALTHY_AFTER: Final = 5.0
# Shutdown: how long the unsubscribe messages may take, then how long the close handshake may.
STOP_SEND_GRACE: Final = 2.0
CLOSE_GRACE: Final = 3.0
# After a failure the peer is suspect: send a close frame but do not wait long for its answer.
FAILED_CLOSE_GRACE: Final = 1.0
# Invalid JSON frames: the first is logged, then at most one summary line per this many seconds.
INVALID_LOG_EVERY: Final = 60.0

DeliverFn = Callable[[Message], Awaitable[None] | None]
AnswerFn = Callable[[str | bytes], None]  # an RPC's reply frame, or {"error": ...} as JSON text
StateFn = Callable[[str, ConnState], None]
_T = TypeVar("_T")


def tls_for(cfg: SourceConfig) -> ssl.SSLContext | None:
    """The TLS context for a ``wss://`` URL (None for ``ws://``); an unreadable certificate or
    key file is a failed connection attempt, retried like one."""
    if urllib.parse.urlsplit(cfg.url).scheme != "wss":
        return None
    try:
        return client_context(cfg.tls)
    except OSError as exc:  # ssl.SSLError included
        raise ConnectFailed(cfg.name, f"{safe_url(cfg.url)}: TLS settings: {exc}") from exc


def _error(reason: str, reply: Any = INVALID) -> str:
    """An RPC's error response: never silence."""
    body = {"error": reason} if reply is INVALID else {"error": reason, "reply": reply}
    return json.dumps(body, separators=(",", ":"))


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
    ) -> None:
        self.cfg = cfg
        self.state = ConnState.CONNECTING
        self._recovery = Recovery(cfg)  # outlives each connection: replays come after one
        self.stats = SourceStats(recovery=self._recovery.counts)
        self._deliver = deliver
        self._on_state = on_state
        self._clock = clock
        self._wall = wall
        self._hostname = hostname
        self._log = logging.LoggerAdapter(logger, {"source": cfg.name})
        self._announced: ConnState | None = None  # the state last logged and reported
        self._stopping = False
        self._wakeup: asyncio.Timeout | None = None  # the wait that stop() cuts short
        self._connected_at: float | None = None
        self._delivered = 0  # messages delivered on the current connection
        self._pending: SourceConfig | None = None  # new subscriptions from a reload
        self._invalid_logged_at: float | None = None
        self._invalid_unlogged = 0
        # MQTT -> upstream: queued while down, sent once CONNECTED; ``_kick`` says there is work.
        self._outgoing = OutgoingQueue(cfg.outbox.max_messages, cfg.outbox.max_age)
        self._outgoing.dropped = self.stats.outgoing
        self._kick = self._overflowing = False
        limit = cfg.rate_limit
        self._bucket = TokenBucket(limit.messages, limit.per, clock()) if limit else None
        rpc = cfg.rpc
        self._calls = Calls(rpc.id_field, rpc.match, rpc.error) if rpc else None
        self._answers: dict[int, tuple[AnswerFn, asyncio.TimerHandle]] = {}
        self._call_ids = itertools.count(1)

    async def run(self) -> None:
        """Connect and serve, reconnecting with backoff; return once stopped or failed."""
        name = self.cfg.name
        delays = self._backoff()
        attempts = 0
        while not self._stopping:
            attempts += 1
            error = await self._attempt()
            if error is None:
                break
            if self._was_healthy():
                delays, attempts = self._backoff(), 1
            reason = reason_of(error)
            self.stats.last_error = str(error)
            delay = next(delays, None)
            if delay is None:
                self._set_state(ConnState.FAILED)
                self._log.error(
                    "source %s: failed, giving up after %d attempts; last: %s: %s",
                    name, attempts, REASONS[reason], error.detail,
                )
                return
            self.stats.reconnects[reason] += 1
            self._set_state(ConnState.RECONNECTING)
            self._log.warning(
                "source %s: reconnecting in %.2fs after %s: %s",
                name, delay, REASONS[reason], error.detail,
            )
            try:
                await self._interruptible(asyncio.sleep(delay), None)
            except TimeoutError:
                break
        for key in list(self._answers):
            self._answer(key, _error("the bridge stopped" if self._stopping else "upstream failed"))
        self._set_state(ConnState.STOPPED)

    def retarget(self, deliver: DeliverFn) -> None:
        """A reload changed the routes or sinks: deliver from now on through ``deliver``."""
        self._deliver = deliver
        self._wake()  # the receive run holds the old one: end it, the next run takes this

    def resubscribe(self, cfg: SourceConfig) -> None:
        """A reload changed only the subscriptions: apply them on the live socket, no reconnect."""
        if self.state in (ConnState.SUBSCRIBING, ConnState.CONNECTED):
            self._pending = cfg  # picked up by the connection's loop, which we wake
            self._wake()
        else:
            self.cfg = cfg  # not connected: the next connection subscribes with it

    def publish(self, send: Template, mqtt: Any) -> None:
        """Send ``send`` upstream, rendered with ``mqtt`` (see ``mqtt_value``), once CONNECTED:
        in order, after auth and subscribe, kept (``cfg.outbox``) while the upstream is down."""
        self._queue(Outgoing(send, mqtt, self._clock()))

    def call(self, mqtt: Any, answer: AnswerFn) -> None:
        """Send ``cfg.rpc.send`` rendered with ``mqtt``; ``answer`` is called exactly once, with
        the reply frame, or with an error response on timeout, disconnect or upstream error."""
        rpc, key = self.cfg.rpc, next(self._call_ids)
        if rpc is None or self._calls is None:
            answer(_error(f"source {self.cfg.name} has no rpc configured"))
            return
        expire = _error(f"no reply within {rpc.timeout:g}s")
        handle = asyncio.get_running_loop().call_later(rpc.timeout, self._answer, key, expire)
        self._answers[key] = (answer, handle)
        self._queue(Outgoing(rpc.send, mqtt, self._clock(), key))

    def _queue(self, item: Outgoing) -> None:
        if (old := self._outgoing.put(item)) is not None:
            if old.call is not None:
                self._answer(old.call, _error("dropped: too many requests waiting"))
            if not self._overflowing:  # once per outage: the flush after it ends the episode
                self._overflowing = True
                self._log.warning("source %s: outgoing queue full (%d), dropping the oldest",
                                  self.cfg.name, self._outgoing.max_messages)
        if self.state is ConnState.CONNECTED:  # else the next CONNECTED kicks (never before:
            self._kick = True                    # the receive loop ends at once while it is set)
            self._wake()

    def _answer(self, key: int, payload: str | bytes) -> None:
        """Answer an RPC once; later answers for it (a late reply, a timer) are ignored."""
        if (entry := self._answers.pop(key, None)) is None:
            return
        answer, handle = entry
        handle.cancel()
        if self._calls is not None:
            self._calls.forget(key)
        answer(payload)

    def stop(self) -> None:
        """Ask ``run()`` to unsubscribe, close and return; safe to call at any time, repeatedly."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.expired():
            wakeup.reschedule(asyncio.get_running_loop().time())

    async def _attempt(self) -> SourceError | None:
        """One connection from open to end: the error that ended it, or None when stopped."""
        self._connected_at, self._delivered = None, 0
        self._set_state(ConnState.CONNECTING)
        try:
            conn = await self._interruptible(open_connection(self.cfg, tls_for(self.cfg)), None)
        except TimeoutError:
            return None
        except SourceError as exc:
            return exc
        self.stats.handshake_seconds = conn.handshake_seconds
        try:
            await self._serve(conn)
        except SourceError as exc:
            return exc
        finally:
            for key in self._calls.clear() if self._calls else ():  # ids are per connection
                self._answer(key, _error("upstream disconnected before replying"))
            await self._close(conn, FAILED_CLOSE_GRACE)
        return None

    async def _serve(self, conn: Connection) -> None:
        """The one loop of a connection: frames in, and the session's deadlines."""
        session = Session(self.cfg, hostname=self._hostname, wall=self._wall,
                          recovery=self._recovery)
        self._kick = False
        await self._apply(conn, session.start(self._clock()))
        while not self._stopping:
            now = self._clock()
            if self._pending is not None:
                self.cfg, self._pending = self._pending, None
                await self._apply(conn, session.resubscribe(self.cfg, now))
                continue
            due = session.deadline()
            if due is not None and due <= now:
                await self._apply(conn, session.tick(now))
                continue
            if self._kick:
                await self._flush(conn, session)
                continue
            with contextlib.suppress(TimeoutError):
                await self._receive(conn, session, due)
        await self._shutdown(conn, session)

    async def _receive(self, conn: Connection, session: Session, due: float | None) -> None:
        """Read frames until a deadline is due, ``stop()`` or a reload: the hot path.

        One timer serves the whole run and moves only when the deadline does, and a session
        with nothing to match lets frames through without parsing them."""
        loop, clock, wall, stats = asyncio.get_running_loop(), self._clock, self._wall, self.stats
        name, deliver, calls, turn = self.cfg.name, self._deliver, self._calls, 0
        take = conn.take
        async with asyncio.timeout(None) as wakeup:
            self._wakeup, armed = wakeup, None
            try:
                while not self._stopping and self._pending is None and not self._kick:
                    if due != armed:
                        wakeup.reschedule(None if due is None else loop.time() + due - clock())
                        armed = due
                    if (turn := turn + 1) & 255 == 0:  # one read can hold thousands of frames:
                        await asyncio.sleep(0)  # the sinks get their turn, queues stay short
                        due = session.deadline()  # other tasks ran: the session may have moved
                    if (data := take()) is None:  # nothing buffered whole: wait for it
                        data = await conn.recv()
                    now = clock()
                    msg = Message(name, data, wall())
                    stats.received += 1
                    stats.bytes += byte_size(data)
                    if calls is not None and calls.waiting and self._replied(msg):
                        session.last_rx = now
                    elif not (through := session.passthrough) and \
                            (actions := self._actions(session, msg, now)) is not None:
                        await self._apply(conn, actions)
                        due = session.deadline()
                    else:  # data, delivered: no deadline moved (idle and quiet are lazy)
                        session.last_rx = now
                        self._delivered += 1
                        if (pending := deliver(msg)) is not None:
                            await pending
                        if through and msg.parsed is INVALID and not msg.is_binary:
                            self._note_invalid(1)  # parsed by a route
                    if due is not None and due <= now:
                        return
            finally:
                self._wakeup = None

    def _actions(self, session: Session, msg: Message, now: float) -> list[Action] | None:
        """What the session makes of a frame; None when it is data to deliver and nothing else."""
        invalid = session.invalid
        actions = session.screen(msg, now)
        if session.invalid != invalid:
            self._note_invalid(session.invalid - invalid)
        return actions

    async def _apply(self, conn: Connection, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                self._delivered += 1
                pending = self._deliver(action.msg)
                if pending is not None:
                    await pending
            elif isinstance(action, Send):
                await self._send(conn, action.data)
            elif isinstance(action, SetState):
                if action.state is ConnState.CONNECTED:
                    self._connected_at = self._clock()
                    self.stats.connects += 1
                    self._kick = len(self._outgoing) > 0
                self._set_state(action.state)
            elif isinstance(action, Fail):
                raise action.error
            elif isinstance(action, Close):
                await self._close(conn, CLOSE_GRACE)
            elif isinstance(action, Notice):
                self._log.warning("source %s: %s", self.cfg.name, action.text)

    async def _send(self, conn: Connection, data: str) -> None:
        """Every send goes through here: it waits for a token of ``rate_limit``, if set."""
        if self._bucket is not None and (wait := self._bucket.delay(self._clock())) > 0:
            await asyncio.sleep(wait)
        await conn.send(data)
        self.stats.sent += 1

    async def _flush(self, conn: Connection, session: Session) -> None:
        """Send what waits in the outgoing queue, in order, dropping what got too old."""
        self._kick = self._overflowing = False
        expired = 0
        while self.state is ConnState.CONNECTED and not self._stopping and self._pending is None:
            item, old = self._outgoing.take(self._clock())
            expired += len(old)
            for call in (o.call for o in old if o.call is not None):
                self._answer(call, _error("expired waiting for the upstream"))
            if item is None:
                break
            if item.call is not None and item.call not in self._answers:
                continue  # timed out while waiting: its error response is already out
            await self._send_one(conn, session, item)
        if expired:
            self._log.warning("source %s: dropped %d outgoing messages older than %gs",
                              self.cfg.name, expired, self._outgoing.max_age)

    async def _send_one(self, conn: Connection, session: Session, item: Outgoing) -> None:
        try:
            data = session.render(item.send, self._clock(), mqtt=item.mqtt).data
        except TemplateError as exc:
            self.stats.outgoing["render_error"] += 1
            if item.call is not None:
                self._answer(item.call, _error(f"cannot render the request: {exc}"))
            return
        calls = self._calls
        if item.call is not None and calls and calls.sent(json.loads(data), item.call) is None:
            self._answer(item.call, _error(f"the request has no '{calls.id_field}' to match"))
            return
        try:
            await self._send(conn, data)
        except SourceError:
            if item.call is None:
                self._outgoing.push_front(item)  # not sent: first in line after the reconnect
            raise

    def _replied(self, msg: Message) -> bool:
        """Whether ``msg`` answers a waiting RPC (it is then published back, not routed)."""
        answer = self._calls.reply(msg.json) if self._calls is not None else None
        if answer is None:
            return False
        reply = msg.data if answer.error is None else _error(answer.error, msg.json)
        self._answer(answer.call, reply)
        return True

    async def _shutdown(self, conn: Connection, session: Session) -> None:
        """Send the unsubscribe messages and a close frame, each bounded in time."""
        actions = session.stop(self._clock())
        try:
            async with asyncio.timeout(STOP_SEND_GRACE):
                for action in actions:
                    if isinstance(action, Send):
                        await self._send(conn, action.data)
        except (SourceError, TimeoutError) as exc:
            why = exc.detail if isinstance(exc, SourceError) else "timed out"
            self._log.info("source %s: unsubscribe not sent before closing: %s", self.cfg.name, why)
        await self._close(conn, CLOSE_GRACE)

    async def _close(self, conn: Connection, grace: float) -> None:
        try:
            async with asyncio.timeout(grace):
                await conn.close(1000)
        except TimeoutError:
            pass  # the adapter aborts the transport when its close is cut short

    async def _interruptible(self, aw: Awaitable[_T], limit: float | None) -> _T:
        """Await ``aw``; TimeoutError when ``limit`` seconds pass or when ``stop()`` is called."""
        async with asyncio.timeout(limit) as wakeup:
            self._wakeup = wakeup
            if self._stopping:
                wakeup.reschedule(asyncio.get_running_loop().time())
            try:
                return await aw
            finally:
                self._wakeup = None

    def _backoff(self) -> Iterator[float]:
        return backoff(self.cfg.reconnect)

    def _was_healthy(self) -> bool:
        if self._connected_at is None:
            return False
        return self._delivered > 0 or self._clock() - self._connected_at >= HEALTHY_AFTER

    def _set_state(self, state: ConnState) -> None:
        self.state = state
        if state is self._announced:
            return
        self._announced = state
        name = self.cfg.name
        if state is ConnState.CONNECTING:
            self._log.debug("source %s: connecting to %s", name, safe_url(self.cfg.url))
        elif state in (ConnState.AUTHENTICATING, ConnState.SUBSCRIBING):
            self._log.debug("source %s: %s", name, state)
        elif state in (ConnState.CONNECTED, ConnState.STOPPED):
            self._log.info("source %s: %s", name, state)
        # RECONNECTING and FAILED are logged by run(), with their reason.
        if self._on_state is not None:
            self._on_state(name, state)

    def _note_invalid(self, count: int) -> None:
        self.stats.invalid += count
        now = self._clock()
        if self._invalid_logged_at is None:
            self._invalid_logged_at = now
            action = "forwarding it raw" if self.cfg.on_invalid == "forward" else "dropping it"
            self._log.warning(
                "source %s: received a text frame that is not valid JSON, %s "
                "(further ones are counted and summarised every %ds)",
                self.cfg.name, action, int(INVALID_LOG_EVERY),
            )
            return
        self._invalid_unlogged += count
        if now - self._invalid_logged_at >= INVALID_LOG_EVERY:
            self._log.warning(
                "source %s: %d more text frames that are not valid JSON since the last report",
                self.cfg.name, self._invalid_unlogged,
            )
            self._invalid_logged_at, self._invalid_unlogged = now, 0
