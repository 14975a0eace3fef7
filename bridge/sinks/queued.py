"""The queued-sink core shared by the stdout, file and websocket sinks.

Each of them queues deliveries in a ``BoundedQueue`` and has one task that takes a batch at a
time and writes it somewhere. This core owns everything about that which is not the writing:
the queue and its overflow policy, waking the task, ``drain`` (``block``) and ``flush``
waits, ``close``, the counters' snapshot, and the parts of the ``Sink`` contract these sinks
do nothing for (no way back from them to a source, no connection to lose). A sink built on it
says how to open its target, how to write one batch, what to do while idle and how to finish.

It is a molecule, not an atom: waking and waiting are asyncio events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from bridge.messages import Delivery
from bridge.sinks.queue import BoundedQueue
from bridge.sinks.settings import QueueConfig
from bridge.sinks.way_back import Listener
from bridge.stats.sink import SinkStats
from bridge.stats.snapshot import SinkSnapshot


class QueuedSink:
    """A sink whose ``run`` writes batches taken from its queue; see the module docstring.

    Subclasses set ``kind`` and implement ``_write``; ``_begin``, ``_idle`` and ``_end``
    have defaults (nothing to open, wait to be woken, nothing to let go of)."""

    kind: ClassVar[str]

    def __init__(self, name: str, queue: QueueConfig, stats: SinkStats, batch: int) -> None:
        self.name = name
        self.queue = BoundedQueue[Delivery](queue.max_messages, queue.overflow)
        self.stats = stats
        stats.dropped = self.queue.dropped  # one counter: the queue's, by reason
        self._batch = batch
        self._wake, self._room = asyncio.Event(), asyncio.Event()
        self._closing = self._stopped = self._busy = False

    # -- the Sink contract ---------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return True

    @property
    def remote(self) -> bool:
        return False

    def send(self, delivery: Delivery) -> None:
        self.queue.put(delivery)
        self._wake.set()

    async def drain(self) -> None:
        await self._until(lambda: not self.queue.full)

    async def flush(self) -> None:
        """Return once everything queued so far is written or dropped, or once one more write
        attempt has failed (a failing target keeps its lines queued for the retry)."""
        errors = self.stats.errors
        await self._until(lambda: (not self.queue and not self._busy) or
                          self.stats.errors > errors)

    def close(self) -> None:
        """Write what is queued and stop (a failing target is retried until cancelled)."""
        self._closing = True
        self._wake.set()

    def snapshot(self) -> SinkSnapshot:
        return SinkSnapshot(name=self.name, type=self.kind, up=self.up,
                            queue_depth=len(self.queue), published=self.stats.written,
                            errors=self.stats.errors, dropped=dict(self.queue.dropped),
                            publish_latency=None, queue_limit=self.queue.limit)

    def source_state(self, source: str, state: str) -> None:
        """Nothing to do: states are logged, not sent to this sink."""

    def source_removed(self, source: str) -> None:
        """Nothing to delete: no state was sent to this sink."""

    def retain(self, topic: str, payload: str) -> None:
        """Nothing to keep: this sink has no retained messages."""

    def state_topics(self) -> set[str]:
        return set()

    def reopen(self) -> None:
        """Nothing open by name to let go of."""

    def hand_over(self) -> list[Delivery]:
        return self.queue.take(len(self.queue))

    def rpc_topic(self, source: str) -> str | None:
        return None

    def listen(self, listeners: list[tuple[str, Listener]]) -> None:
        if listeners:  # the config check allows publish/rpc only on MQTT sinks
            raise ValueError(f"sink {self.name}: a {self.kind} sink receives nothing")

    def respond(self, topic: str, payload: str | bytes, props: dict[str, Any]) -> None:
        """Nothing to answer: this sink takes no requests."""

    # -- the task ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._stopped = False  # a run restarted after a crash blocks producers again
        try:
            await self._begin()
            while self.queue or not self._closing:
                if not self.queue:
                    self._wake.clear()
                    await self._idle()
                    continue
                batch = self.queue.take(self._batch)
                self._room.set()
                self._busy = True
                try:
                    await self._write(batch)
                finally:
                    self._busy = False
                    self._room.set()
        finally:
            try:
                await self._end()
            finally:
                self._stopped = True
                self._room.set()

    async def _begin(self) -> None:
        """Before the first batch: open what the sink writes to."""

    async def _idle(self) -> None:
        """The queue is empty: wait until ``send`` or ``close`` wakes the task."""
        await self._wake.wait()

    async def _write(self, batch: list[Delivery]) -> None:
        """Write one batch; what cannot be written yet goes back with ``queue.push_front``."""
        raise NotImplementedError

    async def _end(self) -> None:
        """After the last batch, or on a crash: let go of the target."""

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done() and not self._stopped:
            self._room.clear()
            await self._room.wait()
