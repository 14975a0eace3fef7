"""A scriptable loopback WebSocket upstream (pytest plugin) that client tests run against.

It is a real ``websockets.asyncio.server.serve`` on 127.0.0.1, port 0, so clients are tested
against real handshakes, frames, close codes and TCP behaviour; nothing is mocked.

Fixtures
--------
``upstream``
    A started :class:`Upstream` at ``ws://127.0.0.1:PORT/ws``, torn down after the test.
``upstream_factory``
    ``await upstream_factory(ssl=None, path="/ws", host="127.0.0.1", listen=None)`` starts
    another :class:`Upstream` (e.g. ``wss://`` with an ``ssl.SSLContext``); all are torn down
    after the test. ``listen(host, port) -> socket`` makes the listening socket instead (e.g.
    inside a network namespace, tests/support/netns.py).

Upstream
--------
``url``, ``host``, ``port``
    Where to connect (``wss://`` when started with ``ssl``). The port survives ``restart()``.
``handler``
    ``async def handler(conn: UpstreamConn) -> None``, run once per accepted connection.
    ``None`` (default): accept and record only. When the handler returns the connection
    stays open; it is cancelled when the connection closes. Any exception it raises
    (other than :class:`PeerClosed`) fails every later wait at once and the test at
    teardown (see ``errors``).
``subprotocols``
    List the server supports (default empty = none negotiated); the server picks the
    first of its own list that the client offered, and rejects with HTTP 400 if the
    client offered none.
``connections``
    Every accepted :class:`UpstreamConn`, oldest first.
``handshakes``
    Every upgrade request as a :class:`Handshake` (``path``, ``query``, ``headers``,
    ``at`` loop time, ``status``: 101, the rejection status, or ``None`` while stalled),
    including rejected and stalled ones; use ``at`` to measure reconnect delays.
``reject_next(status, times=1, body="rejected\\n")``
    Answer the next ``times`` upgrade requests with HTTP ``status`` (401, 403, 500...).
``admit``
    ``None`` or ``(Handshake) -> int | None``: asked about every upgrade request before
    ``reject_next``; a status it returns (429) rejects the request with it.
``stall_handshake``
    Settable bool. While True, upgrade requests are received but never answered (TCP is
    accepted): the client's connect timeout fires. Setting it back to False releases them.
``await wait_connections(n, timeout=5.0) -> list[UpstreamConn]``
    Wait until ``n`` connections have been accepted in total; returns ``connections``.
``await wait_handshakes(n, timeout=5.0) -> list[Handshake]``
    Same for upgrade requests.
``await kill()``
    Drop every open connection abruptly (TCP abort, no close frame); keeps listening.
``await stop()`` / ``await start()`` / ``await restart()``
    Kill and stop listening (connects are refused) / listen again on the same port / both.
``errors``
    Exceptions raised by handlers; non-empty at teardown fails the test.

UpstreamConn (one accepted connection)
--------------------------------------
``path`` ("/ws"), ``query`` (dict, last value wins), ``raw_path`` (path with query),
``headers`` (websockets ``Headers``: case-insensitive ``headers["X-Key"]``, ``.get``),
``subprotocol`` (negotiated or None), ``ws`` (the raw ``ServerConnection``).
``received``
    Every message the client sent, in order (str or bytes), recorded even if nobody reads.
``closed``, ``close_code``, ``close_reason``
    Set once the connection is closed; ``close_code`` is the client's close code, 1006
    when the TCP connection dropped without a close frame.
``await recv(timeout=5.0)`` / ``await recv_json(timeout=5.0)``
    The next message not yet taken by ``recv`` (FIFO over ``received``); raises
    :class:`PeerClosed` once the connection is closed and nothing is left.
``await send(data)`` / ``await send_json(obj)``
    Send a text (str) or binary (bytes) frame; ``send_json`` sends compact JSON text.
``await close(code=1000, reason="")``
    A clean close handshake initiated by the server.
``await wait_received(n, timeout=5.0) -> list``
    Wait until ``n`` messages in total have been received; returns ``received``.
``await wait_closed(timeout=5.0) -> int | None``
    Wait for the connection to close; returns ``close_code``.
``kill()``
    Abort this TCP connection (no close frame).
``go_half_open()`` / ``resume()``
    Stop / restart reading from the socket: the client's pings and messages go unanswered,
    exactly like a peer whose host vanished while TCP stays up.

NumberedFeed (a stream an exchange numbers across connections)
--------------------------------------------------------------
``feed = NumberedFeed(ack={"ok": True}, max_age=0.8)``; ``upstream.handler = feed.handler``.
Each connection's first message subscribes it (answered with ``ack``); from then on it gets
every number ``await feed.produce(count, every)`` sends (``{"n": 1}``, ``{"n": 2}`` ...), until
it closes; ``produce`` begins once a first connection has subscribed. The server cuts each
connection ``max_age`` seconds after it opened (close 1001, listed in ``cut``), as Binance
does after 24 h. ``subscribed`` lists the subscribed ones.

NumberedStream (an exchange's numbered stream with history)
-----------------------------------------------------------
``stream = NumberedStream(replay=None)``; ``upstream.handler = stream.handler``. Numbers
``{"n": 1}``, ``{"n": 2}`` ... made by ``await stream.produce(count, every)`` or
``await stream.produce_until(stop, every)`` (an ``asyncio.Event``); every new connection first
gets the history (the last ``replay`` numbers, all of them when ``None``), as exchanges replay
after a reconnect, then each number as it is made. ``sent`` lists the numbers made,
``replayed_from`` the first number each connection was sent.

Waits never sleep: they wake on recorded events and raise ``AssertionError`` on timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import ssl as ssl_module
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

Handler = Callable[["UpstreamConn"], Awaitable[None]]
Listen = Callable[[str, int], socket.socket]  # (host, port) -> a bound, listening socket


class PeerClosed(Exception):
    """The client closed the connection (raised by ``UpstreamConn.recv``)."""


class _Notifier:
    """Wakes every waiter on each recorded event, so tests await facts instead of sleeping.

    Waits fail at once when a handler has failed, with its exception as the cause, rather
    than timing out on an event the broken script will never produce.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.errors: list[BaseException] = []

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str, fail_fast: bool = True
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    if fail_fast and self.errors:
                        message = f"upstream handler failed while waiting for {what}"
                        raise AssertionError(message) from self.errors[0]
                    await self._event.wait()
        except TimeoutError:
            message = f"upstream: timed out after {timeout}s waiting for {what}"
            raise AssertionError(message) from None


@dataclass
class Handshake:
    """One upgrade request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: Headers
    at: float
    status: int | None = None


def _split(raw_path: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(raw_path)
    return parts.path, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))


class UpstreamConn:
    """One accepted connection: what the client sent, and the means to script the server side."""

    def __init__(self, ws: ServerConnection, notifier: _Notifier) -> None:
        assert ws.request is not None
        self.ws = ws
        self.raw_path = ws.request.path
        self.path, self.query = _split(self.raw_path)
        self.headers: Headers = ws.request.headers
        self.subprotocol: str | None = ws.subprotocol
        self.received: list[str | bytes] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._taken = 0
        self._notifier = notifier

    async def _read_all(self) -> None:
        try:
            while True:
                self.received.append(await self.ws.recv())
                self._notifier.notify()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._notifier.notify()

    async def recv(self, timeout: float = 5.0) -> str | bytes:
        def ready() -> bool:
            return self._taken < len(self.received) or self.closed

        await self._notifier.wait_for(ready, timeout, "a message from the client")
        if self._taken >= len(self.received):
            raise PeerClosed(f"client closed with code {self.close_code}")
        self._taken += 1
        return self.received[self._taken - 1]

    async def recv_json(self, timeout: float = 5.0) -> Any:
        return json.loads(await self.recv(timeout))

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def wait_received(self, n: int, timeout: float = 5.0) -> list[str | bytes]:
        await self._notifier.wait_for(lambda: len(self.received) >= n, timeout, f"{n} messages")
        return self.received

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await self._notifier.wait_for(lambda: self.closed, timeout, "the connection to close")
        return self.close_code

    def kill(self) -> None:
        self.ws.transport.abort()

    def go_half_open(self) -> None:
        self.ws.transport.pause_reading()

    def resume(self) -> None:
        self.ws.transport.resume_reading()


@dataclass
class _Reject:
    status: int
    body: str
    times: int


class Upstream:
    """A loopback WebSocket server whose behaviour each test scripts; see the module docstring."""

    def __init__(self, *, ssl: ssl_module.SSLContext | None = None, path: str = "/ws",
                 host: str = "127.0.0.1", listen: Listen | None = None) -> None:
        self.host = host
        self._listen = listen
        self.port = 0
        self.handler: Handler | None = None
        self.admit: Callable[[Handshake], int | None] | None = None
        self.subprotocols: list[str] = []
        self.connections: list[UpstreamConn] = []
        self.handshakes: list[Handshake] = []
        self._ssl = ssl
        self._path = path
        self._rejects: list[_Reject] = []
        self._release = asyncio.Event()
        self._release.set()
        self._notifier = _Notifier()
        self.errors = self._notifier.errors
        self._server: Server | None = None
        self._live: set[ServerConnection] = set()

    @property
    def url(self) -> str:
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}{self._path}"

    def reject_next(self, status: int, times: int = 1, body: str = "rejected\n") -> None:
        self._rejects.append(_Reject(status, body, times))

    @property
    def stall_handshake(self) -> bool:
        return not self._release.is_set()

    @stall_handshake.setter
    def stall_handshake(self, stall: bool) -> None:
        if stall:
            self._release = asyncio.Event()
        else:
            self._release.set()

    async def wait_connections(self, n: int, timeout: float = 5.0) -> list[UpstreamConn]:
        def enough() -> bool:
            return len(self.connections) >= n

        await self._notifier.wait_for(enough, timeout, f"{n} connections")
        return self.connections

    async def wait_handshakes(self, n: int, timeout: float = 5.0) -> list[Handshake]:
        def enough() -> bool:
            return len(self.handshakes) >= n

        await self._notifier.wait_for(enough, timeout, f"{n} handshakes")
        return self.handshakes

    async def start(self) -> None:
        upstream = self

        class Tracked(ServerConnection):
            # Tracks every TCP connection, even one stuck in its handshake, so kill() reaches it.
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                upstream._live.add(self)

            def connection_lost(self, exc: Exception | None) -> None:
                upstream._live.discard(self)
                super().connection_lost(exc)

        where: dict[str, Any] = ({"sock": self._listen(self.host, self.port)} if self._listen
                                 else {"host": self.host, "port": self.port})
        self._server = await serve(
            self._handle, ssl=self._ssl, **where,
            process_request=self._process_request, select_subprotocol=self._select,
            ping_interval=None, open_timeout=None, close_timeout=1, max_size=None,
            create_connection=Tracked,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def kill(self) -> None:
        for ws in list(self._live):
            ws.transport.abort()
        await self._notifier.wait_for(lambda: not self._live, 5.0, "drops", fail_fast=False)

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(close_connections=False)
        await self.kill()
        await server.wait_closed()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def close(self) -> None:
        await self.stop()

    def _select(self, ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        for proto in self.subprotocols:
            if proto in offered:
                return Subprotocol(proto)
        return None

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path, query = _split(request.path)
        loop = asyncio.get_running_loop()
        record = Handshake(path, query, request.headers, loop.time())
        self.handshakes.append(record)
        self._notifier.notify()
        if self.admit is not None and (status := self.admit(record)) is not None:
            record.status = status
            return ws.respond(status, "rate limited\n")
        if self._rejects:
            reject = self._rejects[0]
            reject.times -= 1
            if reject.times <= 0:
                self._rejects.pop(0)
            record.status = reject.status
            return ws.respond(reject.status, reject.body)
        if not self._release.is_set():
            # A stalled handshake ends when released or when its TCP connection drops.
            waiters = [
                asyncio.ensure_future(self._release.wait()),
                asyncio.ensure_future(ws.wait_closed()),
            ]
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
        record.status = 101
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = UpstreamConn(ws, self._notifier)
        self.connections.append(conn)
        self._notifier.notify()
        reader = asyncio.create_task(conn._read_all())
        script: asyncio.Future[None] | None = None
        if self.handler is not None:
            script = asyncio.ensure_future(self.handler(conn))
            script.add_done_callback(self._record_failure)
        try:
            await ws.wait_closed()
            await reader
        finally:
            for task in (reader, script):
                if task is not None and not task.done():
                    task.cancel()
            if script is not None:
                await asyncio.wait([script])
            self._notifier.notify()

    def _record_failure(self, script: asyncio.Future[None]) -> None:
        exc = None if script.cancelled() else script.exception()
        if exc is not None and not isinstance(exc, PeerClosed | ConnectionClosed):
            self.errors.append(exc)
            self._notifier.notify()


class NumberedFeed:
    """A numbered stream served to every subscribed connection; see the module docstring."""

    def __init__(self, ack: Any, max_age: float) -> None:
        self.ack, self.max_age = ack, max_age
        self.subscribed: list[UpstreamConn] = []
        self.cut: list[UpstreamConn] = []
        self._first = asyncio.Event()

    async def handler(self, conn: UpstreamConn) -> None:
        opened = asyncio.get_running_loop().time()
        await conn.recv()  # the subscription
        await conn.send_json(self.ack)
        self.subscribed.append(conn)
        self._first.set()
        # the server's own clock: the connection's age is up (pacing, not a wait for an event)
        await asyncio.sleep(max(0.0, opened + self.max_age - asyncio.get_running_loop().time()))
        if not conn.closed:
            self.cut.append(conn)
            await conn.close(1001, "maximum connection age")

    async def produce(self, count: int, every: float) -> None:
        """Send ``{"n": 1}`` .. ``{"n": count}``, one each ``every`` seconds, to each subscribed
        connection still open."""
        await asyncio.wait_for(self._first.wait(), 5.0)
        for n in range(1, count + 1):
            for conn in self.subscribed:
                if not conn.closed:
                    with contextlib.suppress(ConnectionClosed):
                        await conn.send_json({"n": n})
            await asyncio.sleep(every)


class NumberedStream:
    """An exchange-like numbered stream with a history; see the module docstring."""

    def __init__(self, replay: int | None = None) -> None:
        self.sent: list[int] = []
        self.replay = replay
        self.replayed_from: list[int] = []
        self._more = asyncio.Condition()

    async def handler(self, conn: UpstreamConn) -> None:
        """Runs until the connection closes (the upstream cancels it then)."""
        cursor = 0 if self.replay is None else max(0, len(self.sent) - self.replay)
        self.replayed_from.append(cursor + 1)
        while True:
            while cursor < len(self.sent):
                await conn.send_json({"n": self.sent[cursor]})
                cursor += 1
            async with self._more:
                await self._more.wait_for(functools.partial(self.more_than, cursor))

    def more_than(self, count: int) -> bool:
        return len(self.sent) > count

    async def _make(self) -> None:
        async with self._more:
            self.sent.append(len(self.sent) + 1)
            self._more.notify_all()

    async def produce(self, count: int, every: float) -> None:
        for _ in range(count):
            await self._make()
            await asyncio.sleep(every)  # the upstream's own pace, not a wait for an event

    async def produce_until(self, stop: asyncio.Event, every: float) -> None:
        """One number each ``every`` seconds on the loop's clock (late ones catch up) until
        ``stop`` is set."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not stop.is_set():
            await self._make()
            due += every
            with contextlib.suppress(TimeoutError):  # the pace, or the stop, whichever first
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))


@pytest_asyncio.fixture
async def upstream_factory() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    started: list[Upstream] = []

    async def make(*, ssl: ssl_module.SSLContext | None = None, path: str = "/ws",
                   host: str = "127.0.0.1", listen: Listen | None = None) -> Upstream:
        server = Upstream(ssl=ssl, path=path, host=host, listen=listen)
        await server.start()
        started.append(server)
        return server

    yield make
    errors = []
    for server in started:
        await server.close()
        errors.extend(server.errors)
    if errors:
        raise AssertionError(f"upstream handler(s) failed: {errors!r}") from errors[0]


@pytest_asyncio.fixture
async def upstream(
    upstream_factory: Callable[..., Awaitable[Upstream]],
) -> AsyncIterator[Upstream]:
    yield await upstream_factory()


__all__ = ["Handshake", "NumberedFeed", "NumberedStream", "PeerClosed", "Upstream", "UpstreamConn"]
