"""A WebSocket server's lifecycle, shared by every server organism: listen, report, stop.

The organisms (the demo upstream, the replay upstream, the websocket sink) differ only in
what they do with a connection; binding, the bound port, serving until cancelled and the
bounded shutdown (every client gets 1001 "going away") live here once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sized
from typing import Final, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

__all__ = ["Handler", "Listener", "ProcessRequest", "Request", "Response", "Served"]

log = logging.getLogger("bridge.server")

MAX_INCOMING: Final = 1 << 20
Handler = Callable[[ServerConnection], Awaitable[None]]
ProcessRequest = Callable[[ServerConnection, Request], Response | None]


class Listener:
    """One listening server; ``await start()``, then ``await serve_forever()`` or ``close()``.

    ``label`` starts its log lines ("demo upstream: listening on ..."). ``on_close`` runs
    first when closing, while clients are still connected (to stop producers, or to let
    clients catch up); then the server stops and every connection handler returns.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        label: str,
        process_request: ProcessRequest | None = None,
        compression: bool = True,
        max_size: int | None = MAX_INCOMING,
        close_timeout: float = 2.0,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.label = label
        self._handler = handler
        self._process_request = process_request
        self._compression = compression
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._on_close = on_close
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._port = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        """Listen on ``host:port`` (port 0 picks a free one); raises OSError when it cannot."""
        if self._server is not None:
            raise RuntimeError(f"{self.label} already started")
        self._server = await serve(
            self._handler, host, port,
            process_request=self._process_request,
            compression="deflate" if self._compression else None,
            max_size=self._max_size, close_timeout=self._close_timeout,
        )
        self._host = host
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("%s: listening on %s", self.label, self.url)

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.label} not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host or "0.0.0.0"  # noqa: S104
        return f"ws://{host}:{self.port}"

    async def serve_forever(self) -> None:
        """Serve until ``close()`` is called or this coroutine is cancelled (then it closes)."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.wait_closed()
        except asyncio.CancelledError:
            await asyncio.shield(self.close())
            raise

    async def close(self) -> None:
        """Stop listening and close every client with 1001, bounded in time; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._on_close is not None:
            await self._on_close()
        server.close()
        try:
            async with asyncio.timeout(self._close_timeout + 1.0):
                await server.wait_closed()
        except TimeoutError:
            # A client that stopped reading never takes the close frame: drop it outright.
            for connection in list(server.all_connections):
                connection.transport.abort()
            await server.wait_closed()
        log.info("%s: stopped", self.label)


class Served:
    """What a server organism shows of its ``Listener``: address, serving, closing, ``async with``
    (which starts it on a free port). The organism sets ``_listener`` and ``_clients``."""

    _listener: Listener
    _clients: Sized

    async def start(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; read it back from ``port``)."""
        await self._listener.start(host, port)

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def url(self) -> str:
        return self._listener.url

    @property
    def clients(self) -> int:
        """How many clients are connected now."""
        return len(self._clients)

    async def serve_forever(self) -> None:
        """Serve until ``close()`` is called or this coroutine is cancelled (then it closes)."""
        await self._listener.serve_forever()

    async def close(self) -> None:
        """Stop listening and close every client with 1001; idempotent."""
        await self._listener.close()

    async def __aenter__(self) -> Self:
        if not self._listener.running:
            await self.start(port=0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
