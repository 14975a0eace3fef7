"""What every sink is: the ``Sink`` protocol the supervisor drives (settings re-exported)."""

from __future__ import annotations

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
    "StdoutSinkConfig",
    "WebSocketSinkConfig",
]


class Sink(Protocol):
    """A destination. ``send`` never blocks; ``run`` is the sink's one long-lived task."""

    name: str

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
