"""The one place the bridge meets the websockets client: open, send, receive, translate errors."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import urllib.parse
from collections import deque
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    InvalidHeader,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.frames import BINARY, TEXT
from websockets.typing import Subprotocol

from bridge.config.model import SourceConfig
from bridge.errors import (
    AuthRejected,
    ConnectFailed,
    ConnectionLost,
    HandshakeRejected,
    MessageTooBig,
    SessionTimeout,
)
from bridge.upstream.urls import proxy_for, safe_url

# Waiting longer for a peer's close frame gains nothing: the session reconnects either way.
MAX_CLOSE_TIMEOUT: Final = 5.0
_MESSAGE_TOO_BIG: Final = 1009
_KEEPALIVE_TIMEOUT: Final = 1011  # websockets closes with it when pings go unanswered
_ABNORMAL_CLOSURE: Final = 1006


class Connection:
    """One open WebSocket connection of one source; every failure surfaces as a ``SourceError``."""

    def __init__(self, source: str, ws: ClientConnection, handshake_seconds: float) -> None:
        self.source = source
        self.handshake_seconds = handshake_seconds
        self.subprotocol: str | None = ws.subprotocol
        self._ws = ws
        # websockets' buffer of received frames, when it has the shape ``recv`` reads directly
        self._got: Any = getattr(ws, "recv_messages", None)
        self._frames: Any = getattr(getattr(self._got, "frames", None), "queue", None)
        if not hasattr(self._got, "maybe_resume") or not isinstance(self._frames, deque):
            self._frames = None

    def take(self) -> str | bytes | None:
        """The next message if websockets holds it whole, in one frame; else None (``recv``).

        Taken straight from websockets' buffer, without an await, so a buffered message costs
        no future and no reassembly (ARCHITECTURE.md, hot path, has the figures). Waiting,
        fragments and invalid UTF-8 are left to websockets' own ``recv``."""
        frames, got = self._frames, self._got
        if frames and not got.get_in_progress and (frame := frames[0]).fin:
            try:  # frame.data is bytes or bytearray
                data = frame.data.decode() if frame.opcode is TEXT else bytes(frame.data)
            except UnicodeDecodeError:
                return None  # websockets' recv fails the connection with 1007, as the RFC wants
            if frame.opcode is TEXT or frame.opcode is BINARY:
                frames.popleft()
                got.maybe_resume()
                return data
        return None

    async def recv(self) -> str | bytes:
        """The next whole message: ``str`` for a text frame, ``bytes`` for a binary one."""
        if (data := self.take()) is not None:
            return data
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise _lost(self.source, exc) from None
        except ConcurrencyError:
            raise RuntimeError(f"source {self.source!r}: recv() called concurrently") from None

    async def send(self, data: str | bytes) -> None:
        """Send one message: ``str`` as a text frame, ``bytes`` as a binary one."""
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise _lost(self.source, exc) from None
        except ConcurrencyError:
            raise RuntimeError(f"source {self.source!r}: send() during a fragmented send") from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and wait, bounded, for the peer; never raises."""
        timeout = (self._ws.close_timeout or MAX_CLOSE_TIMEOUT) + 1.0
        try:
            async with asyncio.timeout(timeout):
                await self._ws.close(code, reason)
        except (OSError, TimeoutError, WebSocketException):
            pass
        finally:
            self._ws.transport.abort()


async def open_connection(cfg: SourceConfig, tls: ssl.SSLContext | None = None,
                          url: str | None = None, headers: dict[str, str] | None = None
                          ) -> Connection:
    """Open the source's connection; raises ConnectFailed, HandshakeRejected or AuthRejected.

    ``tls`` is the context for a ``wss://`` URL, built by the caller with
    ``bridge.tls.client_context`` (None: websockets' default, the system store). ``url`` and
    ``headers``: as rendered for this attempt (default: the config's)."""
    url = cfg.url if url is None else url
    where = safe_url(url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        ws = await connect(url, **_connect_options(cfg, tls, url, headers))
    except InvalidStatus as exc:
        status = exc.response.status_code
        detail = f"{where}: handshake rejected with HTTP {status}"
        if status in (401, 403):
            raise AuthRejected(cfg.name, detail) from None
        raise HandshakeRejected(cfg.name, status, detail) from None
    except InvalidProxyStatus as exc:
        status = exc.response.status_code
        raise ConnectFailed(cfg.name, f"{where}: proxy answered HTTP {status}") from None
    except InvalidURI:
        raise ConnectFailed(cfg.name, f"{where}: not a valid ws:// or wss:// URL") from None
    except InvalidProxy:
        raise ConnectFailed(cfg.name, f"{where}: the proxy URL is not valid") from None
    except InvalidHeader as exc:
        # The header's value may be a secret echoed back; its name is not.
        detail = f"{where}: invalid handshake ({type(exc).__name__} in {exc.name})"
        raise ConnectFailed(cfg.name, detail) from None
    except WebSocketException as exc:
        # Some of these messages quote redirect URLs, which may hold tokens.
        detail = f"{where}: invalid handshake ({type(exc).__name__})"
        raise ConnectFailed(cfg.name, detail) from None
    except TimeoutError:
        detail = f"{where}: opening handshake timed out after {cfg.connect_timeout:g}s"
        raise ConnectFailed(cfg.name, detail) from None
    except ssl.SSLCertVerificationError as exc:
        detail = f"{where}: TLS certificate verification failed: {exc.verify_message}"
        raise ConnectFailed(cfg.name, detail) from exc
    except OSError as exc:
        raise ConnectFailed(cfg.name, f"{where}: {exc}") from exc
    except (ValueError, ImportError) as exc:
        raise ConnectFailed(cfg.name, f"{where}: cannot connect ({type(exc).__name__})") from None
    handshake_seconds = loop.time() - started
    _set_nodelay(ws)
    return Connection(cfg.name, ws, handshake_seconds)


def _connect_options(cfg: SourceConfig, tls: ssl.SSLContext | None, url: str,
                     headers: dict[str, str] | None) -> dict[str, Any]:
    ping_interval = cfg.ping_interval if cfg.ping_interval > 0 else None
    ping_timeout = cfg.ping_timeout if cfg.ping_timeout > 0 else None
    options: dict[str, Any] = {
        "additional_headers": dict(cfg.headers if headers is None else headers),
        "subprotocols": [Subprotocol(p) for p in cfg.subprotocols] or None,
        "compression": "deflate" if cfg.compression else None,
        "open_timeout": cfg.connect_timeout if cfg.connect_timeout > 0 else None,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        # A half-open peer never answers our close frame; bound the wait by the ping timeout.
        "close_timeout": min(ping_timeout or MAX_CLOSE_TIMEOUT, MAX_CLOSE_TIMEOUT),
        "max_size": cfg.max_message_size if cfg.max_message_size > 0 else None,
        "proxy": proxy_for(url, cfg.proxy),
    }
    if tls is not None and urllib.parse.urlsplit(url).scheme == "wss":
        options["ssl"] = tls
    return options


def _set_nodelay(ws: ClientConnection) -> None:
    # Feeds are many small frames; Nagle would add latency to every ping and reply.
    sock = ws.transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may already have gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _lost(source: str, exc: ConnectionClosed) -> ConnectionLost | SessionTimeout:
    """The peer's close code, else ours (1009), else 1006; unanswered pings: a ping timeout."""
    if exc.sent is not None and exc.sent.code == _MESSAGE_TOO_BIG and not exc.rcvd_then_sent:
        return MessageTooBig(source, exc.sent.code, exc.sent.reason)
    if exc.rcvd is None and exc.sent is not None and exc.sent.code == _KEEPALIVE_TIMEOUT:
        return SessionTimeout(source, "ping", "the peer stopped answering pings (half-open)")
    if exc.rcvd is not None:
        return ConnectionLost(source, exc.rcvd.code, exc.rcvd.reason)
    if exc.sent is not None:
        return ConnectionLost(source, exc.sent.code, exc.sent.reason)
    return ConnectionLost(source, _ABNORMAL_CLOSURE, "no close frame")
