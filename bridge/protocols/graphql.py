"""graphql-transport-ws frames, decoded: ``next`` is the data message ``{id, data, errors}``;
``connection_ack``, ``ping``, ``pong``, ``error`` and ``complete`` are the protocol's own."""

from __future__ import annotations

from typing import Final

from bridge.decoding import decode_json
from bridge.protocols.text import Parts, broken

SUBPROTOCOL: Final = "graphql-transport-ws"
# Close codes by which the server refuses: bad request, unauthorized, forbidden, too many inits
REFUSING_CLOSES: Final = frozenset({4400, 4401, 4403, 4429})


def decode(frame: str | bytes) -> Parts:
    """One frame as its message: ``[(value, is_data)]``, or why it is not graphql-ws."""
    value = decode_json(frame)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return [broken("graphql", "not a JSON object with a type")]
    if value["type"] != "next":
        return [(value, False)]
    payload = value.get("payload")
    if not isinstance(payload, dict):
        return [broken("graphql", "a next message without an object payload")]
    return [({"id": value.get("id"), "data": payload.get("data"),
              "errors": payload.get("errors")}, True)]
