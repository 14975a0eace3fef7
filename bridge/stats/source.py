"""What a source counts over its life, and why it reconnected: the reasons metrics and logs use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from bridge.errors import (
    AuthRejected,
    ConnectFailed,
    ConnectionLost,
    HandshakeRejected,
    MessageTooBig,
    Rejected,
    SequenceGap,
    SessionTimeout,
    SourceError,
)
from bridge.errors_renewal import Renewed, Requested

REASONS: Final = {
    "auth_rejected": "auth rejected",
    "handshake_rejected": "handshake rejected",
    "network": "network error",
    "timeout": "timeout",
    "too_big": "message too big",
    "closed": "connection closed",
    "rejected": "rejected",
    "gap": "sequence gap",
    "renewed": "connection renewed",
    "requested": "reconnect requested",
}

# Most specific first: HandshakeRejected is a ConnectFailed, MessageTooBig a ConnectionLost.
_KINDS: Final = (
    (AuthRejected, "auth_rejected"),
    (Rejected, "rejected"),
    (HandshakeRejected, "handshake_rejected"),
    (ConnectFailed, "network"),
    (SessionTimeout, "timeout"),
    (MessageTooBig, "too_big"),
    (SequenceGap, "gap"),
    (Requested, "requested"),
    (Renewed, "renewed"),
)


def reason_of(error: SourceError) -> str:
    """The reconnect reason for metrics and logs; a rejection is never a network error."""
    for kind, reason in _KINDS:
        if isinstance(error, kind):
            return reason
    if isinstance(error, ConnectionLost):  # 1006: the TCP connection dropped, no close frame
        return "network" if error.code in (None, 1006) else "closed"
    return "rejected"  # a subscribe reject, or a message the session could not render


@dataclass
class SourceStats:
    """Counters of one source over its whole life, across reconnects."""

    received: int = 0  # frames, including the session's own (acks, pongs)
    bytes: int = 0
    invalid: int = 0  # text frames that were not valid JSON
    undecodable: Counter[str] = field(default_factory=Counter)  # frames, by reason (gzip, ...)
    rejected: int = 0  # refusals by the server: a reject pattern or close code, an error frame
    reconnects: Counter[str] = field(default_factory=Counter)  # by reason_of()
    connects: int = 0  # connections that reached CONNECTED
    last_error: str | None = None
    handshake_seconds: float | None = None  # of the latest connection
    # dedup, sequence and expect_every: duplicate (dropped), no_key, no_seq, gap, resubscribe
    recovery: Counter[str] = field(default_factory=Counter)
    sent: int = 0  # messages sent upstream, the session's own included
    # messages from MQTT not sent upstream: expired, overflow, render_error
    outgoing: Counter[str] = field(default_factory=Counter)
    rollovers: int = 0  # connections replaced by a successor subscribed first (rollover)
