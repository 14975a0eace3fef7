"""What an MQTT sink has in flight: per lane, the QoS 1/2 publishes awaiting the broker's answer.

A broker's Receive Maximum bounds the publishes awaiting an answer on one connection, so each
lane (``mqtt_lanes``) has its own window: packet id -> (topic, delivery, when its batch was
written), in the order sent. When the connections die, what awaited an answer goes back to the
queue's front lane by lane, each in order; a source is on one lane, so its order holds.
Pure bookkeeping: the sink fires the publishes and reads the answers."""

from __future__ import annotations

from collections.abc import Callable

from bridge.messages import Delivery
from bridge.sinks.mqtt_lanes import Pins, held_back

Sent = tuple[str, Delivery, float]  # (topic, delivery, when its batch was written)
Fire = Callable[[int, list[Delivery]], int]  # (lane, deliveries) -> how many of them left


class Window:
    """The in-flight windows of ``lanes`` connections; lane 0 is the primary's."""

    def __init__(self, lanes: int) -> None:
        self.lanes: list[dict[int, Sent]] = [{} for _ in range(lanes)]
        self.pins = Pins(lanes) if lanes > 1 else None
        # Lanes: the last batch found every lane it needed full. Until an answer makes room,
        # another batch would find the same.
        self.stalled = False

    def __len__(self) -> int:
        return sum(len(sent) for sent in self.lanes)

    def room(self, cap: int) -> int:
        """Publishes that may still await an answer, over every lane."""
        if self.pins is None:  # one connection: asked once per batch, batches of a few at QoS 1
            return cap - len(self.lanes[0])
        return sum(cap - len(sent) for sent in self.lanes)

    def has_room(self, cap: int) -> bool:
        """Room in flight for another batch: a window not full, and lanes not stalled."""
        if self.pins is None:
            return cap > len(self.lanes[0])
        return not self.stalled and any(cap > len(sent) for sent in self.lanes)

    def fire(self, batch: list[Delivery], fire: Fire) -> list[Delivery]:
        """Fire ``batch`` (by lane, with lanes) and return what stayed, to go back in front."""
        if self.pins is None:
            return batch[fire(0, batch):]
        rest = held_back(self.pins.split(batch), fire)
        self.stalled = bool(batch) and len(rest) == len(batch)
        return rest

    def unanswered(self) -> list[Delivery]:
        """Every delivery still awaiting an answer, lane by lane in order; the windows empty."""
        left = [d for sent in self.lanes for _, d, _ in sent.values()]
        for sent in self.lanes:
            sent.clear()
        self.stalled = False
        return left
