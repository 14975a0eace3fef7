"""One running source as the supervisor holds it: its client (one connection, or a pool of
them), its router, the task that runs the client and the timer that releases what its routes
hold (throttle, batch); and what it reports, read from all of them at once (its snapshot)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from bridge.routing.router import Router
from bridge.stats.snapshot import SourceSnapshot
from bridge.upstream.client import SourceClient
from bridge.upstream.pool import Pool
from bridge.upstream.state import ConnState


class RunningSource:
    """One running source: its client, its router and its tasks."""

    client: SourceClient | Pool

    def __init__(self, router: Router) -> None:
        self.router = router
        self.task: asyncio.Task[None] | None = None
        self.timers: asyncio.Task[None] | None = None  # releases what its routes hold, when due
        self.wake = asyncio.Event()  # the router has a sooner deadline
        self.was_connected = False
        self.since = time.monotonic()  # when it last became connected, or stopped being so

    def time_routes(self, group: asyncio.TaskGroup | None, name: str) -> None:
        """Start the route timer in ``group`` when the routes hold values (throttle, batch);
        a new router is read at once."""
        self.router.wake = self.wake.set
        self.wake.set()
        if self.timers is None and self.router.timed and group is not None:
            self.timers = group.create_task(self._route_timer(), name=f"routes:{name}")

    def stop_timer(self) -> None:
        if self.timers is not None:
            self.timers.cancel()
            self.timers = None

    async def _route_timer(self) -> None:
        """Release what the routes hold when it is due; ``wake`` says the router has a sooner
        deadline (or is a new router). The router keeps the time, this task only waits."""
        while True:
            self.wake.clear()
            deadline = self.router.deadline()
            delay = None if deadline is None else deadline - time.monotonic()
            if delay is not None and delay <= 0:
                if (wait := self.router.tick()) is not None:
                    await wait
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()

    def snapshot(self, now: float, wall: float, grace: float) -> SourceSnapshot:
        """Its counters now; ``grace``: how long it still counts as ready while down
        (metrics.ready_grace)."""
        client, stats, router = self.client, self.client.stats, self.router
        connected = client.state is ConnState.CONNECTED
        last = router.last_received
        pool = client.view() if isinstance(client, Pool) else None
        snap = SourceSnapshot(
            name=client.cfg.name, state=client.state.value,
            connected_since=self.since if connected else None,
            received=stats.received, bytes=stats.bytes, invalid=stats.invalid,
            forwarded=dict(router.stats.forwarded),
            dropped={"render_error": sum(router.stats.render_errors.values()),
                     "duplicate": stats.recovery["duplicate"]},
            held=dict(router.held()),
            reconnects=dict(stats.reconnects),
            last_message_age=None if last is None else max(0.0, wall - last),
            handshake_seconds=stats.handshake_seconds,
            grace_until=None if connected else self.since + grace, grace_seconds=grace,
            down_seconds=0.0 if connected else max(0.0, now - self.since),
            recovery=dict(stats.recovery), sent=stats.sent, outgoing_dropped=dict(stats.outgoing),
            undecodable=dict(stats.undecodable), rejected=stats.rejected,
            last_error=None if connected else stats.last_error, rollovers=stats.rollovers,
        )
        if pool is None:
            return snap
        return dataclasses.replace(
            snap, last_error=pool.problem, connection_reconnects=pool.reconnects,
            connections_up={k: int(v == "connected") for k, v in pool.connections.items()},
            items=pool.items, items_up=pool.items_up)
