"""``ws-bridge probe``: one source's whole session, and what its routes would make of the next
messages, published nowhere.

The messages go through the source's own ``Router``, each route into a sink of its own that
never runs (a stdout sink with no writer): what a route's queue holds afterwards is exactly what
the daemon would have delivered, rendered by the router's own code; a route that held nothing
says why (its ``when``, a template error, or its processing steps holding the value)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from bridge.config.model import SourceConfig
from bridge.messages import Message
from bridge.routing.router import Router
from bridge.sinks.settings import StdoutSinkConfig
from bridge.sinks.stdout import StdoutSink
from bridge.upstream.client import SourceClient
from bridge.upstream.oneshot import finish
from bridge.upstream.share import share_config
from bridge.upstream.state import ConnState

PROBE_TIMEOUT: Final = 10.0  # seconds for the N messages, connecting included
SHOWN: Final = 400  # characters of a message or payload printed


def _text(data: str | bytes) -> str:
    text = data if isinstance(data, str) else f"<{len(data)} bytes> " + data.hex()
    return text if len(text) <= SHOWN else text[:SHOWN] + f"... ({len(text)} characters)"


class Trial:
    """The source's routes, each into its own never-running sink: ``explain(msg)`` routes one
    message and returns one line per route, what it delivered or why it delivered nothing."""

    def __init__(self, src: SourceConfig) -> None:
        self._names = [spec.sink for spec in src.routes]
        specs = tuple(replace(spec, sink=f"route {i}") for i, spec in enumerate(src.routes))
        self._sinks = [StdoutSink(StdoutSinkConfig(spec.sink)) for spec in specs]
        self._router = Router(replace(src, routes=specs), {s.name: s for s in self._sinks})

    def explain(self, msg: Message) -> list[str]:
        stats = self._router.stats
        filtered, errors = list(stats.filtered), stats.render_errors.copy()
        self._router.route(msg)  # the sinks never fill up: nothing to wait for
        lines = []
        for i, sink in enumerate(self._sinks):
            head = f"  route {i} (sink {self._names[i]}):"
            got = sink.queue.take(len(sink.queue))
            for delivery in got:
                lines.append(f"{head} topic {delivery.topic or '-'} payload "
                             f"{_text(delivery.payload)}")
            if got:
                continue
            if stats.filtered[i] > filtered[i]:
                lines.append(f"{head} not matched: its when did not match")
            elif stats.render_errors[i] > errors[i]:
                lines.append(f"{head} not matched: {stats.errors.get(i, 'a template failed')}")
            else:
                lines.append(f"{head} nothing yet: its steps hold the value (on_change, "
                             "throttle, batch or an empty each)")
        return lines or ["  no routes"]


async def probe_source(src: SourceConfig, count: int, wait: float | None,
                       show: Callable[[str], None]) -> tuple[bool, str]:
    """Run ``src``'s session until ``count`` messages came (each shown through ``show`` with
    what its routes make of it): (True, a summary), or (False, why) on a rejected connection,
    a failed source, or the end of ``wait`` seconds (connecting included)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bool, str]] = loop.create_future()
    limit = wait or PROBE_TIMEOUT
    if src.pool is not None:  # one connection shows the messages: the first one's share
        src = share_config(src, src.pool.items[:src.pool.per_connection])
    trial, seen = Trial(src), [0]

    def settle(ok: bool, why: str) -> None:
        if not done.done():
            done.set_result((ok, why))

    def deliver(msg: Message) -> None:
        if done.done():
            return
        seen[0] += 1
        show(f"message {seen[0]}: {_text(msg.data)}")
        for line in trial.explain(msg):
            show(line)
        if seen[0] >= count:
            settle(True, f"{seen[0]} message{'s' * (seen[0] != 1)} from source {src.name}")

    def state(_: str, now: ConnState) -> None:
        if now in (ConnState.RECONNECTING, ConnState.FAILED):  # the attempt ended: say why
            settle(False, client.stats.last_error or f"source {src.name}: {now}")

    client = SourceClient(src, deliver, on_state=state)
    task = asyncio.create_task(client.run())
    waits: list[asyncio.Future[Any]] = [done, task]
    await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    if seen[0]:
        settle(False, f"timeout: {seen[0]} of {count} messages within {limit:g}s")
    elif client.state is ConnState.CONNECTED:
        settle(False, f"no message within {limit:g}s (source {src.name} connected)")
    else:
        settle(False, f"timeout: source {src.name} still {client.state} after {limit:g}s")
    await finish(client.stop, task)
    return done.result()
