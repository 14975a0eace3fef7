"""What each kind of sink counts over its life, read by its ``snapshot()`` at scrape time.

The queued sinks (stdout, file, websocket) count the same things, so they share ``SinkStats``;
the file and websocket sinks add what only they do. The MQTT sink counts by reason and topic.
``dropped`` is always the sink queue's own counter, by reason, shared rather than copied."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass, field


@dataclass
class SinkStats:
    """``written``: lines or frames out; ``batches``: successful writes; ``errors``: failed
    attempts (to write, to listen)."""

    written: int = 0
    batches: int = 0
    errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


@dataclass
class FileSinkStats(SinkStats):
    """Also how many times a file was rotated."""

    rotations: int = 0


@dataclass
class WebSocketSinkStats(SinkStats):
    """``written`` sums the frames written to every client."""

    cut_off: int = 0  # clients closed with 1008 for falling behind
    rejected: int = 0  # handshakes refused: wrong path, origin or token


@dataclass
class MqttStats:
    """``errors`` by kind (auth, tls, connect, ...); ``refused`` counts refusals by topic."""

    queue: Sized = field(default=(), repr=False)
    published: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    publish_latency: float | None = None  # of the latest QoS 1/2 answer, in seconds

    @property
    def queue_depth(self) -> int:
        return len(self.queue)
