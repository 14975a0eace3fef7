"""A protocol preset's frames decoded once, before the session: data messages (routed) and
control messages (heard by the session's patterns, never routed).

Each protocol atom turns one frame into ``Part``s: a JSON value and whether it is data (or
``Undecodable``: what breaks the protocol is counted and handled as ``frames`` does). Data
goes on as its JSON text (what the sinks receive); a control message keeps the frame's text,
so a refusal is reported with the server's own words. The preset's decoding comes after the
source's ``frames`` (decompression, split), when it has any: a composition, not a rival.

A protocol that is a byte stream (NATS: an operation may span frames) keeps what an unfinished
operation has so far: its decoding belongs to one connection, and ``fresh`` makes the next
one's, starting empty; the others have nothing to keep."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.protocols import graphql, socketio, stomp
from bridge.protocols.nats_stream import Stream
from bridge.protocols.text import Parts, as_text

Decode = Callable[[str | bytes], Parts]  # one frame's parts
# Each protocol's decoding for one connection of a source (by its name)
_DECODERS: dict[str, Callable[[str], Decode]] = {
    "socketio": lambda _: socketio.decode,
    "graphql-ws": lambda _: graphql.decode,
    "stomp": lambda _: stomp.decode,
    "nats": lambda source: Stream(source).feed,
}


class Frames(Protocol):
    """What the driver asks of a source's frame decoding: a frame's messages, in order (of one
    connection: a stream protocol's operation may span its frames), and the decoding of a new
    connection (``fresh``: nothing of another's carried over)."""

    def decode(self, frame: str | bytes, at: float) -> list[Message | Undecodable]: ...

    def fresh(self) -> Frames: ...


class Control(Message):
    """A protocol's own message: an ack, a ping, an error; the session hears it, no route does."""

    __slots__ = ()
    control = True


class PresetFrames:
    """The frames of a source with ``protocol: {type: ...}``: ``inner`` (its ``frames``, if
    any) first, then each message read by the protocol's atom."""

    __slots__ = ("_inner", "_parts", "_protocol", "_source")

    def __init__(self, protocol: str, source: str, inner: Frames | None = None) -> None:
        self._protocol, self._source, self._inner = protocol, source, inner
        self._parts = _DECODERS[protocol](source)

    def fresh(self) -> PresetFrames:
        """The decoding of a new connection: an unfinished operation is not carried over."""
        inner = None if self._inner is None else self._inner.fresh()
        return PresetFrames(self._protocol, self._source, inner)

    def decode(self, frame: str | bytes, at: float) -> list[Message | Undecodable]:
        items = [Message(self._source, frame, at)] if self._inner is None else \
            self._inner.decode(frame, at)
        out: list[Message | Undecodable] = []
        for item in items:
            if isinstance(item, Undecodable):
                out.append(item)
                continue
            frame = item.text if item.text is not None else item.data  # inflated, if it was
            for part in self._parts(frame):
                if isinstance(part, Undecodable):
                    out.append(part)  # counted by the protocol's name, then as on_invalid says
                    continue
                value, data = part
                if data:
                    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                    out.append(Message.of(self._source, text, at, value))
                else:  # the frame's text: what text operators and a refusal's excerpt read
                    out.append(Control.of(self._source, as_text(frame), at, value))
        return out
