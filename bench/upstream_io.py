"""What the bench's upstream servers share: their event lines, their stdin commands and the
paced send of a steady round."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from payload import make_payload, ws_frame
from websockets.asyncio.server import serve


def emit(**event: object) -> None:
    """One JSON event line on stdout, read by the harness."""
    print(json.dumps(event), flush=True)


def stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """Commands from the harness, one a line, into ``queue`` (run in a thread); then quit."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "quit")


async def serve_commands(handler: Callable[[Any], Awaitable[None]]) -> AsyncIterator[list[str]]:
    """Serve ``handler`` on a free loopback port, announce it (``listening``), then yield the
    harness's commands, split into words, until ``quit``."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(
        target=stdin_lines, args=(asyncio.get_running_loop(), queue), daemon=True
    ).start()
    async with serve(
        handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=None
    ) as server:
        emit(ev="listening", port=next(iter(server.sockets)).getsockname()[1])
        while (cmd := (await queue.get()).split()) != ["quit"]:
            if cmd:
                yield cmd


async def send_paced(writes: list[Callable[[bytes], None]], rate: float, total: int,
                     size: int) -> None:
    """``total`` frames at ``rate`` per second in all, round-robin over ``writes``, stamped
    with the time each is written; emits ``sent`` at the end."""
    t0 = time.perf_counter()
    sent = yielded = 0
    count = len(writes)
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            writes[sent % count](ws_frame(make_payload(sent, time.monotonic_ns(), size)))
            sent += 1
        if sent - yielded >= 256:
            yielded = sent
            await asyncio.sleep(0)  # let the loop answer pings
        # Blocking sleep on purpose: asyncio timers round to 1 ms (bursts of 10 messages).
        time.sleep(max(0.0, min(0.0005, t0 + sent / rate - time.perf_counter())))
    emit(ev="sent", t0=t0, t1=time.perf_counter(), count=total)
