"""graphql-transport-ws frames, decoded: ``next`` is the data message ``{id, data, errors}``;
``connection_ack``, ``ping``, ``pong``, ``error`` and ``complete`` are the protocol's own."""

from __future__ import annotations

from typing import Any, Final

from bridge.decoding import INVALID, decode_json

SUBPROTOCOL: Final = "graphql-transport-ws"
# Close codes by which the server refuses: bad request, unauthorized, forbidden, too many inits
REFUSING_CLOSES: Final = frozenset({4400, 4401, 4403, 4429})


def decode(frame: str | bytes) -> list[tuple[Any, bool]]:
    """One frame as ``[(value, is_data)]``."""
    value = decode_json(frame)
    if not isinstance(value, dict):
        return [({"type": "unknown"} if value is INVALID else {"type": "unknown", "value": value},
                 False)]
    if value.get("type") == "next":
        payload = value.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        return [({"id": value.get("id"), "data": payload.get("data"),
                  "errors": payload.get("errors")}, True)]
    return [(value, False)]
