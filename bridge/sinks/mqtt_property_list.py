"""MQTT 5 property lists, encoded by hand: one property, a user property, a whole list.

The PUBLISH framing is ``mqtt_packet``'s; this is the part of the packet MQTT 3.1.1 lacks. Only
the properties the bridge sends are known here: content type, message expiry, response topic,
correlation data and user properties. Tests compare every byte with gmqtt's encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bridge.sinks.mqtt_packet import str16, varint

# property name (as gmqtt names them) -> identifier; correlation data is binary, same prefix
_IDS: Final = {"content_type": b"\x03", "response_topic": b"\x08", "correlation_data": b"\x09"}
_EXPIRY: Final = b"\x02"  # message_expiry_interval: a four-byte integer
_USER: Final = b"\x26"


def prop(name: str, value: Any) -> bytes:
    """One MQTT 5 property, encoded; for a list, join these and pass them to ``property_list``."""
    if name == "message_expiry_interval":
        return _EXPIRY + int(value).to_bytes(4, "big")
    return _IDS[name] + str16(value)


def user_key(key: str) -> bytes:
    """A user property up to its value: ``user_key(k) + str16(v)`` is the whole property."""
    return _USER + str16(key)


def user_property(key: str, value: str) -> bytes:
    """One user property (key and value, both UTF-8 strings), encoded."""
    return _USER + str16(key) + str16(value)


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
