"""What one received WebSocket frame carries, by RFC 6455's opcodes: the message, when the frame
holds it whole, and whether it is a data frame at all. The frame is websockets' ``Frame``
(``fin``, ``opcode``, ``data``), handed here by the adapter, ``bridge.upstream.connection``."""

from __future__ import annotations

from typing import Any, Final

TEXT: Final = 0x1
BINARY: Final = 0x2
CONTROL: Final = 0x8  # close, ping and pong are 0x8 and above; data frames below


def whole_message(frame: Any) -> str | bytes | None:
    """The message ``frame`` carries whole: ``str`` for text, ``bytes`` for binary; None for a
    fragment, a control frame or invalid UTF-8 (websockets' ``recv`` fails that with 1007, as
    the RFC wants). ``frame.data`` is bytes or bytearray."""
    if not frame.fin:
        return None
    if frame.opcode == TEXT:
        try:
            return str(frame.data, "utf-8")
        except UnicodeDecodeError:
            return None
    return bytes(frame.data) if frame.opcode == BINARY else None


def is_data(frame: Any) -> bool:
    """A data frame (continuation, text, binary), which keeps its place in the stream."""
    return bool(frame.opcode < CONTROL)
