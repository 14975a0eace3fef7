"""The built-in demo upstream: a WebSocket server with auth, channels, ticks, publish and RPC.

Every message is a JSON object ``{"type": ..., "id": ..., "data": {...}}``; ``id`` is echoed
in the reply to any request that carries one.

===============================  =============================================================
client sends                     server answers
===============================  =============================================================
``auth {token}``                 ``auth_ok`` or ``auth_failed {reason}``
``subscribe {channel}``          ``subscribed {channel}``, then ``tick`` messages
``unsubscribe {channel}``        ``unsubscribed {channel}``
``ping``                         ``pong``
``rpc {method: echo, ...}``      ``rpc_result {...}`` (the request data without ``method``)
``rpc {method: time}``           ``rpc_result {ts}``; other methods get ``rpc_error {reason}``
``publish {channel, payload}``   ``message {channel, payload}`` to the channel's subscribers,
                                 and ``published {channel, receivers}`` if the request had an id
anything else before auth        ``error {reason: "not authenticated"}``
===============================  =============================================================

A failed auth leaves the connection open, so the client decides what to do. Ticks are
``{"type": "tick", "data": {"channel", "price", "seq", "ts"}}``: a random-walk price, a
per-channel ``seq`` that increases by one, and a millisecond wall-clock ``ts``.

Each client has its own bounded outbox drained by its own writer task (``Peer``), so one
slow reader never delays the others; a client whose outbox overflows is closed with 1008.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.server import ServerConnection

from bridge.server.listener import Listener, Served
from bridge.server.peer import Frame, Peer

log = logging.getLogger("bridge.server")

DEFAULT_TOKEN: Final = "demo-token"  # noqa: S105 - the documented demo credential
DEFAULT_RATE: Final = 5.0
DEFAULT_OUTBOX: Final = 256
MAX_SUBSCRIPTIONS: Final = 100
# Catching up after a stall would burst ticks; beyond this lag the schedule restarts from now.
MAX_TICK_LAG: Final = 1.0

Json = dict[str, Any]


class _Client:
    """One connected client: its auth state, its channels and its bounded outbox."""

    __slots__ = ("authenticated", "channels", "peer")

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.authenticated = False
        self.channels: set[str] = set()


class _Channel:
    """A channel with subscribers: its tick sequence, its price and the task that ticks it."""

    __slots__ = ("name", "price", "seq", "subscribers", "task")

    def __init__(self, name: str, price: float) -> None:
        self.name = name
        self.price = price
        self.seq = 0
        self.subscribers: set[_Client] = set()
        self.task: asyncio.Task[None] | None = None


class FeedServer(Served):
    """The demo upstream; ``await start()``, then ``await serve_forever()`` or ``await close()``."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        rate: float = DEFAULT_RATE,
        outbox: int = DEFAULT_OUTBOX,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.rate = rate
        self.dropped_clients = 0
        self._outbox = outbox
        self._rng = random.Random(seed)
        self._clock = clock
        self._listener = Listener(self._handle, label="demo upstream", on_close=self._stop_ticks)
        self._clients: set[_Client] = set()
        self._channels: dict[str, _Channel] = {}
        self._handlers: dict[str, Callable[[_Client, Any, Json], None]] = {
            "subscribe": self._on_subscribe,
            "unsubscribe": self._on_unsubscribe,
            "ping": self._on_ping,
            "rpc": self._on_rpc,
            "publish": self._on_publish,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def _stop_ticks(self) -> None:
        tasks = [ch.task for ch in self._channels.values() if ch.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._channels.clear()

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(Peer(ws, self._outbox, on_cut=self._cut))
        self._clients.add(client)

        def on_frame(frame: Frame) -> None:
            if isinstance(frame, bytes):
                self._error(client, None, "binary frames are not supported")
            else:
                self._on_text(client, frame)

        try:
            await client.peer.serve(on_frame)
        finally:
            self._clients.discard(client)
            for name in list(client.channels):
                self._leave(client, name)

    def _cut(self, peer: Peer) -> None:
        self.dropped_clients += 1
        log.warning("demo upstream: cut off a client %d messages behind", peer.limit)

    def _send(self, client: _Client, text: str) -> None:
        client.peer.send(text)

    def _reply(self, client: _Client, kind: str, msg_id: Any, data: Any = None) -> None:
        out: Json = {"type": kind}
        if msg_id is not None:
            out["id"] = msg_id
        if data is not None:
            out["data"] = data
        self._send(client, _encode(out))

    def _error(self, client: _Client, msg_id: Any, reason: str) -> None:
        self._reply(client, "error", msg_id, {"reason": reason})

    # -- protocol ----------------------------------------------------------------------------

    def _on_text(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._error(client, None, "invalid JSON")
            return
        if not isinstance(msg, dict):
            self._error(client, None, "expected a JSON object")
            return
        kind, msg_id = msg.get("type"), msg.get("id")
        data = msg.get("data")
        data = data if isinstance(data, dict) else {}
        if kind == "auth":
            self._on_auth(client, msg_id, data)
        elif not client.authenticated:
            self._error(client, msg_id, "not authenticated")
        elif isinstance(kind, str) and kind in self._handlers:
            self._handlers[kind](client, msg_id, data)
        else:
            self._error(client, msg_id, f"unknown type {kind!r}"[:100])

    def _on_auth(self, client: _Client, msg_id: Any, data: Json) -> None:
        offered = data.get("token")  # compared in constant time, as a real upstream must
        client.authenticated = isinstance(offered, str) and hmac.compare_digest(
            offered.encode(), self.token.encode())
        if client.authenticated:
            self._reply(client, "auth_ok", msg_id)
        else:
            self._reply(client, "auth_failed", msg_id, {"reason": "invalid token"})

    def _on_subscribe(self, client: _Client, msg_id: Any, data: Json) -> None:
        channel = _channel_of(data)
        if channel is None:
            self._error(client, msg_id, "subscribe needs data.channel")
        elif channel not in client.channels and len(client.channels) >= MAX_SUBSCRIPTIONS:
            self._error(client, msg_id, f"at most {MAX_SUBSCRIPTIONS} subscriptions")
        else:
            self._join(client, channel)
            self._reply(client, "subscribed", msg_id, {"channel": channel})

    def _on_unsubscribe(self, client: _Client, msg_id: Any, data: Json) -> None:
        channel = _channel_of(data)
        if channel is None:
            self._error(client, msg_id, "unsubscribe needs data.channel")
        else:
            self._leave(client, channel)
            self._reply(client, "unsubscribed", msg_id, {"channel": channel})

    def _on_ping(self, client: _Client, msg_id: Any, data: Json) -> None:
        self._reply(client, "pong", msg_id)

    def _on_rpc(self, client: _Client, msg_id: Any, data: Json) -> None:
        method = data.get("method")
        if method == "echo":
            echoed = {k: v for k, v in data.items() if k != "method"}
            self._reply(client, "rpc_result", msg_id, echoed)
        elif method == "time":
            self._reply(client, "rpc_result", msg_id, {"ts": int(self._clock() * 1000)})
        else:
            self._reply(client, "rpc_error", msg_id, {"reason": "unknown method"})

    def _on_publish(self, client: _Client, msg_id: Any, data: Json) -> None:
        channel = _channel_of(data)
        if channel is None:
            self._error(client, msg_id, "publish needs data.channel")
            return
        subscribers = self._channels[channel].subscribers if channel in self._channels else set()
        message = {"channel": channel, "payload": data.get("payload")}
        text = _encode({"type": "message", "data": message})
        for subscriber in list(subscribers):
            self._send(subscriber, text)
        if msg_id is not None:
            receipt = {"channel": channel, "receivers": len(subscribers)}
            self._reply(client, "published", msg_id, receipt)

    # -- channels and ticks ------------------------------------------------------------------

    def _join(self, client: _Client, name: str) -> None:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, round(self._rng.uniform(10, 1000), 2))
            if self.rate > 0:
                channel.task = asyncio.create_task(self._tick(channel))
        channel.subscribers.add(client)
        client.channels.add(name)

    def _leave(self, client: _Client, name: str) -> None:
        client.channels.discard(name)
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.subscribers.discard(client)
        if not channel.subscribers:
            del self._channels[name]
            if channel.task is not None:
                channel.task.cancel()

    async def _tick(self, channel: _Channel) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        next_at = loop.time()
        while True:
            next_at += period
            now = loop.time()
            if next_at < now - MAX_TICK_LAG:
                next_at = now
            await asyncio.sleep(max(0.0, next_at - now))
            channel.seq += 1
            drift = 1.0 + self._rng.gauss(0.0, 0.001)
            channel.price = max(0.01, round(channel.price * drift, 2))
            tick = {"channel": channel.name, "price": channel.price, "seq": channel.seq,
                    "ts": int(self._clock() * 1000)}
            text = _encode({"type": "tick", "data": tick})
            for client in list(channel.subscribers):
                self._send(client, text)


def _channel_of(data: Json) -> str | None:
    channel = data.get("channel")
    return channel if isinstance(channel, str) and 0 < len(channel) <= 200 else None


def _encode(obj: Json) -> str:
    return json.dumps(obj, separators=(",", ":"))
