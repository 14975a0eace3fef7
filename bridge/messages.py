"""The message that flows from a source to the sinks, with its JSON parsed at most once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from bridge.decoding import INVALID, MAX_JSON_DEPTH, decode_json

__all__ = [
    "INVALID", "MAX_JSON_DEPTH", "UNPARSED", "Delivery", "Message", "byte_size", "decode_json",
]
UNPARSED: Final = object()  # a message's JSON not decoded yet


class Message:
    """One frame from an upstream; ``data`` is ``str`` for text and ``bytes`` for binary."""

    __slots__ = ("_json", "data", "received_at", "source")
    control: ClassVar[bool] = False  # a protocol's own frame: heard by the session, never routed

    def __init__(self, source: str, data: str | bytes, received_at: float) -> None:
        self.source = source
        self.data = data
        self.received_at = received_at
        self._json: Any = UNPARSED

    @classmethod
    def of(cls, source: str, data: str | bytes, received_at: float, value: Any) -> Message:
        """A message whose JSON a decoder already knows: ``value``, sent on as ``data``."""
        msg = cls(source, data, received_at)
        msg._json = value
        return msg

    @property
    def json(self) -> Any:
        """The decoded JSON value, or ``INVALID``; decoded on first use, then cached."""
        if self._json is UNPARSED:
            self._json = decode_json(self.data)
        return self._json

    @property
    def parsed(self) -> Any:
        """The JSON value (or ``INVALID``) if already decoded, else None; never decodes."""
        return None if self._json is UNPARSED else self._json

    @property
    def is_binary(self) -> bool:
        return isinstance(self.data, bytes)

    @property
    def text(self) -> str | None:
        """The frame's text as received (after ``frames`` decoding), for ``$text`` and the
        other text operators; None for a binary frame."""
        data = self.data
        return data if isinstance(data, str) else None

    @property
    def match(self) -> dict[str, str] | None:
        """What ``{match.NAME}`` reads: the groups of ``frames.extract``; None without it."""
        return None

    def __repr__(self) -> str:
        unit = "bytes" if self.is_binary else "chars"
        return f"Message(source={self.source!r}, {len(self.data)} {unit})"


@dataclass(slots=True)  # not frozen: a frozen dataclass pays object.__setattr__ per field
class Delivery:
    """One routed message on its way into one sink: the route's rendered topic and payload."""

    message: Message
    payload: str | bytes
    topic: str | None = None
    qos: int | None = None
    retain: bool | None = None


def byte_size(data: str | bytes) -> int:
    """A frame's or payload's size in bytes, as it travels: text in UTF-8."""
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    return len(data.encode("utf-8", errors="replace"))
