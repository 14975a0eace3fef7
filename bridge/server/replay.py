"""``ws-bridge replay``: a file recorded by the file sink, served back as a WebSocket upstream.

Every client that connects (any path) gets the recorded payloads from the first line on, at
the recorded pace divided by ``speed`` (0: as fast as the client reads), optionally only
those of one ``source``, and with ``loop`` over and over. Whatever a client sends (auth,
subscribe) is read and ignored, so a bridge config can be tried offline against real traffic.
Each client is paced on its own and written with back-pressure, so a slow one delays only
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.server.listener import Listener, Served
from bridge.server.recording import Recorded, delay, parse_line

log = logging.getLogger("bridge.server")

READ_CHUNK: Final = 1 << 16  # bytes of lines read per trip to the worker thread


class ReplayServer(Served):
    """Serves one recording; ``await start()``, then ``serve_forever()`` or ``close()``."""

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        loop: bool = False,
        source: str | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.source = source
        self.skipped = 0  # lines of the file that are not envelope JSON (counted once)
        self._listener = Listener(self._handle, label="replay")
        self._clients: set[ServerConnection] = set()
        self._counted = False

    async def start(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        """Check that the file can be read, then listen; raises OSError when either fails."""
        await asyncio.to_thread(self._check_readable)
        await self._listener.start(host, port)
        only = f" (source {self.source})" if self.source is not None else ""
        pace = "as fast as possible" if self.speed == 0 else f"at {self.speed:g}x the recorded pace"
        log.info("replay: serving %s%s %s%s", self.path, only, pace,
                 ", looping" if self.loop else "")

    def _check_readable(self) -> None:
        with self.path.open("rb"):
            pass

    async def _handle(self, ws: ServerConnection) -> None:
        self._clients.add(ws)
        player = asyncio.create_task(self._play(ws))
        try:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass  # requests are ignored; reading keeps pings and the close handshake going
        finally:
            self._clients.discard(ws)
            player.cancel()
            await asyncio.wait([player])

    async def _play(self, ws: ServerConnection) -> None:
        clock = asyncio.get_running_loop().time
        start = clock()
        with contextlib.suppress(ConnectionClosed):
            while True:
                first: float | None = None
                due = start
                async with contextlib.aclosing(self._records()) as records:
                    async for rec in records:
                        first = rec.at if first is None else first
                        due = start + delay(first, rec.at, self.speed)
                        if (wait := due - clock()) > 0:
                            await asyncio.sleep(wait)
                        await ws.send(rec.frame)
                self._count_done()
                if not self.loop or first is None:
                    return  # the connection stays open and quiet, like an upstream at rest
                start = max(due, clock())  # the next pass starts where this one ended

    async def _records(self) -> AsyncGenerator[Recorded, None]:
        skipped = 0
        with self.path.open("rb") as file:
            while lines := await asyncio.to_thread(file.readlines, READ_CHUNK):
                for line in filter(None, map(bytes.strip, lines)):
                    rec = parse_line(line)
                    if rec is None:
                        skipped += 1
                    elif self.source is None or rec.source == self.source:
                        yield rec
        self.skipped = skipped

    def _count_done(self) -> None:
        if not self._counted:
            self._counted = True
            if self.skipped:
                log.warning("replay: skipped %d lines of %s that are not envelope JSON",
                            self.skipped, self.path)


async def serve_replay(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    speed: float = 1.0,
    loop: bool = False,
    source: str | None = None,
) -> None:
    """Serve the recording at ``path`` on ``host:port`` until cancelled."""
    server = ReplayServer(path, speed=speed, loop=loop, source=source)
    await server.start(host, port)
    await server.serve_forever()
