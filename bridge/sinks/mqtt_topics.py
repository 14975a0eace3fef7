"""Pure MQTT sink rules: topic checks and names, CONNACK advice."""

from __future__ import annotations

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
