"""The router: turns one received message into deliveries for the sinks its source's routes name.

JSON is parsed only when a route needs it (a ``when`` or a template reading ``{msg...}``);
invalid JSON is counted and dropped per ``on_invalid`` by the session, before the router.
Under ``overflow: block`` the router hands back the full sinks' ``drain()`` for the caller to
await: that is backpressure, the same on every sink's queue (``SinkQueue``: in memory or the
durable outbox).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from bridge.config.model import SourceConfig
from bridge.config.specs import RouteSpec
from bridge.decoding import INVALID
from bridge.messages import Delivery, Message
from bridge.routing.context import Context, TemplateError
from bridge.routing.sanitize import sanitize_topic_value
from bridge.sinks.base import Sink, SinkQueue

logger = logging.getLogger("bridge.routing")
LOG_EVERY = 60.0  # seconds between two log lines about the same recurring problem


@dataclass
class RouterStats:
    """``forwarded`` per sink name; ``render_errors`` per route index."""

    forwarded: Counter[str] = field(default_factory=Counter)
    render_errors: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Route:
    index: int
    spec: RouteSpec
    sink: Sink
    templated: bool
    block: SinkQueue | None
    topic: str | None  # a static topic, rendered at start


def _bound(spec: RouteSpec, consts: dict[str, str]) -> RouteSpec:
    """The route with what never changes for its source filled into its templates once."""
    topic = spec.topic.bind(consts, sanitize_topic_value) if spec.topic else None
    return replace(spec, topic=topic, payload=spec.payload.bind(consts) if spec.payload else None)


def _block_queue(sink: Sink) -> SinkQueue | None:
    queue = sink.queue
    return queue if queue.overflow == "block" else None


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
    ) -> None:
        self.source = source.name
        self.stats = RouterStats()
        self.last_received: float | None = None  # wall time of the latest message routed
        self._wall = wall
        self._seq = itertools.count(1).__next__
        self._log = logging.LoggerAdapter(logger, {"source": source.name})
        self._last_log: dict[int, float] = {}
        self._routes: list[_Route] = []
        for i, given in enumerate(source.routes):
            if given.sink not in sinks:
                raise ValueError(f"source {source.name}: route {i}: no sink named {given.sink!r}")
            sink = sinks[given.sink]
            spec = _bound(given, {"source": source.name, "hostname": hostname})
            static = spec.topic is None or spec.topic.static  # rendered once, here
            topic = spec.topic.render_str(Context()) if spec.topic and static else None
            templated = not static or spec.payload is not None
            self._routes.append(_Route(i, spec, sink, templated, _block_queue(sink), topic))
        templates = [t for r in source.routes for t in (r.topic, r.payload) if t is not None]
        self._ctx_json = any(t.uses_message for t in templates)
        self._ctx_once = any("nonce" in t.roots for t in templates)  # one {nonce} per message
        # One context, refilled per message: rendering is synchronous and keeps no reference.
        self._ctx = Context(source.name, INVALID, "", 0.0, self._seq, hostname)

    def route(self, msg: Message) -> Awaitable[None] | None:
        """Send ``msg`` to every matching route's sink; an awaitable means: wait for room."""
        self.last_received = msg.received_at
        ctx: Context | None = None
        full: list[Sink] = []
        for route in self._routes:
            spec = route.spec
            if spec.when is not None and not spec.when.matches(msg.json):
                continue
            if route.templated:
                if ctx is None:
                    ctx = self._context(msg)
                try:
                    delivery = self._render(spec, msg, ctx)
                except (TemplateError, TypeError, ValueError) as exc:
                    self._render_error(route, exc)
                    continue
            else:
                delivery = Delivery(msg, msg.data, route.topic, spec.qos, spec.retain)
            route.sink.send(delivery)
            self.stats.forwarded[spec.sink] += 1
            if route.block is not None and route.block.full:
                full.append(route.sink)
        if not full:
            return None
        return full[0].drain() if len(full) == 1 else _drain_all(full)

    def _context(self, msg: Message) -> Context:
        ctx = self._ctx
        ctx.msg = msg.json if self._ctx_json else INVALID
        ctx.raw, ctx.now = msg.data, msg.received_at  # {now_ms}: when it was received
        if self._ctx_once:
            ctx.once.clear()
        return ctx

    @staticmethod
    def _render(spec: RouteSpec, msg: Message, ctx: Context) -> Delivery:
        payload: str | bytes = msg.data
        if spec.payload is not None:
            value = spec.payload.render(ctx)
            if isinstance(value, str | bytes):
                payload = value
            else:
                payload = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        topic = None if spec.topic is None else spec.topic.render_str(ctx, sanitize_topic_value)
        return Delivery(msg, payload, topic, spec.qos, spec.retain)

    def _render_error(self, route: _Route, exc: Exception) -> None:
        self.stats.render_errors[route.index] += 1
        now, last = self._wall(), self._last_log.get(route.index)
        if last is None or now - last >= LOG_EVERY:  # once per route per minute
            self._last_log[route.index] = now
            count = self.stats.render_errors[route.index]
            self._log.warning(
                "source %s: route %d (sink %s) skipped a message: %s (%d so far)",
                self.source, route.index, route.spec.sink, exc, count,
            )
