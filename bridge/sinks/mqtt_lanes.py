"""The lanes of an MQTT sink with ``connections: N``: which connection carries which source.

A broker's Receive Maximum (Mosquitto's default: 20) bounds the QoS 1/2 publishes awaiting an
answer on one connection, so one connection is round-trip bound at QoS 1. N connections give
N windows. Each source is pinned to one lane by rendezvous hashing of its name, so a source's
messages always leave in order on the same connection; lane 0 is the sink's primary
connection (availability and its will, source states, RPC), the others only publish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from bridge.messages import Delivery
from bridge.shard import owner

T = TypeVar("T")


def lane_client_id(client_id: str, lane: int) -> str:
    """Lane 0 keeps the configured client id; lane K adds ``-K`` (a broker allows one
    connection per client id)."""
    return client_id if lane == 0 else f"{client_id}-{lane}"


class Pins:
    """Source name -> lane, computed once per source (the hash is not per-message work)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self._pinned: dict[str, int] = {}

    def __call__(self, source: str) -> int:
        lane = self._pinned.get(source)
        if lane is None:
            lane = self._pinned[source] = owner(source, self.lanes)
        return lane

    def split(self, batch: Sequence[Delivery]) -> list[list[Delivery]]:
        """``batch`` cut into one list per lane, each in the batch's order."""
        groups: list[list[Delivery]] = [[] for _ in range(self.lanes)]
        pinned, pin = self._pinned, self
        for d in batch:
            source = d.message.source
            lane = pinned.get(source)
            groups[pin(source) if lane is None else lane].append(d)
        return groups


def held_back(groups: list[list[Delivery]], fired: Callable[[int, list[Delivery]], int]
              ) -> list[Delivery]:
    """Fire each lane's group (``fired`` returns how many of it left) and return what stayed,
    lane by lane in order: put back at the queue's front, each source's order holds."""
    rest: list[Delivery] = []
    for lane, group in enumerate(groups):
        if group:
            rest += group[fired(lane, group):]
    return rest
