"""The stdout sink: one line per delivery, written in batches off the event loop.

The write runs in a worker thread so a slow reader of the pipe (``| less``) never stalls the
sources; meanwhile deliveries collect in the bounded queue and go out as the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import BinaryIO

from bridge.messages import Delivery
from bridge.sinks.formats import format_line
from bridge.sinks.queued import QueuedSink
from bridge.sinks.settings import StdoutSinkConfig
from bridge.stats.sink import SinkStats

logger = logging.getLogger("bridge.sinks.stdout")


class StdoutSink(QueuedSink):
    """Writes ``raw`` or ``envelope`` lines to standard output (or ``stream``)."""

    kind = "stdout"

    def __init__(
        self, config: StdoutSinkConfig, stream: BinaryIO | None = None, *, batch: int = 1000
    ) -> None:
        super().__init__(config.name, config.queue, SinkStats(), batch)
        self.config = config
        self._stream: BinaryIO = stream if stream is not None else sys.stdout.buffer
        self._broken = False
        self._failing = False

    async def _write(self, batch: list[Delivery]) -> None:
        if self._broken:
            self.stats.dropped["stdout_closed"] += len(batch)
            return
        data = b"".join(format_line(d, self.config.format) for d in batch)
        try:
            await asyncio.to_thread(self._write_out, data)
        except OSError as exc:
            self._write_failed(exc, len(batch))
        else:
            self.stats.written += len(batch)
            self.stats.batches += 1
            self._failing = False

    def _write_out(self, data: bytes) -> None:
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
