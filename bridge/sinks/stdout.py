"""The stdout sink: one line per delivery, written in batches off the event loop.

The write runs in a worker thread so a slow reader of the pipe (``| less``) never stalls the
sources; meanwhile deliveries collect in the bounded queue and go out as the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from bridge.messages import Delivery
from bridge.sinks.base import LogsStates, StdoutSinkConfig
from bridge.sinks.formats import format_line
from bridge.sinks.queue import BoundedQueue

logger = logging.getLogger("bridge.sinks.stdout")


@dataclass
class StdoutSinkStats:
    """``dropped`` is the queue's counter, by reason."""

    written: int = 0
    batches: int = 0
    errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class StdoutSink(LogsStates):
    """Writes ``raw`` or ``envelope`` lines to standard output (or ``stream``)."""

    def __init__(
        self, config: StdoutSinkConfig, stream: BinaryIO | None = None, *, batch: int = 1000
    ) -> None:
        self.name = config.name
        self.config = config
        self.queue: BoundedQueue[Delivery] = BoundedQueue(
            config.queue.max_messages, config.queue.overflow
        )
        self.stats = StdoutSinkStats(dropped=self.queue.dropped)
        self._stream: BinaryIO = stream if stream is not None else sys.stdout.buffer
        self._batch = batch
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._stopped = False
        self._broken = False
        self._failing = False
        self._writing = False

    def send(self, delivery: Delivery) -> None:
        self.queue.put(delivery)
        self._wake.set()

    async def drain(self) -> None:
        await self._until(lambda: not self.queue.full)

    async def flush(self) -> None:
        """Return once everything queued so far has been written (or dropped)."""
        await self._until(lambda: not self.queue and not self._writing)

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done() and not self._stopped:
            self._room.clear()
            await self._room.wait()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        self._stopped = False  # a run restarted after a crash blocks producers again
        try:
            while self.queue or not self._closing:
                if not self.queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = self.queue.take(self._batch)
                self._room.set()
                if self._broken:
                    self.stats.dropped["stdout_closed"] += len(batch)
                    continue
                data = b"".join(format_line(d, self.config.format) for d in batch)
                self._writing = True
                try:
                    await asyncio.to_thread(self._write, data)
                except OSError as exc:
                    self._write_failed(exc, len(batch))
                else:
                    self.stats.written += len(batch)
                    self.stats.batches += 1
                    self._failing = False
                finally:
                    self._writing = False
                    self._room.set()
        finally:
            self._stopped = True
            self._room.set()

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    def _write_failed(self, exc: OSError, lost: int) -> None:
        self.stats.errors += 1
        if isinstance(exc, BrokenPipeError):
            self._broken = True
            self.stats.dropped["stdout_closed"] += lost
            logger.error("sink %s: stdout was closed by its reader; output stops here", self.name)
            return
        self.stats.dropped["write_error"] += lost
        if not self._failing:
            self._failing = True
            logger.error("sink %s: cannot write to stdout: %s", self.name, exc.strerror or exc)
