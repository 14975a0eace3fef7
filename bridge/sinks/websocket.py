"""The websocket sink: serves the routed stream to local clients such as dashboards and pages.

Handshake. The request path must be the configured ``path`` (404). A browser's ``Origin``
must be in ``allowed_origins`` (403); clients that send no Origin (not browsers) pass. The
token must come as ``?token=...`` or ``Authorization: Bearer ...`` (401).

Protocol. A client sends ``{"subscribe": ["feeds/+/trades", "#"]}`` or ``{"unsubscribe":
[...]}`` (one string works too) and gets ``{"subscribed": [...]}`` / ``{"unsubscribed":
[...]}`` back, or ``{"error": "..."}``. It then receives each delivery whose topic (the
route's ``topic``, else the source name) matches one of its MQTT topic filters: with
``format: envelope`` the envelope JSON as a text frame, with ``raw`` the payload itself
(binary payloads as binary frames, untouched).

Each client has a bounded outbox of ``client_queue`` frames with its own writer; a client
that falls further behind is closed with 1008 and counted, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection

from bridge.messages import INVALID, Delivery, decode_json
from bridge.routing.topics import filter_problem, topic_matches
from bridge.server.listener import Listener, Request, Response
from bridge.server.peer import Frame, Peer
from bridge.sinks.formats import envelope
from bridge.sinks.queued import QueuedSink
from bridge.sinks.settings import WebSocketSinkConfig
from bridge.stats.sink import WebSocketSinkStats

logger = logging.getLogger("bridge.sinks.websocket")

MAX_FILTERS: Final = 100  # per client
MAX_REQUEST: Final = 1 << 16  # bytes of one subscribe/unsubscribe request


class _Client:
    __slots__ = ("filters", "name", "peer")

    def __init__(self, peer: Peer, name: str) -> None:
        self.peer = peer
        self.name = name
        self.filters: set[str] = set()

    def wants(self, topic: str) -> bool:
        return any(topic_matches(f, topic) for f in self.filters)


class WebSocketSink(QueuedSink):
    """Serves deliveries to subscribed clients; ``run`` listens until ``close``, then passes
    on what is queued and gives clients ``close_timeout`` to read it."""

    kind = "websocket"
    stats: WebSocketSinkStats

    def __init__(
        self,
        config: WebSocketSinkConfig,
        *,
        retry_delay: float = 1.0,
        close_timeout: float = 5.0,
        batch: int = 1000,
    ) -> None:
        super().__init__(config.name, config.queue, WebSocketSinkStats(), batch)
        self.config = config
        self._token = config.token.encode()
        self._origins = {_origin(o) for o in config.allowed_origins}
        self._retry_delay, self._close_timeout = retry_delay, close_timeout
        self._clients: dict[Peer, _Client] = {}
        self._listener = Listener(
            self._handle, label=f"sink {self.name}", process_request=self._check,
            compression=config.compression, max_size=MAX_REQUEST,
            close_timeout=close_timeout, on_close=self._flush_clients,
        )

    @property
    def port(self) -> int:
        """The bound port (the chosen one with ``port: 0``); RuntimeError before listening."""
        return self._listener.port

    @property
    def url(self) -> str:
        return self._listener.url + self.config.path

    @property
    def clients(self) -> int:
        """How many clients are connected now."""
        return len(self._clients)

    def send(self, delivery: Delivery) -> None:
        if not self._clients:
            return  # nobody is connected, so nobody could receive it
        self.queue.put(delivery)
        self._wake.set()

    async def start(self) -> None:
        """Listen on the configured address; raises OSError when it cannot."""
        await self._listener.start(self.config.host, self.config.port)

    async def _begin(self) -> None:
        await self._listen()

    async def _write(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            self._fan_out(delivery)

    async def _end(self) -> None:
        await self._listener.close()

    async def _listen(self) -> None:
        failing = False
        while not self._listener.running and not self._closing:
            try:
                await self.start()
            except OSError as exc:
                self.stats.errors += 1
                if not failing:
                    failing = True
                    logger.error("sink %s: cannot listen on %s:%s: %s; retrying every %gs",
                                 self.name, self.config.host, self.config.port,
                                 exc.strerror or exc, self._retry_delay)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._retry_delay):
                        await self._wake.wait()

    def _fan_out(self, delivery: Delivery) -> None:
        topic = delivery.topic if delivery.topic is not None else delivery.message.source
        frame: Frame | None = None
        for client in self._clients.values():
            if client.peer.cut_off or not client.wants(topic):
                continue
            if frame is None:
                frame = envelope(delivery) if self.config.format == "envelope" else delivery.payload
            client.peer.send(frame)

    async def _flush_clients(self) -> None:
        peers = [client.peer.flush() for client in self._clients.values()]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await asyncio.gather(*peers)

    # -- handshake and connections -------------------------------------------------------------

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        origin = request.headers.get("Origin")
        if url.path != self.config.path:
            return self._refuse(conn, 404, "not found", "no such path")
        if origin is not None and _origin(origin) not in self._origins:
            return self._refuse(conn, 403, "origin not allowed", f"origin {origin[:100]!r}")
        offered = parse_qs(url.query).get("token", [])
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credential.strip())
        if not any(hmac.compare_digest(t.encode(), self._token) for t in offered):
            response = self._refuse(conn, 401, "a valid token is required", "no valid token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ws-bridge"'
            return response
        return None

    def _refuse(self, conn: ServerConnection, status: int, text: str, why: str) -> Response:
        self.stats.rejected += 1
        logger.info("sink %s: refused a client from %s: %s", self.name, _peer_name(conn), why)
        return conn.respond(status, text + "\n")

    async def _handle(self, ws: ServerConnection) -> None:
        peer = Peer(ws, self.config.client_queue, on_sent=self._sent, on_cut=self._cut,
                    close_timeout=self._close_timeout)
        client = self._clients[peer] = _Client(peer, _peer_name(ws))
        logger.info("sink %s: client %s connected (%d now)", self.name, client.name,
                    len(self._clients))
        try:
            await peer.serve(lambda frame: self._on_request(client, frame))
        finally:
            del self._clients[peer]
            logger.info("sink %s: client %s disconnected (%d now)", self.name, client.name,
                        len(self._clients))

    def _sent(self) -> None:
        self.stats.written += 1

    def _cut(self, peer: Peer) -> None:
        self.stats.cut_off += 1
        name = self._clients[peer].name if peer in self._clients else "?"
        logger.warning("sink %s: cut off client %s, %d messages behind", self.name, name,
                       peer.limit)

    def _on_request(self, client: _Client, frame: Frame) -> None:
        request = decode_json(frame)
        if request is INVALID or not isinstance(request, dict):
            self._reply(client, {"error": "send a JSON object: {\"subscribe\": [filters]}"})
            return
        if not {"subscribe", "unsubscribe"} & request.keys():
            self._reply(client, {"error": "expected subscribe or unsubscribe"})
        for key, done in (("subscribe", "subscribed"), ("unsubscribe", "unsubscribed")):
            if key in request:
                self._update(client, key, done, request[key])

    def _update(self, client: _Client, key: str, done: str, value: Any) -> None:
        filters = [value] if isinstance(value, str) else value
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            self._reply(client, {"error": f"{key} takes a list of topic filters"})
            return
        if problems := [f"{f[:100]!r}: {why}" for f in filters if (why := filter_problem(f))]:
            self._reply(client, {"error": "; ".join(problems)})
            return
        if key == "unsubscribe":
            client.filters.difference_update(filters)
        elif len(client.filters | set(filters)) > MAX_FILTERS:
            self._reply(client, {"error": f"at most {MAX_FILTERS} topic filters per client"})
            return
        else:
            client.filters.update(filters)
        self._reply(client, {done: filters})

    def _reply(self, client: _Client, obj: dict[str, Any]) -> None:
        client.peer.send(json.dumps(obj, separators=(",", ":")), count=False)


def _origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _peer_name(conn: ServerConnection) -> str:
    address = conn.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
