"""A router's flows (the routes with processing steps), by route index: built, or carried over
from the router a live reload replaces when the route is unchanged, so what they hold and
remember (``on_change`` values, throttle periods, open batches) survives. Together: the next
deadline, what is due, what they held back."""

from __future__ import annotations

from collections import Counter

from bridge.config.specs import RouteSpec
from bridge.messages import Delivery
from bridge.routing.flow import Flow


def has_steps(spec: RouteSpec) -> bool:
    return any(step is not None for step in (
        spec.each, spec.item_when, spec.on_change, spec.throttle, spec.batch))


class Flows:
    def __init__(self, previous: Flows | None = None) -> None:
        self._flows: dict[int, Flow] = {}
        self._given: dict[int, RouteSpec] = {}  # as configured, before binding: reload compares
        self._previous = previous

    def add(self, index: int, given: RouteSpec, spec: RouteSpec, source: str,
            topic: str | None) -> Flow | None:
        """The flow of route ``index``: the previous router's for an unchanged route, else new."""
        if not has_steps(spec):
            return None
        flow = self._previous.take(given) if self._previous else None
        self._flows[index] = flow or Flow(spec, source, topic)
        self._given[index] = given
        return self._flows[index]

    def take(self, given: RouteSpec) -> Flow | None:
        """An unchanged route's flow, handed to the successor (once)."""
        for index, spec in self._given.items():
            if spec == given and index in self._flows:
                return self._flows.pop(index)
        return None

    def orphans(self, now: float) -> list[tuple[str, Delivery]]:
        """What the previous router's flows not carried over still held, by sink name."""
        previous, self._previous = self._previous, None
        return [] if previous is None else previous.flush(now)

    def timed(self) -> bool:
        return any(flow.hold is not None for flow in self._flows.values())

    def deadline(self) -> float | None:
        times = [f.hold.deadline() for f in self._flows.values() if f.hold is not None]
        return min((t for t in times if t is not None), default=None)

    def due(self, now: float) -> list[tuple[int, Delivery]]:
        """What is due by ``now``, with its route's index."""
        out: list[tuple[int, Delivery]] = []
        for index, flow in self._flows.items():
            if flow.hold is not None:
                held: list[Delivery] = []
                flow.hold.due(now, held)
                out += [(index, delivery) for delivery in held]
        return out

    def flush(self, now: float) -> list[tuple[str, Delivery]]:
        """Everything held, now, with its sink's name (shutdown, or dropped by a reload)."""
        out: list[tuple[str, Delivery]] = []
        for flow in self._flows.values():
            if flow.hold is not None:
                held: list[Delivery] = []
                flow.hold.flush(now, held)
                out += [(flow.spec.sink, delivery) for delivery in held]
        return out

    def held(self) -> Counter[str]:
        """What the flows held back, by reason."""
        return sum((flow.counts() for flow in self._flows.values()), Counter())
