"""A route's timed steps, sans-I/O (the caller passes ``now``): ``throttle``, then ``batch``.
What they hold is released when due (``deadline``, then ``due``) or at once on ``flush``."""

from __future__ import annotations

from typing import Any

from bridge.config.specs import RouteSpec
from bridge.messages import Delivery, Message
from bridge.routing.batch import Batch
from bridge.routing.throttle import Throttle


class Hold:
    def __init__(self, spec: RouteSpec, source: str, topic: str | None) -> None:
        self.spec, self.source, self.topic = spec, source, topic  # topic: a batch's, static
        throttle, batch = spec.throttle, spec.batch
        self.throttle = None if throttle is None else Throttle[Any](
            throttle.every, keep_last=throttle.keep == "last", max_keys=throttle.max_keys)
        self.batch = None if batch is None else Batch(batch.max, batch.within)

    def offer(self, key: str, thing: Any, received_at: float, now: float,
              out: list[Delivery]) -> None:
        """Take a delivery (a JSON element when batched), throttled by ``key``."""
        if self.throttle is None:
            self._add(thing, received_at, now, out)
        elif self.batch is None:
            self.throttle.offer(key, thing, now, out)  # a delivery: straight out
        else:
            released: list[Any] = []
            self.throttle.offer(key, (thing, received_at), now, released)
            self._release(released, now, out)

    def armed(self) -> bool:
        """Whether a deadline appeared since the last call (it may be sooner than any known)."""
        armed = (self.throttle is not None and self.throttle.armed) or (
            self.batch is not None and self.batch.armed)
        if armed:
            if self.throttle is not None:
                self.throttle.armed = False
            if self.batch is not None:
                self.batch.armed = False
        return armed

    def deadline(self) -> float | None:
        throttle = self.throttle.deadline() if self.throttle else None
        batch = self.batch.deadline() if self.batch else None
        if throttle is None or batch is None:
            return batch if throttle is None else throttle
        return min(throttle, batch)

    def due(self, now: float, out: list[Delivery]) -> None:
        """What is due by ``now``: held throttled values, a batch whose time is up."""
        if self.throttle is not None:
            released: list[Any] = []
            self.throttle.due(now, released)
            self._release(released, now, out)
        if self.batch is not None and (text := self.batch.due(now)) is not None:
            out.append(self._batched(text, self.batch))

    def flush(self, now: float, out: list[Delivery]) -> None:
        """Everything held, now: at shutdown, or when a reload drops the route."""
        if self.throttle is not None:
            released: list[Any] = []
            self.throttle.flush(released)
            self._release(released, now, out)
        if self.batch is not None and (text := self.batch.take()) is not None:
            out.append(self._batched(text, self.batch))

    def _release(self, released: list[Any], now: float, out: list[Delivery]) -> None:
        """What the throttle let go: deliveries, or (element, time) pairs for the batch."""
        if self.batch is None:
            out += released
            return
        for thing, received_at in released:
            self._add(thing, received_at, now, out)

    def _add(self, element: str, received_at: float, now: float, out: list[Delivery]) -> None:
        if self.batch is not None and (text := self.batch.add(element, received_at, now)):
            out.append(self._batched(text, self.batch))

    def _batched(self, text: str, batch: Batch) -> Delivery:
        msg = Message(self.source, text, batch.received_at)
        return Delivery(msg, text, self.topic, self.spec.qos, self.spec.retain)
