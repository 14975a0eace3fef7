"""One route's processing between its ``when`` and its sink, sans-I/O (the caller passes
``now``): ``each`` and ``item_when``, ``on_change``, then the timed steps (``bridge.routing.hold``).
Deliveries are appended to the caller's list; what it holds back is counted by reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bridge.config.specs import RouteSpec
from bridge.decoding import INVALID
from bridge.messages import Delivery, Message
from bridge.routing.changes import ABSENT, Changes
from bridge.routing.context import Context, TemplateError
from bridge.routing.hold import Hold
from bridge.routing.render import deliver, element
from bridge.routing.template import Template
from bridge.routing.text import to_text


def elements(value: Any) -> list[Any] | None:
    """What ``each`` delivers one by one: a list's elements, a mapping's entries as
    ``{key, value}``; None for anything else, or nothing at all."""
    if isinstance(value, dict):
        value = [{"key": key, "value": item} for key, item in value.items()]
    return value if isinstance(value, list) and value else None


class Flow:
    def __init__(self, spec: RouteSpec, source: str, topic: str | None) -> None:
        self.spec, self.topic = spec, topic  # topic: the static one, rendered once
        self.held: Counter[str] = Counter()  # filtered (item_when), unchanged, no_items
        self.errors: list[Exception] = []  # render errors, for the router to count and log
        change = spec.on_change
        self.changes = None if change is None else Changes(change.deadband, change.max_keys)
        timed = spec.throttle is not None or spec.batch is not None
        self.hold = Hold(spec, source, topic) if timed else None
        self.feed = self._each if spec.each is not None else self._one

    def _each(self, msg: Message, ctx: Context, now: float, out: list[Delivery]) -> None:
        """``feed`` of a route with ``each``: every element of the message, one by one."""
        try:
            items = elements(self.spec.each.render(ctx)) if self.spec.each else None
        except TemplateError:
            items = None
        if items is None:
            self.held["no_items"] += 1
            return
        for ctx.index, ctx.item in enumerate(items):
            self._one(msg, ctx, now, out)
        ctx.item = INVALID

    def counts(self) -> Counter[str]:
        """What it held back, by reason, and the keys it forgot (``evicted``)."""
        throttle = self.hold.throttle if self.hold else None
        evicted = (self.changes.evicted if self.changes else 0) + (
            throttle.evicted if throttle else 0)
        return self.held + Counter(throttled=throttle.throttled if throttle else 0,
                                   evicted=evicted)

    def _one(self, msg: Message, ctx: Context, now: float, out: list[Delivery]) -> None:
        """``feed`` of a route without ``each`` (and of each element): the deliveries of
        ``msg``, which matched ``when``; render errors go to ``errors``."""
        spec = self.spec
        if spec.item_when is not None and not spec.item_when.matches(ctx.item):
            self.held["filtered"] += 1
            return
        try:
            if self.changes is not None and spec.on_change is not None and not self.changes.changed(
                    _key(spec.on_change.key, ctx), _value(spec.on_change.value, ctx)):
                self.held["unchanged"] += 1
                return
            if self.hold is None:
                out.append(deliver(spec, msg, ctx, self.topic))
                return
            thing = element(spec, msg, ctx) if spec.batch else deliver(spec, msg, ctx, self.topic)
            key = _key(spec.throttle.key, ctx) if spec.throttle else ""
        except (TemplateError, TypeError, ValueError) as exc:
            self.errors.append(exc)
            return
        self.hold.offer(key, thing, msg.received_at, now, out)


def _key(template: Template, ctx: Context) -> str:
    """A rendered key as text: ``1`` and ``"1"`` are one key."""
    value = template.render(ctx)
    return value if type(value) is str else to_text(value)


def _value(template: Template, ctx: Context) -> Any:
    try:
        return template.render(ctx)
    except TemplateError:
        return ABSENT  # a missing value is a value of its own
