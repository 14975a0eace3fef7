"""What a template's placeholders can read: the ``Context`` a render is given, and what
``{mqtt...}`` reads of an MQTT message."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.decoding import INVALID


class TemplateError(ValueError):
    """A template is malformed, or a value it needs is missing from a message."""


class Unset(TemplateError):
    """A template reads ``{var.NAME}`` before any capture has set it: the send waits."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{{var.{name}}} is not set yet")
        self.name = name


@dataclass(slots=True)
class Context:
    """What placeholders can read; ``seq`` is called once per ``{seq}`` rendered.

    ``names`` holds the run-time namespaces (``bridge.routing.namespaces``): one value per
    namespace root, e.g. ``names["http"]["bullet"]`` is what ``{http.bullet...}`` reads.
    ``once`` keeps what must have one value within one render (``{nonce}``)."""

    source: str = ""
    msg: Any = INVALID
    raw: str | bytes = ""
    now: float = 0.0
    seq: Callable[[], int] = field(default=lambda: 0)
    hostname: str = ""
    mqtt: Any = None
    item: Any = INVALID  # in a route with ``each``: the element, and its position
    index: int = 0
    match: Any = None  # the groups of frames.extract
    names: Mapping[str, Any] = field(default_factory=dict)
    once: dict[str, Any] = field(default_factory=dict)


def mqtt_value(topic: str, payload: bytes | str) -> dict[str, Any]:
    """What ``{mqtt...}`` reads of an MQTT message: its topic, its levels (``{mqtt.topic[N]}``)
    and its payload, JSON-decoded when it parses, else the text."""
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return {"topic": topic, "levels": topic.split("/"), "payload": value}
