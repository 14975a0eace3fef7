"""The way back, as part of every sink's contract: messages a sink receives from its server
(MQTT -> upstream) handed to the supervisor's listeners, and RPC answers published back.

Only the MQTT sink receives anything; the others take no requests and accept no listeners.
Kept apart from ``bridge.sinks.base`` because it is its own concept, with its own vocabulary
(``Incoming`` messages, topic filters, response topics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bridge.sinks.mqtt_incoming import Incoming

Listener = Callable[[Incoming], None]  # handles one received message


class WayBack(Protocol):
    """What a sink does for messages going the other way, from its server to a source."""

    def rpc_topic(self, source: str) -> str | None:
        """Where it takes RPC requests for ``source`` (MQTT -> upstream); None: it takes none."""

    def listen(self, listeners: list[tuple[str, Listener]]) -> None:
        """Deliver each message received on a (topic filter, handler)'s filter to the handler,
        replacing the previous listeners. Sinks that receive nothing accept only ``[]``."""

    def respond(self, topic: str, payload: str | bytes, props: dict[str, Any]) -> None:
        """Answer an RPC request on ``topic``; sinks that take no requests ignore it."""
