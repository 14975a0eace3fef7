"""What the protocol atoms share: a frame as text, a payload as JSON when it is JSON."""

from __future__ import annotations

from typing import Any

from bridge.decoding import INVALID, decode_json


def as_text(frame: str | bytes) -> str:
    """A frame's text; binary frames (NATS sends them) read as UTF-8, bad bytes replaced."""
    return frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")


def json_or_text(text: str) -> Any:
    """``text`` decoded when it is JSON, else the text itself (a STOMP body, a NATS payload)."""
    value = decode_json(text)
    return text if value is INVALID else value
