"""A loopback exchange that enforces limits the way real ones do (Binance, Bitfinex), on top of
the scriptable upstream: tests of connection pools run against it.

- ``SUBSCRIBE``/``UNSUBSCRIBE`` with ``params`` (a list of streams) and an ``id``, answered
  ``{"result": null, "id": ...}``; streams may also come in the URL (``?streams=a/b/c``);
- at most ``max_streams`` streams a connection: beyond, an error reply, then a close
  (1008, "too many subscriptions");
- at most ``max_rate`` messages a second from the client: beyond, a close (1008, "too many
  messages");
- at most ``max_opens`` new connections a second: beyond, HTTP 429 on the upgrade;
- ``delisted`` streams: an error ack for the message that names them (per-item errors), the
  connection goes on.

``publish()`` sends one trade per stream on every open connection: ``{"e": "trade", "s":
stream, "n": n}``. ``streams[conn]`` is what each connection carries now, ``log`` every
subscribe and unsubscribe message per connection."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.support.upstream import Handshake, Upstream, UpstreamConn


@dataclass
class Exchange:
    upstream: Upstream
    max_streams: int = 50
    max_rate: int = 10
    max_opens: int = 100
    delisted: set[str] = field(default_factory=set)
    streams: dict[UpstreamConn, set[str]] = field(default_factory=dict)
    log: dict[UpstreamConn, list[tuple[str, list[str]]]] = field(default_factory=dict)
    sent: int = 0

    def __post_init__(self) -> None:
        self.upstream.handler = self._handle
        self.upstream.admit = self._admit

    def _admit(self, record: Handshake) -> int | None:
        recent = [h for h in self.upstream.handshakes[:-1]
                  if h.status == 101 and h.at > record.at - 1.0]
        return 429 if len(recent) >= self.max_opens else None

    async def publish(self, n: int = 0) -> int:
        """One trade per stream on every open connection; how many were sent."""
        count = 0
        for conn, streams in list(self.streams.items()):
            if conn.closed:
                continue
            for stream in sorted(streams):
                await conn.send_json({"e": "trade", "s": stream, "n": n})
                count += 1
        self.sent += count
        return count

    async def _handle(self, conn: UpstreamConn) -> None:
        mine = self.streams[conn] = {s for s in conn.query.get("streams", "").split("/") if s}
        self.log[conn] = []
        loop, times = asyncio.get_running_loop(), deque[float]()
        while True:
            msg: Any = await conn.recv_json(timeout=3600)
            now = loop.time()
            times.append(now)
            while times[0] <= now - 1.0:
                times.popleft()
            if len(times) > self.max_rate:
                await conn.close(1008, "too many messages")
                return
            method, params, ident = msg.get("method"), list(msg.get("params", [])), msg.get("id")
            self.log[conn].append((method, params))
            if method == "UNSUBSCRIBE":
                mine.difference_update(params)
            elif method == "SUBSCRIBE":
                if bad := [p for p in params if p in self.delisted]:
                    await conn.send_json({"error": {"code": 2, "msg": f"Invalid symbol: {bad}"},
                                          "id": ident})
                    continue
                if len(mine | set(params)) > self.max_streams:
                    await conn.send_json({"error": {"code": 3, "msg": "too many streams"},
                                          "id": ident})
                    await conn.close(1008, "too many subscriptions")
                    return
                mine.update(params)
            await conn.send_json({"result": None, "id": ident})
