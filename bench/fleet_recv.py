"""In-process CPU per message of the fleet's receive side: many connections, each at a steady rate.

The fleet upstream (``fleet_upstream.py``, a child process) paces 200 B frames over ``--sources``
connections; this process opens them through ``bridge.upstream.connection`` and reads each with
``Connection.recv`` in its own task, discarding the data. What is measured is this process's CPU
time (``time.process_time``) per message: the event loop, websockets' parse and the adapter's
wait, which a one-source throughput cell does not show (there a read holds many frames, here
each frame arrives alone). Used to check a change to the adapter before and after, back to back:

    .venv/bin/python bench/fleet_recv.py [--sources 100] [--rate 100] [--seconds 10] [--runs 3]
    PYTHONPATH=OTHER_COPY .venv/bin/python bench/fleet_recv.py   # another copy of bridge/
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from bridge.cli import _loop_factory
from bridge.config.model import SourceConfig
from bridge.errors import SourceError
from bridge.upstream.connection import Connection, open_connection

BENCH = Path(__file__).resolve().parent


async def _reader(conn: Connection, counts: list[int]) -> None:
    try:
        while True:
            await conn.recv()
            counts[0] += 1
    except SourceError:
        pass


async def _event(proc: asyncio.subprocess.Process, name: str) -> dict[str, object]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"fleet upstream ended before {name!r}")
        event = json.loads(line)
        if event.get("ev") == name:
            return dict(event)


async def measure(sources: int, rate: float, seconds: float, runs: int) -> list[float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "fleet_upstream.py"), "--size", "200",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None
    costs: list[float] = []
    try:
        port = (await _event(proc, "listening"))["port"]
        cfg = SourceConfig(name="s", url=f"ws://127.0.0.1:{port}/", ping_interval=0)
        conns = [await open_connection(cfg) for _ in range(sources)]
        counts = [0]
        tasks = [asyncio.create_task(_reader(c, counts)) for c in conns]
        total = int(sources * rate * seconds)
        for _ in range(runs):
            counts[0] = 0
            cpu = time.process_time()
            proc.stdin.write(f"pace {rate} {seconds}\n".encode())
            await _event(proc, "sent")
            for _ in range(int(seconds * 100) + 500):  # the last frames: bounded in time
                if counts[0] >= total:
                    break
                await asyncio.sleep(0.01)
            costs.append((time.process_time() - cpu) / max(1, counts[0]) * 1e6)
            print(f"  {counts[0]:,}/{total:,} received, {costs[-1]:.2f} us CPU per message",
                  flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(c.close() for c in conns))
    finally:
        proc.stdin.write(b"quit\n")
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = measure(args.sources, args.rate, min(args.seconds, 120.0), min(args.runs, 20))
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:  # the daemon's loop (uvloop)
        costs = runner.run(work)
    print(f"{sys.modules[Connection.__module__].__file__}:"
          f" median {statistics.median(costs):.2f} us CPU per message (runs: "
          + ", ".join(f"{c:.2f}" for c in costs) + ")")


if __name__ == "__main__":
    main()
