"""The bridge's control topics, Zigbee2MQTT's way: a request on
``<topic_prefix>/bridge/request/<action>`` (JSON, ``source`` naming the source when the action
needs one, an optional ``transaction``) answered on ``<topic_prefix>/bridge/response/<action>``
with ``status`` ``ok`` or ``error``, ``data`` or ``error``, and the ``transaction`` echoed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.encoding import dumps

ACTIONS = ("reconnect", "resubscribe", "health")
FOR_A_SOURCE = ("reconnect", "resubscribe")


@dataclass(frozen=True, slots=True)
class Request:
    """One request read: its action, the source it names (or None), its transaction."""

    action: str
    source: str | None
    transaction: Any = None
    problem: str | None = None  # why it cannot be done


def request_topic(prefix: str, action: str = "+") -> str:
    """Where requests for ``action`` come (``+``: every action, the filter subscribed to)."""
    return f"{prefix}/bridge/request/{action}"


def read(topic: str, payload: bytes) -> Request:
    """The request on ``topic``, with its ``problem`` when it cannot be done."""
    action = topic.rsplit("/", 1)[-1]
    try:
        body = json.loads(payload) if payload.strip() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"source": payload.decode(errors="replace").strip()}  # a plain source name
    source, transaction = body.get("source"), body.get("transaction")
    problem = None
    if action not in ACTIONS:
        problem = f"unknown action {action!r}: one of {', '.join(ACTIONS)}"
    elif action in FOR_A_SOURCE and not isinstance(source, str):
        problem = f'{action} needs a source: {{"source": "NAME"}}'
    return Request(action, source if isinstance(source, str) else None, transaction, problem)


def response(prefix: str, action: str, transaction: Any, data: Any = None,
             error: str | None = None) -> tuple[str, str]:
    """The (topic, payload) answering a request for ``action``."""
    answer: dict[str, Any] = {"status": "error" if error else "ok",
                              **({"error": error} if error else {"data": data or {}})}
    if transaction is not None:
        answer["transaction"] = transaction
    return f"{prefix}/bridge/response/{action}", dumps(answer)
