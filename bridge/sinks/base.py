"""What every sink is: the ``Sink`` protocol the supervisor drives (settings re-exported)."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from bridge.messages import Delivery
from bridge.sinks.settings import (
    Availability,
    FileSinkConfig,
    Format,
    MqttSinkConfig,
    Overflow,
    QueueConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebSocketSinkConfig,
)

__all__ = [
    "Availability",
    "FileSinkConfig",
    "Format",
    "LogsStates",
    "MqttSinkConfig",
    "Overflow",
    "QueueConfig",
    "Sink",
    "SinkConfig",
    "SinkQueue",
    "StdoutSinkConfig",
    "WebSocketSinkConfig",
]


class SinkQueue(Protocol):
    """What a sink queues deliveries in: the in-memory ``BoundedQueue`` or the durable outbox.

    Both apply the same overflow policy; under ``block`` the router reads ``full`` after each
    ``send`` and makes the source await the sink's ``drain()``, whichever queue it is."""

    overflow: Overflow
    dropped: Counter[str]

    def __len__(self) -> int:
        """Deliveries waiting to be taken."""

    @property
    def full(self) -> bool:
        """No room for one more without applying the overflow policy."""

    def put(self, item: Delivery) -> bool:
        """Add ``item``; False when the policy dropped one (the oldest or this one)."""

    def take(self, most: int) -> list[Delivery]:
        """Remove and return up to ``most`` deliveries from the front, oldest first."""

    def push_front(self, items: list[Delivery]) -> None:
        """Put back deliveries taken but not delivered, first and in order."""


class Sink(Protocol):
    """A destination. ``send`` never blocks; ``run`` is the sink's one long-lived task."""

    name: str

    @property
    def queue(self) -> SinkQueue:
        """The sink's queue; the router applies ``block`` by its ``overflow`` and ``full``."""

    def send(self, delivery: Delivery) -> None:
        """Queue one delivery, applying the queue's overflow policy when it is full."""

    async def drain(self) -> None:
        """Return once the queue has room (only ever waits under ``overflow: block``)."""

    async def run(self) -> None:
        """Open the target and write queued deliveries until ``close`` and the queue is empty."""

    def close(self) -> None:
        """Ask ``run`` to flush what is queued and return."""


class LogsStates:
    """For sinks that do not record sources' connection states: the log already has them."""

    def source_state(self, source: str, state: str) -> None:
        """Nothing to do: states are logged, not sent to this sink."""
