"""The sink branch of the exception tree drawn in ``bridge.errors``: a sink's failures, which
never stop the other sinks or the sources."""

from __future__ import annotations

from bridge.errors import BridgeError


class SinkError(BridgeError):
    """A problem with one sink; other sinks and the sources keep running."""
    def __init__(self, sink: str, detail: str) -> None:
        super().__init__(sink, detail)
        self.sink, self.detail = sink, detail
    def __str__(self) -> str:
        return f"sink {self.sink!r}: {self.detail}"

class SinkUnavailable(SinkError):
    """Cannot reach or open the target now; ``kind``: auth, tls, refused, connect, lost, ..."""
    def __init__(self, sink: str, detail: str, kind: str = "connect") -> None:
        super().__init__(sink, detail)
        self.kind = kind

class PublishRefused(SinkError):
    """The target refused one message (an ACL, an invalid topic)."""
