"""Pure MQTT sink rules: topic checks and names, CONNACK advice, MQTT 5 properties, stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any

from bridge.messages import INVALID, Delivery
from bridge.routing.template import Context, Template, TemplateError

MAX_TOPIC_BYTES = 65_535  # MQTT strings carry a 16-bit length
CONNACK_ADVICE = {  # refusal reason code (3.1.1 or 5) -> (error kind, what the user should do)
    **dict.fromkeys((4, 5, 0x86, 0x87), ("auth", "check username/password")),
    **dict.fromkeys((2, 0x85), ("refused", "check client_id")),
    **dict.fromkeys((1, 0x84), ("refused", "the broker lacks this MQTT version: check protocol")),
}


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None when it can."""
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        return "a topic to publish to must be non-empty, without wildcards (+, #) or NUL"
    # A character is at most 4 UTF-8 bytes, so only long topics are worth encoding.
    if len(topic) > MAX_TOPIC_BYTES // 4 and len(topic.encode(errors="replace")) > MAX_TOPIC_BYTES:
        return "the topic is longer than 65535 bytes"
    return None


def source_topic(prefix: str, source: str, leaf: str = "") -> str:
    """A source's default topic, or with ``leaf="state"`` its retained connection-state topic."""
    return f"{prefix}/{source}/{leaf}" if leaf else f"{prefix}/{source}"


class PropertyBuilder:
    """MQTT 5 PUBLISH properties for one delivery: content type, expiry, user properties."""

    def __init__(self, expiry: float | None, user: dict[str, Template], host: str) -> None:
        self._expiry = max(1, round(expiry)) if expiry else None
        self._user, self._host = list(user.items()), host
        self._uses_msg = any(t.uses_message for t in user.values())
        self._bound: dict[str, list[tuple[str, str | Template]]] = {}  # per source (few)

    def __call__(self, delivery: Delivery) -> dict[str, Any]:
        props: dict[str, Any] = {"message_expiry_interval": self._expiry} if self._expiry else {}
        text, known = delivery.payload, delivery.message.parsed
        # Text shaped like a JSON object or array, unless already found invalid: never parse
        if isinstance(text, str) and text[:1] in ("{", "[") and known is not INVALID:
            props["content_type"] = "application/json"
        if self._user:
            m, pairs, ctx = delivery.message, [], None
            for key, value in self._bound.get(m.source) or self._bind(m.source):
                if isinstance(value, str):  # nothing in it changes per message
                    pairs.append((key, value))
                    continue
                if ctx is None:
                    msg = m.json if self._uses_msg else INVALID
                    ctx = Context(m.source, msg, m.data, m.received_at, hostname=self._host)
                try:  # noqa: SIM105 - per message: suppress() would build a context manager each time
                    pairs.append((key, value.render_str(ctx)))
                except TemplateError:  # a field this message lacks: leave the property out
                    pass
            if pairs:
                props["user_property"] = pairs
        return props

    def _bind(self, source: str) -> list[tuple[str, str | Template]]:
        pairs: list[tuple[str, str | Template]] = []
        for key, template in self._user:
            bound = template.bind({"source": source, "hostname": self._host})
            pairs.append((key, bound.render_str(Context()) if bound.static else bound))
        self._bound[source] = pairs
        return pairs


@dataclass
class MqttStats:
    """``dropped`` is the queue's counter, by reason; ``refused`` counts refusals by topic."""

    queue: Sized = field(default=(), repr=False)
    published: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    publish_latency: float | None = None  # of the latest QoS 1/2 answer, in seconds

    @property
    def queue_depth(self) -> int:
        return len(self.queue)
