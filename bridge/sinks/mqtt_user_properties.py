"""A sink's MQTT 5 user properties bound to one source: fixed parts encoded once, the rest
kept as templates to render per message.

``{source}`` and ``{hostname}`` are known once a source's first message arrives, so each user
property is bound then: one whose value no longer changes is encoded whole, once; one that
still reads the message or the clock is a ``Render``, rendered per message by the builder
(``mqtt_properties``)."""

from __future__ import annotations

from typing import Final

from bridge.routing.template import Context, Template
from bridge.sinks import mqtt_property_list as plist

CLOCK: Final = frozenset({"now_ms", "now_s"})  # values read off the clock: cached per ms
BOUND: Final = frozenset({"source", "hostname"})  # filled in once per source


class Render:
    """A user property whose value changes per message: the encoded key, the value's template,
    and, for a value read off the clock alone, the last millisecond's encoded property."""

    __slots__ = ("clock", "key", "last", "template")

    def __init__(self, key: str, template: Template) -> None:
        self.key = plist.user_key(key)
        self.template = template
        self.clock = template.roots <= CLOCK
        self.last = (-1, b"")


def bind(user: list[tuple[str, Template]], source: str, host: str) -> list[bytes | Render]:
    """Each user property of ``source``, in order: encoded when fixed, else a ``Render``."""
    parts: list[bytes | Render] = []
    for key, template in user:
        bound = template.bind({"source": source, "hostname": host})
        if bound.static:
            parts.append(plist.user_property(key, bound.render_str(Context())))
        else:
            parts.append(Render(key, bound))
    return parts
