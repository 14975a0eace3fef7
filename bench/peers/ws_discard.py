"""Ceiling: a websockets client that receives and discards, counting what the blaster sent.

Same interface as subscriber.py: ``arm N LATENCY MAX_WAIT IDLE`` on stdin (LATENCY is ignored),
JSON events on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time

from websockets.asyncio.client import connect


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.armed = False
        self.idle = 3.0
        self.deadline = 0.0

    def arm(self, n: int, max_wait: float, idle: float) -> None:
        self.n, self.count, self.first, self.last = n, 0, 0.0, 0.0
        self.idle, self.deadline, self.armed = idle, time.monotonic() + max_wait, True
        emit(ev="armed")  # run.py starts the blast only now: no message may slip by uncounted

    def report(self) -> None:
        self.armed = False
        emit(ev="done", expected=self.n, unique=self.count, received=self.count,
             duplicates=0, reordered=0, first=self.first, first_n=1, last=self.last)


def read_stdin(loop: asyncio.AbstractEventLoop, counter: Counter) -> None:
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "arm":
            loop.call_soon_threadsafe(counter.arm, int(cmd[1]), float(cmd[3]), float(cmd[4]))
    os._exit(0)  # run.py closed our stdin: the cell is over


async def watchdog(counter: Counter) -> None:
    while True:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        if counter.armed and (
            now > counter.deadline or (counter.count and now - counter.last > counter.idle)
        ):
            counter.report()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws", required=True)
    args = parser.parse_args()
    counter = Counter()
    threading.Thread(
        target=read_stdin, args=(asyncio.get_running_loop(), counter), daemon=True
    ).start()
    dog = asyncio.create_task(watchdog(counter))
    clock = time.monotonic
    async with connect(args.ws, compression=None, max_size=None) as ws:
        while True:
            message = await ws.recv(decode=False)
            if message[7] == 45:  # '-': the prime message
                emit(ev="primed")
            elif counter.armed:
                counter.last = clock()
                if not counter.count:
                    counter.first = counter.last
                counter.count += 1
                if counter.count == counter.n:
                    counter.report()
    dog.cancel()


if __name__ == "__main__":
    asyncio.run(main())
