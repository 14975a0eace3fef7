"""A source's client run for one errand (``ws-bridge call``, ``probe``, ``check --connect``):
stopped afterwards the way the daemon stops it, within a budget."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

STOP_BUDGET: Final = 10.0  # seconds for the source to unsubscribe and close afterwards


async def finish(stop: Callable[[], None], task: asyncio.Task[None]) -> None:
    """``stop()`` a client and wait for its ``run()`` ``task``: unsubscribe and close, within
    STOP_BUDGET seconds, then cancelled."""
    stop()
    _, pending = await asyncio.wait([task], timeout=STOP_BUDGET)
    for late in pending:
        late.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await late
