"""MQTT traffic the bridge receives and answers: incoming messages, failures, reply properties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.sinks.mqtt_topics import CONNACK_ADVICE


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT message received on a subscription; MQTT 5 request/response properties kept."""
    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation: bytes | None = None


def incoming(topic: str, payload: bytes, properties: dict[str, Any]) -> Incoming:
    """An ``Incoming`` from what gmqtt hands ``on_message`` (properties are lists of values)."""
    def first(key: str) -> Any:
        values = properties.get(key)
        return values[0] if isinstance(values, list) and values else None

    correlation = first("correlation_data")
    if isinstance(correlation, str):
        correlation = correlation.encode()
    return Incoming(topic, bytes(payload or b""), first("response_topic"), correlation)


def reply_properties(request: Incoming) -> dict[str, Any]:
    """The properties of the response to ``request``: its correlation data, unchanged."""
    return {} if request.correlation is None else {"correlation_data": request.correlation}


def connect_failure(at: str, exc: BaseException, refused: int | None,
                    tls: bool = False) -> tuple[str, str]:
    """(kind, message) of a failed connect as the user should read it: a refusal (``refused``:
    the CONNACK code) and its fix, TLS (``tls``: the adapter saw a TLS or certificate file
    failure), or no route at all."""
    if refused is not None:
        kind, hint = CONNACK_ADVICE.get(refused, ("refused", "see its log"))
        return kind, f"broker {at} refused the connection ({exc}): {hint}"
    if tls:
        reason = getattr(exc, "verify_message", None) or exc
        return "tls", f"TLS with {at} failed ({reason}): check tls.ca_file (and the port)"
    return "connect", f"cannot reach broker {at} ({str(exc) or 'timed out'})"  # TimeoutError: ""
