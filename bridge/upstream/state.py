"""Connection states of a source, as users see them in logs, metrics and state topics."""

from __future__ import annotations

import enum


class ConnState(enum.Enum):
    """The lifecycle of one source; each transition is logged once."""

    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    SUBSCRIBING = "subscribing"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value
