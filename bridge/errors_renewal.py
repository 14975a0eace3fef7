"""The error that ends a connection replaced on purpose; a ``SourceError`` beside those of
``bridge.errors`` (whose tree it extends: ``SourceError`` > ``Renewed`` > ``Requested``)."""

from __future__ import annotations

from bridge.errors import SourceError


class Renewed(SourceError):
    """The connection is replaced on purpose: ``why`` is ``reconnect_when`` (the server
    asked), ``max_connection_age`` or ``requested`` (an operator); with ``rollover: close``
    it ends like any failure."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__(source, _DETAIL.get(why, why))
        self.why = why


class Requested(Renewed):
    """An operator asked for a new connection (a control request: Home Assistant's button);
    the live one is closed first, whatever ``rollover`` says."""

    def __init__(self, source: str) -> None:
        super().__init__(source, "requested")


_DETAIL = {"requested": "a reconnect was requested (control)",
           "reconnect_when": "the server asked for a new connection (reconnect_when)",
           "max_connection_age": "the connection reached its max_connection_age"}
