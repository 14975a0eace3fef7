"""The fleet's upstream: one WebSocket server, many client connections, each fed at a steady rate.

Run as a child of run.py (the fleet and pool cells). A pooled source subscribes its items with
``{"method": "SUBSCRIBE", "params": [...], "id": N}``: each is acked ``{"result": null, "id": N}``
and counted (event ``subscribed`` with the total). JSON events on stdout, commands on stdin:
  prime                   send one message with seq -1 on every connection
  pace RATE SECONDS       every connection gets RATE msgs/s for SECONDS, evenly spread: message j
                          (seq j, stamped with time.monotonic_ns()) goes to connection j % count
  quit
Sequence numbers are global, so the counting subscriber sees seq 0..N-1 once each whatever
connection carried them. Frames are written straight to each transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from payload import PRIME_SEQ, make_payload, ws_frame
from upstream_io import emit, send_paced, serve_commands
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed


class Fleet:
    def __init__(self, size: int) -> None:
        self.size = size
        self.conns: list[ServerConnection] = []
        self.items = 0  # subscribed by pooled connections

    async def handler(self, conn: ServerConnection) -> None:
        self.conns.append(conn)
        emit(ev="connected", n=len(self.conns))
        try:
            async for text in conn:  # the fleet's sources send nothing; a pool subscribes
                request = json.loads(text)
                if request.get("method") == "SUBSCRIBE":
                    self.items += len(request["params"])
                    await conn.send(json.dumps({"result": None, "id": request["id"]}))
                    emit(ev="subscribed", n=self.items)
        except ConnectionClosed:
            pass
        self.conns.remove(conn)
        emit(ev="disconnected", n=len(self.conns))

    def prime(self) -> None:
        frame = ws_frame(make_payload(PRIME_SEQ, 0, self.size))
        for conn in self.conns:
            conn.transport.write(frame)

    async def pace(self, rate: float, seconds: float) -> None:
        conns = list(self.conns)
        if not conns:
            emit(ev="error", reason="no client connected")
            return
        writes = [c.transport.write for c in conns]
        total_rate = rate * len(conns)
        total = int(total_rate * seconds)
        await send_paced(writes, total_rate, total, self.size)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    fleet = Fleet(args.size)
    async for cmd in serve_commands(fleet.handler):
        if cmd[0] == "prime":
            fleet.prime()
        elif cmd[0] == "pace":
            await fleet.pace(float(cmd[1]), float(cmd[2]))


if __name__ == "__main__":
    asyncio.run(main())
