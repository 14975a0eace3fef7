"""The error that ends a connection replaced on purpose; a ``SourceError`` beside those of
``bridge.errors`` (whose tree it extends: ``SourceError`` > ``Renewed``)."""

from __future__ import annotations

from bridge.errors import SourceError


class Renewed(SourceError):
    """The connection is replaced on purpose: ``why`` is ``reconnect_when`` (the server
    asked) or ``max_connection_age``; with ``rollover: close`` it ends like any failure."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__(source, _DETAIL.get(why, why))
        self.why = why


_DETAIL = {"reconnect_when": "the server asked for a new connection (reconnect_when)",
           "max_connection_age": "the connection reached its max_connection_age"}
