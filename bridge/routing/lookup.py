"""How each ``{placeholder}`` is looked up in a ``Context``: one getter per placeholder, made
when a template compiles, so rendering walks no path text and checks no placeholder name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bridge.decoding import INVALID
from bridge.routing.clock import CHANCE, CLOCK, clock_getter
from bridge.routing.context import Context, TemplateError
from bridge.routing.namespaces import NAMESPACES, namespace_getter

ROOTS = frozenset({"seq", "source", "hostname", "msg", "mqtt", "item", "index", "match", *CLOCK,
                   *CHANCE, *NAMESPACES})
ITEM_ROOTS = frozenset({"item", "index"})  # known only in a route with ``each``
_HOLDERS = {"mqtt": "there is no MQTT message here", "match": "no frames.extract groups here"}
_STEP = re.compile(r"\.([\w-]+)|\[(\d+)\]")

Getter = Callable[[Context], Any]
_SCALARS: dict[str, Getter] = {
    "seq": lambda c: c.seq(),
    "source": lambda c: c.source,
    "hostname": lambda c: c.hostname,
    "index": lambda c: c.index,
}
_VALUES: dict[str, Getter] = {
    "msg": lambda c: c.msg, "mqtt": lambda c: c.mqtt, "item": lambda c: c.item,
    "match": lambda c: c.match,
}


def getter(root: str, path: str, offset: str | None = None) -> Getter:
    """The getter of ``{root<path>}`` (``root`` ``msg``, ``path`` ``.data[0]``; ``offset``:
    ``+10s`` after a clock's name); raises ``TemplateError`` for an unknown root, or fields on
    a value that has none."""
    name = "{" + root + path + "}"
    if root not in ROOTS:
        raise TemplateError(f"unknown placeholder {name}; known: {', '.join(sorted(ROOTS))}")
    if offset is not None and root not in CLOCK | CHANCE:
        raise TemplateError(f"{{{root}{path}:{offset}}}: only now_ms, now_s, now_iso take an "
                            "offset")
    if root in CLOCK | CHANCE:
        if path:
            raise TemplateError(f"{{{root}}} has no fields: {name}")
        return clock_getter(root, offset)
    if root in _SCALARS:
        if path:
            raise TemplateError(f"{{{root}}} has no fields: {name}")
        return _SCALARS[root]
    try:
        steps = [int(i) if i else k for k, i in _STEP.findall(path)]
    except ValueError:  # an index too long for Python's int(): no list is that long anyway
        raise TemplateError(f"{name}: index out of range") from None
    if root in NAMESPACES:
        return namespace_getter(root, steps, name)
    if root == "mqtt" and steps[:1] == ["topic"] and len(steps) > 1:
        steps[0] = "levels"  # {mqtt.topic} is the text, {mqtt.topic[N]} one of its levels

    read = _VALUES[root]

    def get(ctx: Context) -> Any:
        value = read(ctx)
        if value is None and root in _HOLDERS:
            raise TemplateError(f"{name}: {_HOLDERS[root]}")
        if value is INVALID and root == "item":
            raise TemplateError(f"{name}: there is no item here (a route without each)")
        if value is INVALID:
            if not steps:
                return ctx.raw
            raise TemplateError(f"{name}: the message is not JSON")
        try:
            for step in steps:
                value = value[step]
        except (KeyError, IndexError, TypeError):
            raise TemplateError(f"{name}: no such field in the message") from None
        return value

    if root == "msg" and len(steps) == 1 and isinstance(key := steps[0], str):
        def get_key(ctx: Context) -> Any:  # {msg.field}, the usual case: one lookup
            value = ctx.msg
            if type(value) is dict:
                try:
                    return value[key]
                except KeyError:
                    pass
            return get(ctx)  # the error to raise, or the raw text of a non-JSON frame

        return get_key
    return get
