"""A scriptable loopback HTTP server (pytest plugin), beside the WebSocket upstream: the token,
keepalive and snapshot endpoints of the services HTTP steps talk to.

It is a real HTTP/1.1 server on 127.0.0.1 (``asyncio.start_server``, one request per
connection, ``Connection: close``), so the bridge's HTTP client is tested against real
sockets; nothing is mocked.

Fixture
-------
``http_upstream``
    A started :class:`HttpUpstream`, torn down after the test.
``http_upstream_factory``
    ``await http_upstream_factory(ssl=None)`` starts another (``https://`` with an
    ``ssl.SSLContext``); all are torn down after the test.

HttpUpstream
------------
``url``
    ``http://127.0.0.1:PORT`` (``https://`` with ``ssl``); the port survives ``restart()``.
``route(method, path, handler)``
    ``handler(request) -> Reply`` (or an awaitable of one) answers ``method path``; a
    request without a route gets 404. ``Reply(status=200, body=..., headers={})``: a
    ``dict``/``list`` body is sent as JSON.
``fail_next(status, times=1)``
    The next ``times`` requests, whatever their route, get ``status`` (401, 500...).
``delay``
    Settable seconds to wait before answering (a slow endpoint).
``requests``
    Every :class:`HttpRequestSeen` (``method``, ``path``, ``query``, ``headers`` with
    lower-case names, ``body`` text, ``json()``, ``target`` as sent: absolute when the
    client takes the server for its proxy), oldest first, including failed ones.
``await wait_requests(n, path=None, timeout=5.0)``
    Wait until ``n`` requests (to ``path``, if given) have come; returns them.
``await stop()`` / ``await start()`` / ``await restart()``
    Stop listening (connects are refused) / listen again on the same port / both.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import ssl as ssl_module
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio


@dataclass
class HttpRequestSeen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    target: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = ""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequestSeen], "Reply | Awaitable[Reply]"]
_REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            500: "Internal Server Error"}


class HttpUpstream:
    def __init__(self, ssl: ssl_module.SSLContext | None = None) -> None:
        self.host, self.port, self._ssl = "127.0.0.1", 0, ssl
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[HttpRequestSeen] = []
        self.delay = 0.0
        self._failures: list[int] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def fail_next(self, status: int, times: int = 1) -> None:
        self._failures += [status] * times

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def wait_requests(self, n: int, path: str | None = None, timeout: float = 5.0
                            ) -> list[HttpRequestSeen]:
        def seen() -> list[HttpRequestSeen]:
            return [r for r in self.requests if path is None or r.path == path]

        try:
            async with asyncio.timeout(timeout):
                while len(seen()) < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"http upstream: {len(seen())} of {n} requests to "
                                 f"{path or 'any path'} came within {timeout}s") from None
        return seen()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read(reader)
            if request is None:
                return
            self.requests.append(request)
            self._changed.set()
            if self.delay:
                await asyncio.sleep(self.delay)  # the slow endpoint itself, not a test's wait
            reply = await self._answer(request)
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = body.encode()
            kind = "text/plain" if isinstance(reply.body, str) else "application/json"
            head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}",
                    f"Content-Length: {len(data)}", f"Content-Type: {kind}",
                    "Connection: close", *(f"{k}: {v}" for k, v in reply.headers.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):  # a reset, a refused certificate
            pass
        finally:
            writer.close()

    async def _answer(self, request: HttpRequestSeen) -> Reply:
        if self._failures:
            return Reply(self._failures.pop(0), "failing on purpose\n")
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return Reply(404, "no such route\n")
        reply = handler(request)
        return await reply if inspect.isawaitable(reply) else reply

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> HttpRequestSeen | None:
        line = await reader.readline()
        if not line:
            return None
        method, target, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(parts.query))
        return HttpRequestSeen(method, parts.path, query, headers, body.decode(), target)


@pytest_asyncio.fixture
async def http_upstream_factory() -> AsyncIterator[Callable[..., Awaitable[HttpUpstream]]]:
    async with contextlib.AsyncExitStack() as servers:  # each stopped at teardown

        async def make(*, ssl: ssl_module.SSLContext | None = None) -> HttpUpstream:
            server = HttpUpstream(ssl)
            await server.start()
            servers.push_async_callback(server.stop)
            return server

        yield make


@pytest_asyncio.fixture
async def http_upstream(
    http_upstream_factory: Callable[..., Awaitable[HttpUpstream]],
) -> HttpUpstream:
    return await http_upstream_factory()


__all__ = ["HttpRequestSeen", "HttpUpstream", "Reply"]
