"""A protocol preset's frames decoded once, before the session: data messages (routed) and
control messages (heard by the session's patterns, never routed).

Each protocol atom turns one frame into ``Part``s: a JSON value and whether it is data. Data
goes on as its JSON text (what the sinks receive); a control message keeps the frame's text,
so a refusal is reported with the server's own words."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bridge.messages import Message
from bridge.protocols import graphql, nats, socketio, stomp

Part = tuple[Any, bool]  # (value, is data)
Decode = Callable[[Message], list[Message]]

_DECODERS: dict[str, Callable[[str | bytes], list[Part]]] = {
    "socketio": socketio.decode,
    "graphql-ws": graphql.decode,
    "stomp": stomp.decode,
    "nats": nats.decode,
}


class Control(Message):
    """A protocol's own message: an ack, a ping, an error; the session hears it, no route does."""

    __slots__ = ()
    control = True


def decoder(protocol: str) -> Decode:
    """The decoder of ``protocol`` (a preset's ``type``): one frame into its messages."""
    parts_of = _DECODERS[protocol]

    def decode(msg: Message) -> list[Message]:
        out: list[Message] = []
        for value, data in parts_of(msg.data):
            if data:
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                out.append(Message.of(msg.source, text, msg.received_at, value))
            else:
                out.append(Control.of(msg.source, msg.data, msg.received_at, value))
        return out

    return decode
