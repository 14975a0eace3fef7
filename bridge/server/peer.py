"""One client of a server: a bounded outbox with its own writer, so a slow reader stalls nobody.

Producers call ``send`` and never wait. A client whose outbox is full is cut off: it gets a
close frame with code 1008 behind what its socket still holds, and if it does not answer
within ``close_timeout`` (it may not be reading at all) the TCP connection is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

CUT_OFF_CODE: Final = 1008  # policy violation: the client did not keep up
CUT_OFF_REASON: Final = "client too slow"
Frame = str | bytes


class Peer:
    """A connected client; run ``await serve(on_frame)`` in its connection handler.

    ``sent`` counts the frames written that were sent with ``count`` (not replies).
    """

    def __init__(
        self,
        ws: ServerConnection,
        limit: int,
        *,
        on_sent: Callable[[], None] | None = None,
        on_cut: Callable[[Peer], None] | None = None,
        close_timeout: float = 2.0,
    ) -> None:
        self.ws = ws
        self.limit = limit
        self.cut_off = False
        self.sent = 0
        self._outbox: deque[tuple[Frame, bool]] = deque()
        self._on_sent = on_sent
        self._on_cut = on_cut
        self._close_timeout = close_timeout
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    def send(self, frame: Frame, *, count: bool = True) -> None:
        """Queue ``frame``; when ``limit`` frames are already waiting, cut the client off.

        ``on_sent`` is called once ``frame`` is written, unless ``count`` is False (replies).
        """
        if self.cut_off or (self._writer is not None and self._writer.done()):
            return  # closing or closed: nothing more will be written
        if len(self._outbox) >= self.limit:
            self._cut()
            return
        self._outbox.append((frame, count))
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Return once the outbox is written, or once the client is gone or cut off."""
        await self._idle.wait()

    async def serve(self, on_frame: Callable[[Frame], None]) -> None:
        """Pass each received frame to ``on_frame`` and write the outbox, until closed."""
        self._writer = asyncio.create_task(self._write())
        try:
            with contextlib.suppress(ConnectionClosed):
                async for frame in self.ws:
                    if not self.cut_off:
                        on_frame(frame)
        finally:
            self._writer.cancel()
            tasks = [self._writer] + ([self._closer] if self._closer is not None else [])
            await asyncio.wait(tasks)
            self._release()

    async def _write(self) -> None:
        try:
            while True:
                while self._outbox:
                    frame, count = self._outbox[0]
                    await self.ws.send(frame)
                    self._outbox.popleft()
                    if count:
                        self.sent += 1
                        if self._on_sent is not None:
                            self._on_sent()
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
        except ConnectionClosed:
            self._release()

    def _release(self) -> None:
        self._outbox.clear()
        self._idle.set()

    def _cut(self) -> None:
        # Waiting for this client would stall the producer and every other client.
        self.cut_off = True
        if self._writer is not None:
            self._writer.cancel()
        self._release()
        self._closer = asyncio.create_task(self._close_slow())
        if self._on_cut is not None:
            self._on_cut(self)

    async def _close_slow(self) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await self.ws.close(CUT_OFF_CODE, CUT_OFF_REASON)
        except TimeoutError:
            self.ws.transport.abort()
