"""What the close handshake of a connection that ended means: the ``SourceError`` it is
reported as, from the close frames sent and received (websockets' ``ConnectionClosed`` carries
them; the adapter, ``bridge.upstream.connection``, hands it here)."""

from __future__ import annotations

from typing import Any, Final

from bridge.errors import ConnectionLost, MessageTooBig, SessionTimeout

MESSAGE_TOO_BIG: Final = 1009
KEEPALIVE_TIMEOUT: Final = 1011  # websockets closes with it when pings go unanswered
ABNORMAL_CLOSURE: Final = 1006


def lost(source: str, exc: Any) -> ConnectionLost | SessionTimeout:
    """The peer's close code, else ours (1009), else 1006; unanswered pings: a ping timeout.
    ``exc``: a ``ConnectionClosed`` (``sent`` and ``rcvd`` close frames, ``rcvd_then_sent``)."""
    if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG and not exc.rcvd_then_sent:
        return MessageTooBig(source, exc.sent.code, exc.sent.reason)
    if exc.rcvd is None and exc.sent is not None and exc.sent.code == KEEPALIVE_TIMEOUT:
        return SessionTimeout(source, "ping", "the peer stopped answering pings (half-open)")
    if exc.rcvd is not None:
        return ConnectionLost(source, exc.rcvd.code, exc.rcvd.reason)
    if exc.sent is not None:
        return ConnectionLost(source, exc.sent.code, exc.sent.reason)
    return ConnectionLost(source, ABNORMAL_CLOSURE, "no close frame")
