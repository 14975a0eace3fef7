"""The router: turns one received message into deliveries for the sinks its source's routes name.

JSON is parsed only when a route needs it (a ``when`` or a template reading ``{msg...}``);
invalid JSON is counted and dropped per ``on_invalid`` by the session, before the router.
A route with processing steps (``each``, ``on_change``, ``throttle``, ``batch``) runs them in its
``Flow``. Held values wait on deadlines, sans-I/O: ``deadline()``, then ``tick()``; ``wake`` is
called when a sooner deadline appears, and the caller owns the timer.
Under ``overflow: block`` the router hands back the full sinks' ``drain()`` for the caller to
await: that is backpressure, the same on every sink's queue (``SinkQueue``: in memory or the
durable outbox).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bridge.config.model import SourceConfig
from bridge.decoding import INVALID
from bridge.messages import Delivery, Message
from bridge.routing.context import Context, TemplateError
from bridge.routing.flow import Flow
from bridge.routing.flows import Flows
from bridge.routing.render import deliver
from bridge.routing.routes import Route, build_routes, reads_message, reads_nonce
from bridge.sinks.base import Sink

logger = logging.getLogger("bridge.routing")
LOG_EVERY = 60.0  # seconds between two log lines about the same recurring problem


@dataclass
class RouterStats:
    """``forwarded`` per sink name; ``render_errors`` (the latest one in ``errors``) and
    ``filtered`` (``when``) per route."""

    forwarded: Counter[str] = field(default_factory=Counter)
    render_errors: Counter[int] = field(default_factory=Counter)
    filtered: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # the latest render error per route


def _backpressure(full: list[Sink]) -> Awaitable[None] | None:
    if not full:
        return None
    return full[0].drain() if len(full) == 1 else _drain_all(full)


async def _drain_all(sinks: list[Sink]) -> None:
    for sink in sinks:
        await sink.drain()


class Router:
    """Routes the messages of one source; every matching route gets its own delivery."""

    def __init__(
        self,
        source: SourceConfig,
        sinks: Mapping[str, Sink],
        *,
        hostname: str = "",
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        previous: Router | None = None,
        routed: Callable[[], None] | None = None,
    ) -> None:
        """``routed`` is called after each message is routed (the daemon's ``Turns``)."""
        self.source = source.name
        self.stats = RouterStats(filtered=[0] * len(source.routes))
        self.last_received: float | None = None  # wall time of the latest message routed
        self.wake: Callable[[], None] = lambda: None  # a sooner deadline: the timer must know
        self._wall, self._clock, self._routed = wall, clock, routed
        self._known: float | None = None  # the deadline the timer was last told
        self._flows: Flows = Flows(previous._flows if previous else None)
        self._seq = itertools.count(1).__next__
        self._log = logging.LoggerAdapter(logger, {"source": source.name})
        self._last_log: dict[int, float] = {}
        self._routes = build_routes(source, sinks, hostname, self._flows)
        self._ctx_json = reads_message(source)
        self._ctx_once = reads_nonce(source)  # one {nonce} per message
        for name, delivery in self._flows.orphans(clock()):  # a reload dropped their route
            if name in sinks:
                self._deliver(sinks[name], delivery)
        # One context, refilled per message: rendering is synchronous and keeps no reference.
        self._ctx = Context(source.name, INVALID, "", 0.0, self._seq, hostname)

    def route(self, msg: Message) -> Awaitable[None] | None:
        """Send ``msg`` to every matching route's sink; an awaitable means: wait for room."""
        self.last_received = msg.received_at
        ctx: Context | None = None
        full: list[Sink] = []
        for route in self._routes:
            spec = route.spec
            if (when := spec.when) is not None and \
                    not when.matches(msg.json, msg.text if when.reads_text else None):
                self.stats.filtered[route.index] += 1
                continue
            if route.flow is not None:
                self._feed(route, route.flow, msg, ctx or self._context(msg), full)
                continue
            if route.templated:
                if ctx is None:
                    ctx = self._context(msg)
                try:
                    delivery = deliver(spec, msg, ctx)
                except (TemplateError, TypeError, ValueError) as exc:
                    self._render_error(route, exc)
                    continue
            else:
                delivery = Delivery(msg, msg.data, route.topic, spec.qos, spec.retain)
            route.sink.send(delivery)
            self.stats.forwarded[spec.sink] += 1
            if route.block is not None and route.block.full:
                full.append(route.sink)
        if self._routed is not None:
            self._routed()
        return _backpressure(full)

    def _feed(self, route: Route, flow: Flow, msg: Message, ctx: Context,
              full: list[Sink]) -> None:
        out: list[Delivery] = []
        flow.feed(msg, ctx, self._clock() if flow.hold is not None else 0.0, out)  # for holds
        while flow.errors:
            self._render_error(route, flow.errors.pop())
        if out:
            for delivery in out:
                route.sink.send(delivery)
            self.stats.forwarded[route.spec.sink] += len(out)
            if route.block is not None and route.block.full:
                full.append(route.sink)
        if flow.hold is not None and flow.hold.armed():  # a deadline appeared: the timer
            due = flow.hold.deadline()  # must know when it is sooner than the one it waits for
            if due is not None and (self._known is None or due < self._known):
                self._known = due
                self.wake()

    @property
    def timed(self) -> bool:
        """Whether a route holds values until a deadline (throttle, batch)."""
        return self._flows.timed()

    def deadline(self) -> float | None:
        """When ``tick`` next has something to release (``clock`` time), or None."""
        self._known = self._flows.deadline()
        return self._known

    def tick(self, now: float | None = None) -> Awaitable[None] | None:
        """Release what is due by ``now``: held throttled values, batches whose time is up."""
        full: list[Sink] = []
        for index, delivery in self._flows.due(self._clock() if now is None else now):
            route = self._routes[index]
            self._deliver(route.sink, delivery)
            if route.block is not None and route.block.full:
                full.append(route.sink)
        return _backpressure(full)

    def flush(self) -> None:
        """Release everything held, now: the sources have stopped and the sinks will close."""
        sinks = {route.spec.sink: route.sink for route in self._routes}
        for name, delivery in self._flows.flush(self._clock()):
            self._deliver(sinks[name], delivery)

    def held(self) -> Counter[str]:
        """What the routes held back, by reason: filtered, unchanged, throttled, no_items."""
        return self._flows.held() + Counter(filtered=sum(self.stats.filtered))

    def _deliver(self, sink: Sink, delivery: Delivery) -> None:
        sink.send(delivery)
        self.stats.forwarded[sink.name] += 1

    def _context(self, msg: Message) -> Context:
        ctx = self._ctx
        ctx.msg = msg.json if self._ctx_json else INVALID
        ctx.raw, ctx.now, ctx.match = msg.data, msg.received_at, msg.match  # {now_ms}: received
        if self._ctx_once:
            ctx.once.clear()
        return ctx

    def _render_error(self, route: Route, exc: Exception) -> None:
        self.stats.render_errors[route.index] += 1
        self.stats.errors[route.index] = str(exc)
        now, last = self._wall(), self._last_log.get(route.index)
        if last is None or now - last >= LOG_EVERY:  # once per route per minute
            self._last_log[route.index] = now
            count = self.stats.render_errors[route.index]
            self._log.warning(
                "source %s: route %d (sink %s) skipped a message: %s (%d so far)",
                self.source, route.index, route.spec.sink, exc, count,
            )
