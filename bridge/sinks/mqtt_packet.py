"""MQTT PUBLISH packets (3.1.1 and 5), encoded here: pure functions over bytes.

gmqtt stays the client (connect, acks, subscriptions, keepalive), but its generic encoder built a
``Message``, looked each property up by name and grew a bytearray per field, per message; why
that mattered is in ARCHITECTURE.md (Hot path). Topics are encoded once each (``Topics``), and a
PUBLISH is then one join. MQTT 5 property lists are ``mqtt_property_list``'s. Tests compare
every byte with gmqtt's encoder."""

from __future__ import annotations

from typing import Final

MAX_REMAINING: Final = 268_435_455  # the largest Remaining Length MQTT can carry
NO_PROPERTIES: Final = b"\x00"  # an MQTT 5 PUBLISH with an empty property list
_SMALL: Final = [bytes((n,)) for n in range(128)]
_LOW: Final = [bytes((0x80 | n,)) for n in range(128)]  # a first byte with more to follow


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
    else a ``mqtt_property_list`` list or NO_PROPERTIES. ValueError when it exceeds MQTT's size
    limit."""
    length = len(topic) + len(props) + len(payload) + (2 if mid is not None else 0)
    if length > MAX_REMAINING:
        raise ValueError(f"a PUBLISH of {length} bytes is over MQTT's limit")
    head = _SMALL[0x30 | qos << 1 | retain]
    if mid is not None:
        return b"".join((head, varint(length), topic, mid.to_bytes(2, "big"), props, payload))
    return b"".join((head, varint(length), topic, props, payload))
