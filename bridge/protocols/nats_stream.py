"""One connection's NATS frames read as the one byte stream they are.

nats-server frames its outbound buffers without regard for operations (to a browser's
User-Agent in WebSocket messages of 4 KiB), so a frame may carry several operations and an
operation may span several frames. nats.ws reads the frames as one stream, and so does this:
what an unfinished operation has so far is kept until the rest arrives, then decoded, in
order. Kept bytes are bounded: a payload by the server's ``max_payload`` (its INFO, NATS's
default until then), a control line by ``MAX_LINE``; past them the connection is renewed
(``OperationTooBig``), never a buffer grown without end. A new connection has a new
``Stream``: nothing of the last one's is carried over."""

from __future__ import annotations

from typing import Final

from bridge.errors import OperationTooBig
from bridge.protocols.nats import read
from bridge.protocols.text import Parts

DEFAULT_MAX_PAYLOAD: Final = 1 << 20  # nats-server's own default, until its INFO says
MAX_PAYLOAD: Final = 64 << 20  # the most nats-server takes as max_payload
MAX_LINE: Final = 64 << 10  # an unfinished control line (an INFO can be long) kept at most


class Stream:
    """``feed`` one frame after the other: the operations each one finishes."""

    __slots__ = ("_kept", "_need", "_source", "max_payload")

    def __init__(self, source: str) -> None:
        self._source, self._kept, self._need = source, bytearray(), 0
        self.max_payload = DEFAULT_MAX_PAYLOAD

    def feed(self, frame: str | bytes) -> Parts:
        """The operations ``frame`` finishes (with what was kept before it) as ``[(value,
        is_data)]``, in order; raises ``OperationTooBig`` for one that cannot be kept."""
        buf = frame.encode() if isinstance(frame, str) else frame
        if self._kept:
            self._kept += buf
            if len(self._kept) < self._need:  # a payload's bytes are counted, not read again
                return []
            buf, self._kept = bytes(self._kept), bytearray()
        parts, at, need, size, info = read(buf)
        if isinstance(info, dict) and isinstance(cap := info.get("max_payload"), int):
            self.max_payload = min(max(cap, 1), MAX_PAYLOAD)
        if at < len(buf):
            if size is None and len(buf) - at > MAX_LINE:
                raise OperationTooBig(self._source, f"NATS: a control line of over {MAX_LINE} "
                                                    "bytes without its end: not kept")
            if size is not None and size > self.max_payload:
                raise OperationTooBig(self._source, f"NATS: a message of {size} bytes spans "
                                      f"frames, over max_payload {self.max_payload}: not kept")
            self._kept, self._need = bytearray(memoryview(buf)[at:]), need
        return parts
