"""MQTT PUBLISH packets (3.1.1 and 5), encoded here: pure functions over bytes.

gmqtt stays the client (connect, acks, subscriptions, keepalive), but its generic encoder built a
``Message``, looked each property up by name and grew a bytearray per field: a fifth of the
bridge's CPU per message in py-spy. Topics are encoded once each (``Topics``), and a PUBLISH is
then one join. Tests compare every byte with gmqtt's encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MAX_REMAINING: Final = 268_435_455  # the largest Remaining Length MQTT can carry
NO_PROPERTIES: Final = b"\x00"  # an MQTT 5 PUBLISH with an empty property list
_SMALL: Final = [bytes((n,)) for n in range(128)]
_LOW: Final = [bytes((0x80 | n,)) for n in range(128)]  # a first byte with more to follow
_USER: Final = 0x26


def varint(n: int) -> bytes:
    """MQTT's Variable Byte Integer."""
    if n < 128:
        return _SMALL[n]
    if n < 16_384:  # a KiB payload: two bytes, without the loop
        return _LOW[n & 0x7F] + _SMALL[n >> 7]
    out = bytearray()
    while n > 127:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def str16(value: str | bytes) -> bytes:
    """A UTF-8 string (or binary data) with its 16-bit length; ValueError over 65535 bytes."""
    data = value.encode("utf-8", errors="replace") if isinstance(value, str) else value
    if len(data) > 65_535:
        raise ValueError(f"a string of {len(data)} bytes is over MQTT's 65535")
    return len(data).to_bytes(2, "big") + data


# property name (as gmqtt names them) -> identifier; correlation data is binary, same prefix
_IDS: Final = {"content_type": 0x03, "response_topic": 0x08, "correlation_data": 0x09}


def prop(name: str, value: Any) -> bytes:
    """One MQTT 5 property, encoded; for a list, join these and pass them to ``property_list``."""
    if name == "message_expiry_interval":
        return _SMALL[0x02] + int(value).to_bytes(4, "big")
    return _SMALL[_IDS[name]] + str16(value)


def user_key(key: str) -> bytes:
    """A user property up to its value: ``user_key(k) + str16(v)`` is the whole property."""
    return _SMALL[_USER] + str16(key)


def user_property(key: str, value: str) -> bytes:
    return _SMALL[_USER] + str16(key) + str16(value)


def property_list(parts: list[bytes]) -> bytes:
    """The property list of a packet: its length, then the properties."""
    body = b"".join(parts)
    return varint(len(body)) + body


def properties(props: Mapping[str, Any]) -> bytes:
    """``property_list`` of a dict; ``user_property`` is a list of (key, value)."""
    parts: list[bytes] = []
    for name, value in props.items():
        if name == "user_property":
            parts.extend(user_property(k, v) for k, v in value)
        else:
            parts.append(prop(name, value))
    return property_list(parts)


class Topics(dict[str, bytes]):
    """Topics by name, encoded once each: ``topics[name]``. Bounded: templated topics are not."""

    def __missing__(self, topic: str) -> bytes:
        if len(self) >= 10_000:
            self.clear()
        self[topic] = name = str16(topic)
        return name


def publish(topic: bytes, payload: bytes, props: bytes, *, qos: int, retain: bool,
            mid: int | None) -> bytes:
    """A whole PUBLISH packet. ``topic`` is ``str16(topic)``; ``props`` is ``b""`` for 3.1.1,
    else ``properties(...)`` or NO_PROPERTIES. ValueError when it exceeds MQTT's size limit."""
    length = len(topic) + len(props) + len(payload) + (2 if mid is not None else 0)
    if length > MAX_REMAINING:
        raise ValueError(f"a PUBLISH of {length} bytes is over MQTT's limit")
    head = _SMALL[0x30 | qos << 1 | retain]
    if mid is not None:
        return b"".join((head, varint(length), topic, mid.to_bytes(2, "big"), props, payload))
    return b"".join((head, varint(length), topic, props, payload))
