"""The upstream of every pipeline: a WebSocket server that blasts pre-built frames on command.

Run as a child of run.py. It prints JSON events on stdout and takes commands on stdin:
  prime              send one message with seq -1 (proves the pipeline is connected end to end)
  blast              send the N pre-built messages (seq 0..N-1) as fast as the socket takes them
  pace RATE SECONDS  send RATE msgs/s for SECONDS, each stamped with time.monotonic_ns()
  quit
Frames are written straight to the transport, so the blaster costs almost nothing per message.
With --gzip every frame is binary, its JSON gzip-compressed (the exchanges' compressed feeds).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from payload import PRIME_SEQ, make_gzipped, make_payload, ws_frame
from upstream_io import emit, send_paced, serve_commands
from websockets.asyncio.server import ServerConnection

CHUNK = 256 * 1024


class Blaster:
    def __init__(self, size: int, count: int, gzipped: bool = False) -> None:
        self.size = size
        self.count = count
        self.gzipped = gzipped
        self.frame_len = len(self.frame(0))
        self.blob = b"".join(self.frame(i) for i in range(count))
        self.conn: ServerConnection | None = None
        self.connections = 0

    def frame(self, seq: int) -> bytes:
        if self.gzipped:
            return ws_frame(make_gzipped(seq, 0, self.size), binary=True)
        return ws_frame(make_payload(seq, 0, self.size))

    async def handler(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.connections += 1
        emit(ev="connected", n=self.connections)
        await conn.wait_closed()
        if self.conn is conn:
            self.conn = None
        emit(ev="disconnected")

    async def prime(self) -> None:
        if self.conn is not None:
            self.conn.transport.write(self.frame(PRIME_SEQ))

    async def blast(self) -> None:
        conn = self.conn
        if conn is None:
            emit(ev="error", reason="no client connected")
            return
        step = max(1, CHUNK // self.frame_len) * self.frame_len
        view = memoryview(self.blob)
        t0 = time.monotonic()
        for i in range(0, len(view), step):
            if conn.transport.is_closing():
                emit(ev="error", reason="client went away during the blast")
                return
            conn.transport.write(view[i : i + step])
            await conn.drain()
        emit(ev="sent", t0=t0, t1=time.monotonic(), count=self.count)

    async def pace(self, rate: float, seconds: float) -> None:
        conn = self.conn
        if conn is None:
            emit(ev="error", reason="no client connected")
            return
        total = int(rate * seconds)
        await send_paced([conn.transport.write], rate, total, self.size)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--gzip", action="store_true", help="binary frames, gzip-compressed")
    args = parser.parse_args()
    blaster = Blaster(args.size, args.count, args.gzip)
    async for cmd in serve_commands(blaster.handler):
        if cmd[0] == "prime":
            await blaster.prime()
        elif cmd[0] == "blast":
            await blaster.blast()
        elif cmd[0] == "pace":
            await blaster.pace(float(cmd[1]), float(cmd[2]))


if __name__ == "__main__":
    asyncio.run(main())
