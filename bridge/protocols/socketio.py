"""Socket.IO 5 over Engine.IO v4 frames, decoded: ``42["tick",{...}]`` is the data message
``{event: "tick", data: {...}, args: [{...}]}``; everything else is the protocol's own.

Engine.IO packet types: 0 open, 1 close, 2 ping, 3 pong, 4 message, 6 noop. A message (4)
carries a Socket.IO packet: 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect_error,
then an optional ``/namespace,``, an optional ack id, and the JSON payload."""

from __future__ import annotations

import re
from typing import Any, Final

from bridge.decoding import INVALID, decode_json
from bridge.protocols.text import Parts, as_text, broken

ENGINE: Final = {"0": "open", "1": "close", "2": "ping", "3": "pong", "5": "upgrade", "6": "noop"}
PACKETS: Final = {"0": "connect", "1": "disconnect", "3": "ack", "4": "connect_error",
                  "6": "ack"}
_EVENTS: Final = ("2", "5")  # event, binary event (its attachments are not read)
_HEAD: Final = re.compile(r"(?P<type>\d)(?:(?P<ns>/[^,]*),)?(?P<ack>\d*)(?P<body>.*)", re.S)


def decode(frame: str | bytes) -> Parts:
    """One frame as its message: ``[(value, is_data)]``, or why it is not Socket.IO."""
    text = as_text(frame)
    kind, rest = text[:1], text[1:]
    if kind in ENGINE:
        return [({"engineio": ENGINE[kind], **_fields(rest)}, False)]
    head = _HEAD.fullmatch(rest) if kind == "4" else None
    if head is None or (head["type"] not in _EVENTS and head["type"] not in PACKETS):
        return [broken("socketio", "not an Engine.IO v4 / Socket.IO 5 packet")]
    namespace, body = head["ns"] or "/", decode_json(head["body"]) if head["body"] else None
    if head["type"] in _EVENTS:
        if not (isinstance(body, list) and body and isinstance(body[0], str)):
            return [broken("socketio", "an event that is not a JSON array [name, ...]")]
        args = body[1:]
        return [({"event": body[0], "data": args[0] if args else None, "args": args}, True)]
    return [({"socketio": PACKETS[head["type"]], "namespace": namespace,
              **_fields(head["body"])}, False)]


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
