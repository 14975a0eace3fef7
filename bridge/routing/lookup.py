"""How each ``{placeholder}`` is looked up in a ``Context``: one getter per placeholder, made
when a template compiles, so rendering walks no path text and checks no placeholder name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bridge.decoding import INVALID
from bridge.routing.context import Context, TemplateError
from bridge.routing.namespaces import NAMESPACES, namespace_getter

ROOTS = frozenset({"seq", "source", "now_ms", "now_s", "hostname", "msg", "mqtt", *NAMESPACES})
_STEP = re.compile(r"\.([\w-]+)|\[(\d+)\]")

Getter = Callable[[Context], Any]
_SCALARS: dict[str, Getter] = {
    "seq": lambda c: c.seq(),
    "source": lambda c: c.source,
    "now_ms": lambda c: int(c.now * 1000),
    "now_s": lambda c: int(c.now),
    "hostname": lambda c: c.hostname,
}


def getter(root: str, path: str) -> Getter:
    """The getter of ``{root<path>}`` (``root`` ``msg``, ``path`` ``.data[0]``); raises
    ``TemplateError`` for an unknown root, or fields on a value that has none."""
    name = "{" + root + path + "}"
    if root not in ROOTS:
        raise TemplateError(f"unknown placeholder {name}; known: {', '.join(sorted(ROOTS))}")
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

    def get(ctx: Context) -> Any:
        value = ctx.msg if root == "msg" else ctx.mqtt
        if value is None and root == "mqtt":
            raise TemplateError(f"{name}: there is no MQTT message here")
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
