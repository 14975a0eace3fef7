"""What the protocol atoms share: what they make of a frame (``Part``s, or ``Undecodable``
for what breaks the protocol: counted by the protocol's name and handled by ``on_invalid``,
as any frame ``frames`` cannot decode), a frame as text, a payload as JSON when it is JSON."""

from __future__ import annotations

from typing import Any

from bridge.decoding import INVALID, decode_json
from bridge.inflate import Undecodable

Part = tuple[Any, bool]  # a message's JSON value, and whether it is data (routed) or control
Parts = list[Part | Undecodable]


def broken(protocol: str, why: str, piece: str | None = None) -> Undecodable:
    """A frame that does not follow ``protocol``; ``piece``: the part of it that does not,
    when the frame holds several messages (the rest of them still count)."""
    return Undecodable(protocol, why, piece)


def as_text(frame: str | bytes) -> str:
    """A frame's text; binary frames (NATS sends them) read as UTF-8, bad bytes replaced."""
    return frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")


def json_or_text(text: str) -> Any:
    """``text`` decoded when it is JSON, else the text itself (a STOMP body, a NATS payload)."""
    value = decode_json(text)
    return text if value is INVALID else value
