"""The one place the bridge meets the websockets client: open, send, receive, translate errors."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
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
from websockets.frames import Frame
from websockets.protocol import Event

from bridge.config.model import SourceConfig
from bridge.errors import AuthRejected, ConnectFailed, HandshakeRejected
from bridge.upstream.closing import lost
from bridge.upstream.dial_options import MAX_CLOSE_TIMEOUT, connect_options
from bridge.upstream.frame_message import is_data, whole_message
from bridge.upstream.urls import safe_url

Consumer = Callable[[str | bytes], None]  # one whole message, taken
# Messages handed over per socket read at most: the rest of a burst waits in websockets' buffer,
# whose flow control (reading paused while it is full) bounds what a burst holds in memory.
HAND_OVER: Final = 64
# A read of this many bytes or more is a burst: none of it is handed over, the task reads it all
# from websockets' buffer (which costs less per frame when a read holds hundreds of them).
BURST: Final = 8192


class _Client(ClientConnection):
    """websockets' client connection, which can hand each whole message to a ``consumer`` in
    its data callback: no task is woken for it. The first data frame it cannot hand over (a
    fragment, invalid UTF-8, one past ``HAND_OVER`` in a read) goes to websockets' buffer, for
    ``recv``, and ends the hand-over: every frame after it waits there too, until the task has
    read it (``recv`` may have taken it from the buffer already). A ``BURST`` is not handed."""

    consumer: Consumer | None = None
    handed = 0  # messages handed over from the current read
    bursting = False  # the last read was a BURST

    def data_received(self, data: bytes) -> None:
        self.bursting = len(data) >= BURST
        self.handed = HAND_OVER if self.bursting else 0
        ClientConnection.data_received(self, data)  # not super(): this runs once per read

    def process_event(self, event: Event) -> None:
        if (take := self.consumer) is not None and isinstance(event, Frame):
            if self.handed < HAND_OVER and (data := whole_message(event)) is not None:
                self.handed += 1
                take(data)
                return
            if is_data(event):  # it waits for recv: so does every frame after it
                self.consumer = None
        ClientConnection.process_event(self, event)  # not super(): this runs once per frame


class Connection:
    """One open WebSocket connection of one source; every failure surfaces as a ``SourceError``."""

    def __init__(self, source: str, ws: ClientConnection, handshake_seconds: float) -> None:
        self.source = source
        self.handshake_seconds = handshake_seconds
        self.subprotocol: str | None = ws.subprotocol
        self._ws = ws
        for message in (ws.request, ws.response):  # read by nobody once open: about 3 KB (and
            if message is not None:  # the request's may hold credentials) per idle connection
                message.headers.clear()
        # websockets' buffer of received frames, when it has the shape ``recv`` reads directly
        self._got: Any = getattr(ws, "recv_messages", None)
        self._frames: Any = getattr(getattr(self._got, "frames", None), "queue", None)
        if not hasattr(self._got, "maybe_resume") or not isinstance(self._frames, deque):
            self._frames = None

    def consume(self, consumer: Consumer | None) -> bool:
        """Hand each whole message to ``consumer`` as it arrives, in websockets' data callback,
        until ``consume(None)`` or a frame that must wait in websockets' buffer (for ``recv``:
        fragments, a burst, the end of the stream). False: not now (frames wait in the buffer,
        or a burst) or never; read with ``recv``."""
        ws = self._ws
        if not isinstance(ws, _Client) or self._frames is None:
            return False
        ws.consumer = None if ws.bursting or self._frames else consumer  # the buffer goes first
        return ws.consumer is consumer

    def take(self) -> str | bytes | None:
        """The next message if websockets holds it whole, in one frame; else None (``recv``).

        Taken straight from websockets' buffer, without an await, so a buffered message costs
        no future and no reassembly (ARCHITECTURE.md, hot path, has the figures). Waiting,
        fragments and invalid UTF-8 are left to websockets' own ``recv``."""
        frames, got = self._frames, self._got
        if frames and not got.get_in_progress and (data := whole_message(frames[0])) is not None:
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
            raise lost(self.source, exc) from None
        except ConcurrencyError:
            raise RuntimeError(f"source {self.source!r}: recv() called concurrently") from None

    async def send(self, data: str | bytes) -> None:
        """Send one message: ``str`` as a text frame, ``bytes`` as a binary one."""
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise lost(self.source, exc) from None
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
        ws = await connect(url, create_connection=_Client,
                           **connect_options(cfg, tls, url, headers))
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
    # Both event loops (asyncio's, uvloop) set TCP_NODELAY on the socket: no Nagle delay.
    handshake_seconds = loop.time() - started
    return Connection(cfg.name, ws, handshake_seconds)

