"""The driver's wait between connections: an operation (opening the socket, an HTTP step) or
only time (the backoff), awaited while the session's deadlines are served (an RPC's timeout
answers even while the upstream is down). ``wake()`` cuts the wait short so the driver looks
again (an event, ``stop()``); ``hurry`` ends a timed wait early (a reconnect asked for between
connections). The connection's own loop uses the same ``wakeup`` while it reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bridge.errors import SourceError

_T = TypeVar("_T")


class Waiting:
    """``deadline()``: the session's next deadline; ``tick(now)``: serve it; ``stopping()``:
    the driver was asked to stop."""

    def __init__(self, clock: Callable[[], float], deadline: Callable[[], float | None],
                 tick: Callable[[float], None], stopping: Callable[[], bool]) -> None:
        self._clock, self._deadline, self._tick, self._stopping = clock, deadline, tick, stopping
        self.hurry = False
        self.wakeup: asyncio.Timeout | None = None  # the wait that events cut short

    def wake(self) -> None:
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.expired():
            wakeup.reschedule(asyncio.get_running_loop().time())

    async def serving(self, make: Callable[[], Awaitable[_T]] | None, limit: float | None
                      ) -> _T | None:
        """Await ``make()`` (or only time, ``limit`` seconds) while the session's deadlines
        are served; None at the end of ``limit`` or on stop, unless ``make()`` had finished by
        then: its result, which the caller must not leak."""
        loop, clock = asyncio.get_running_loop(), self._clock
        end = None if limit is None else clock() + limit
        task = asyncio.ensure_future(make()) if make is not None else None
        try:
            while not self._stopping():
                due = self._deadline()
                until = min((t for t in (end, due) if t is not None), default=None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(None if until is None else
                                               loop.time() + until - clock()) as wakeup:
                        self.wakeup = wakeup
                        return await asyncio.shield(task) if task else await loop.create_future()
                if end is not None and (clock() >= end or self.hurry):
                    return None
                self._tick(clock())
            if task is not None and task.done() and not task.cancelled() and \
                    task.exception() is None:
                return task.result()  # done just as stop came: the caller decides
            return None
        finally:
            self.wakeup = None
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, SourceError):
                    await task
