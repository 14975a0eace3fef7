"""A route's timed steps, sans-I/O (the caller passes ``now``): ``throttle``, then ``batch``.
What they hold is released when due (``deadline``, then ``due``) or at once on ``flush``."""

from __future__ import annotations

from typing import Any

from bridge.config.specs import RouteSpec
from bridge.messages import Delivery, Message
from bridge.routing.batch import Batch
from bridge.routing.throttle import Throttle

Released = tuple[Any, float]  # a delivery (or a batch's JSON element) and its message's time


class Hold:
    def __init__(self, spec: RouteSpec, source: str, topic: str | None) -> None:
        self.spec, self.source, self.topic = spec, source, topic  # topic: a batch's, static
        throttle, batch = spec.throttle, spec.batch
        self.throttle = None if throttle is None else Throttle[Released](
            throttle.every, keep_last=throttle.keep == "last", max_keys=throttle.max_keys)
        self.batch = None if batch is None else Batch(batch.max, batch.within)

    def offer(self, key: str, thing: Any, received_at: float, now: float,
              out: list[Delivery]) -> None:
        """Take a delivery (a JSON element when batched), throttled by ``key``."""
        released: list[Released] = []
        if self.throttle is not None:
            self.throttle.offer(key, (thing, received_at), now, released)
        else:
            released.append((thing, received_at))
        self._release(released, now, out)

    def deadline(self) -> float | None:
        times = [self.throttle.deadline() if self.throttle else None,
                 self.batch.deadline() if self.batch else None]
        return min((t for t in times if t is not None), default=None)

    def due(self, now: float, out: list[Delivery]) -> None:
        """What is due by ``now``: held throttled values, a batch whose time is up."""
        if self.throttle is not None:
            released: list[Released] = []
            self.throttle.due(now, released)
            self._release(released, now, out)
        if self.batch is not None and (text := self.batch.due(now)) is not None:
            out.append(self._batched(text, self.batch))

    def flush(self, now: float, out: list[Delivery]) -> None:
        """Everything held, now: at shutdown, or when a reload drops the route."""
        if self.throttle is not None:
            released: list[Released] = []
            self.throttle.flush(released)
            self._release(released, now, out)
        if self.batch is not None and (text := self.batch.take()) is not None:
            out.append(self._batched(text, self.batch))

    def _release(self, released: list[Released], now: float, out: list[Delivery]) -> None:
        for thing, received_at in released:
            if self.batch is None:
                out.append(thing)
            elif (text := self.batch.add(thing, received_at, now)) is not None:
                out.append(self._batched(text, self.batch))

    def _batched(self, text: str, batch: Batch) -> Delivery:
        msg = Message(self.source, text, batch.received_at)
        return Delivery(msg, text, self.topic, self.spec.qos, self.spec.retain)
