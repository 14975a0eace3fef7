"""What every sink is: the ``Sink`` protocol the supervisor and the router drive, and the
``SinkQueue`` protocol of what a sink queues deliveries in.

The protocol is the whole contract (httpcore's transports are the model): the supervisor
never asks which kind of sink it holds, it only calls what is listed here."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from bridge.messages import Delivery
from bridge.sinks.retaining import Retaining
from bridge.sinks.settings import Overflow
from bridge.sinks.way_back import WayBack
from bridge.stats.snapshot import SinkSnapshot


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


class Sink(WayBack, Retaining, Protocol):
    """A destination. ``send`` never blocks; ``run`` is the sink's one long-lived task. With
    ``WayBack``, what it does for messages coming the other way (MQTT -> upstream); with
    ``Retaining``, what it keeps retained about the sources."""

    name: str

    @property
    def queue(self) -> SinkQueue:
        """The sink's queue; the router applies ``block`` by its ``overflow`` and ``full``."""

    @property
    def up(self) -> bool:
        """Whether it can deliver now (readiness, the status line)."""

    @property
    def remote(self) -> bool:
        """Whether ``up`` follows a connection to a server (a broker) that may be down: the
        status line names such sinks."""

    def send(self, delivery: Delivery) -> None:
        """Queue one delivery, applying the queue's overflow policy when it is full."""

    async def drain(self) -> None:
        """Return once the queue has room (only ever waits under ``overflow: block``)."""

    async def run(self) -> None:
        """Open the target and write queued deliveries until ``close`` and the queue is empty."""

    def close(self) -> None:
        """Ask ``run`` to flush what is queued and return."""

    def snapshot(self) -> SinkSnapshot:
        """Its health and lifetime counters, read now."""

    def reopen(self) -> None:
        """SIGHUP: let go of open files so the next write opens them by name (logrotate)."""

    def hand_over(self) -> list[Delivery]:
        """Replaced on reload: what it still holds for its successor to send, in order, taken
        out of it. A durable outbox hands over nothing: its rows stay on disk."""
