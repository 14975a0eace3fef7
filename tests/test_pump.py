"""The pump's wait for frames (``Pump.next``), against a feed of our own: a frame that arrives
just as the driver's wait is cut short (an event, a reload's retarget, a deadline) is kept for
the driver's next read, never lost (found by the chaos soak: one number lost at a sink reload)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from bridge.messages import Message
from bridge.stats.source import SourceStats
from bridge.upstream.actions import Action
from bridge.upstream.pump import Pump


class Session:
    def screen(self, msg: Message, now: float) -> list[Action] | None:
        return None

    def unread_invalid(self, now: float) -> list[Action]:
        return []


class Feed:
    """A connection that hands nothing over in a callback: every frame comes through ``recv``."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.consuming = asyncio.Event()

    def consume(self, consumer: Callable[[str | bytes], None] | None) -> bool:
        if consumer is not None:
            self.consuming.set()
        return True

    async def recv(self) -> str | bytes:
        return await self.frames.get()


def pump() -> Pump:
    return Pump("feed", SourceStats(), Session(), frames=None, clock=time.monotonic,
                wall=time.time, deliver=lambda msg: None)


async def test_a_frame_that_comes_as_the_wait_is_cut_short_is_held_for_the_next_read() -> None:
    p, feed = pump(), Feed()
    waiting = asyncio.create_task(p.next(feed))
    await feed.consuming.wait()  # the pump waits in recv
    feed.frames.put_nowait('{"n": 868}')  # recv's result comes in this very turn ...
    waiting.cancel()  # ... as the driver's wait is cut short
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert p.held == '{"n": 868}'


async def test_a_wait_cut_short_with_nothing_received_holds_nothing() -> None:
    p, feed = pump(), Feed()
    waiting = asyncio.create_task(p.next(feed))
    await feed.consuming.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert p.held is None
    feed.frames.put_nowait("later")
    assert await p.next(feed) == "later"  # the cancelled recv took nothing from the feed
