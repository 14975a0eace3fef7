"""The live tap (``metrics.tap``): copies of every message for ``/tap`` readers, as envelope lines.

The bridge never waits for a reader: each reader has a bounded buffer the event loop fills
without blocking (``metrics.tap_buffer`` lines); a reader that falls further behind is cut off,
its socket shut down, and the bridge goes on. Readers are served by the metrics endpoint's
threads (a WSGI app); the token is compared in constant time, as the websocket sink's is.
Lines are built only while a reader is connected, with every secret of the config redacted."""

from __future__ import annotations

import contextlib
import hmac
import logging
import queue
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

from bridge.messages import Delivery, Message
from bridge.redaction import redact
from bridge.sinks.formats import envelope

logger = logging.getLogger("bridge.tap")
SNDBUF: Final = 65536  # bytes the kernel holds for a reader: the buffer bounds the rest
CUT: Final = b'{"tap":"cut off: this reader fell more than tap_buffer lines behind"}\n'
RouteFn = Callable[[Message], Awaitable[None] | None]
StartResponse = Callable[[str, list[tuple[str, str]]], object]


@dataclass(eq=False)
class _Reader:
    sources: frozenset[str]
    lines: queue.Queue[bytes | None]
    sock: socket.socket | None
    cut: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Tap:
    """Readers of ``/tap``; ``wrap`` a source's route function to feed them."""

    def __init__(self, token: str, secrets: Iterable[str], buffer: int = 1000) -> None:
        self._token, self._secrets, self._buffer = token.encode(), tuple(secrets), buffer
        self._readers: tuple[_Reader, ...] = ()  # replaced, never mutated: read on the loop
        self._lock = threading.Lock()
        self._closed = False

    def wrap(self, route: RouteFn) -> RouteFn:
        """``route`` that first offers each message to the readers (free while there are none)."""
        def tapped(msg: Message) -> Awaitable[None] | None:
            if self._readers:
                self._offer(msg)
            return route(msg)
        return tapped

    def _offer(self, msg: Message) -> None:
        line: bytes | None = None
        for reader in self._readers:
            if reader.sources and msg.source not in reader.sources:
                continue
            if line is None:
                text = envelope(Delivery(msg, msg.data))
                line = (redact(text, self._secrets) + "\n").encode()
            try:
                reader.lines.put_nowait(line)
            except queue.Full:
                self._cut(reader)

    def _cut(self, reader: _Reader) -> None:
        """Too far behind: drop it and shut its socket, so its thread's blocked write ends."""
        reader.cut = True
        self._remove(reader)
        logger.warning("tap: a reader fell more than %d lines behind; cut off", self._buffer)
        _shut(reader.sock)

    def _remove(self, reader: _Reader) -> None:
        with self._lock:
            self._readers = tuple(r for r in self._readers if r is not reader)

    def close(self) -> None:
        """The bridge stops: every reader's stream ends."""
        self._closed = True
        for reader in self._readers:
            self._remove(reader)
            _shut(reader.sock)
            with contextlib.suppress(queue.Full):  # a full one sees _closed after its next line
                reader.lines.put_nowait(None)

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The ``/tap`` WSGI app: ``?source=NAME`` (repeatable) filters; ``?token=`` or
        ``Authorization: Bearer`` authorises."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        offered = query.get("token", [])
        scheme, _, credential = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credential.strip())
        if not any(hmac.compare_digest(t.encode(), self._token) for t in offered):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("WWW-Authenticate", 'Bearer realm="ws-bridge"')])
            return [b"a valid token is required\n"]
        sock = environ.get("bridge.socket")
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        reader = _Reader(frozenset(query.get("source", [])), queue.Queue(self._buffer),
                         sock if isinstance(sock, socket.socket) else None)
        with self._lock:
            if not self._closed:
                self._readers = (*self._readers, reader)
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        logger.info("tap: a reader connected (%s)", ", ".join(sorted(reader.sources)) or "all")
        return self._lines(reader)

    def _lines(self, reader: _Reader) -> Iterator[bytes]:
        try:
            yield b""  # the headers go out now, before the first message
            while not self._closed:
                line = reader.lines.get()
                if line is None or reader.cut:
                    break
                yield line
            if reader.cut:
                yield CUT
        finally:
            self._remove(reader)
            logger.info("tap: a reader left")


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by its reader
            sock.shutdown(socket.SHUT_RDWR)
