"""In-process cost per message of one source: the client's receive loop and its session.

No sockets: a stand-in connection hands the loop ready frames (as websockets' buffer does
when a read holds many), and delivery does nothing, so what is measured is the driver and
the session alone. Used to check that a change to either does not slow the hot path:
run it before and after, on the same machine, back to back.

    .venv/bin/python bench/source_loop.py [--n 200000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time

from payload import make_gzipped, make_payload

from bridge.config.model import DedupSpec, ReplySpec, SequenceSpec, SourceConfig
from bridge.errors import ConnectionLost
from bridge.frames import FramesSpec
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.client import SourceClient

CONFIGS = {
    "plain": SourceConfig(name="s", url="ws://x/"),
    "dedup+seq": SourceConfig(name="s", url="ws://x/",
                              dedup=DedupSpec(Template("{msg.id}"), 1000),
                              sequence=SequenceSpec(Template("{msg.seq}"))),
    "replies": SourceConfig(name="s", url="ws://x/", replies=(
        ReplySpec(Pattern({"type": "ping"}), Template({"type": "pong"})),)),
}


class Frames:
    """Stands in for ``Connection``: every frame is already buffered whole, then it ends."""

    def __init__(self, frames: list[str] | list[bytes]) -> None:
        self._frames, self._i = frames, 0

    def take(self) -> str | bytes | None:
        i = self._i
        if i < len(self._frames):
            self._i = i + 1
            return self._frames[i]
        return None

    def consume(self, consumer: object) -> bool:
        return False  # no data callback here: the loop reads every frame itself

    async def recv(self) -> str:
        raise ConnectionLost("s", 1006, "end of the frames")


async def one_run(cfg: SourceConfig, frames: list[str] | list[bytes]) -> float:
    """CPU microseconds per message for one pass over ``frames``."""
    client = SourceClient(cfg, lambda msg: None)
    client._apply_idle(client._session.start(time.monotonic()))  # open, without a socket
    started = time.process_time()
    with contextlib.suppress(ConnectionLost):  # the end of the frames
        await client._receive(Frames(frames), None)  # type: ignore[arg-type]
    return (time.process_time() - started) / len(frames) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    frames = [json.dumps({"id": i, "seq": i, "p": "x" * 60}) for i in range(args.n)]
    # 1 KiB JSON as text, and gzip-compressed as binary frames decoded by frames.binary
    kib = [make_payload(i, 0, 1024).decode() for i in range(args.n // 4)]
    gzipped = [make_gzipped(i, 0, 1024) for i in range(args.n // 4)]
    gzip_cfg = SourceConfig(name="s", url="ws://x/", frames=FramesSpec(binary="gzip"))
    cases: list[tuple[str, SourceConfig, list[str] | list[bytes]]] = [
        *((name, cfg, frames) for name, cfg in CONFIGS.items()),
        ("1KiB text", CONFIGS["plain"], kib), ("1KiB gzip", gzip_cfg, gzipped)]
    for name, cfg, given in cases:
        runs = [await one_run(cfg, given) for _ in range(args.runs)]
        print(f"{name:10s} median {statistics.median(runs):.3f} us/msg  min {min(runs):.3f}")


if __name__ == "__main__":
    asyncio.run(main())
