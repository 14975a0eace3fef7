"""Socket.IO 5 over Engine.IO v4 frames, decoded: ``42["tick",{...}]`` is the data message
``{event: "tick", data: {...}, args: [{...}]}``; everything else is the protocol's own.

Engine.IO packet types: 0 open, 1 close, 2 ping, 3 pong, 4 message, 6 noop. A message (4)
carries a Socket.IO packet: 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect_error,
then an optional ``/namespace,``, an optional ack id, and the JSON payload."""

from __future__ import annotations

import re
from typing import Any, Final

from bridge.decoding import INVALID, decode_json
from bridge.protocols.text import as_text

ENGINE: Final = {"0": "open", "1": "close", "2": "ping", "3": "pong", "5": "upgrade", "6": "noop"}
PACKETS: Final = {"0": "connect", "1": "disconnect", "3": "ack", "4": "connect_error",
                  "6": "ack"}
_EVENTS: Final = ("2", "5")  # event, binary event (its attachments are not read)
_HEAD: Final = re.compile(r"(?P<type>\d)(?:(?P<ns>/[^,]*),)?(?P<ack>\d*)(?P<body>.*)", re.S)


def decode(frame: str | bytes) -> list[tuple[Any, bool]]:
    """One frame as ``[(value, is_data)]``."""
    text = as_text(frame)
    kind, rest = text[:1], text[1:]
    if kind != "4":
        return [({"engineio": ENGINE.get(kind, "unknown"), **_fields(rest)}, False)]
    head = _HEAD.fullmatch(rest)
    if head is None:
        return [({"socketio": "unknown"}, False)]
    namespace, body = head["ns"] or "/", decode_json(head["body"]) if head["body"] else None
    if head["type"] in _EVENTS and isinstance(body, list) and body:
        args = body[1:]
        return [({"event": body[0], "data": args[0] if args else None, "args": args}, True)]
    packet = PACKETS.get(head["type"], "unknown")
    return [({"socketio": packet, "namespace": namespace, **_fields(head["body"])}, False)]


def _fields(text: str) -> dict[str, Any]:
    """A packet's JSON payload as fields of its control message (``{message: ...}`` of a
    refusal, ``{sid, pingInterval, ...}`` of an open); a payload that is not an object goes
    under ``data``."""
    if not text:
        return {}
    value = decode_json(text)
    if isinstance(value, dict):
        return value
    return {"data": text if value is INVALID else value}


def connect_packet(namespace: str, auth: str) -> str:
    """``40`` for namespace ``namespace`` with ``auth`` as its payload (JSON text, or none)."""
    return "40" + _ns(namespace) + auth


def event_packet(namespace: str, args: str) -> str:
    """``42`` for ``namespace``, ``args`` being the JSON array ``[event, data]``."""
    return "42" + _ns(namespace) + args


def disconnect_packet(namespace: str) -> str:
    return "41" + _ns(namespace)


def _ns(namespace: str) -> str:
    return "" if namespace in ("", "/") else namespace + ","
