"""The ``graphql-ws`` preset as the plain YAML it stands for (graphql-transport-ws).

    protocol: {type: graphql-ws, init: {token: T}}
    subscribe: [{query: "subscription { count }", variables: {}}]

is

    subprotocols: [graphql-transport-ws]
    auth:
      send: {type: connection_init, payload: {token: T}}
      expect: {type: connection_ack}
      reject: [{type: error}, {$close: [4400, 4401, 4403, 4429]}]
    subscribe:
      - send: {id: "1", type: subscribe,
               payload: {query: "subscription {{ count }}", variables: {}}}
    unsubscribe: [{send: {id: "1", type: complete}}]   # on a clean stop
    replies: [{when: {type: ping}, send: {type: pong}}]

with ids assigned in order ("1", "2", ...), literal braces escaped, and frames decoded by
``bridge.protocols.graphql``: ``next`` is the data message ``{id, data, errors}``."""

from __future__ import annotations

from typing import Any

from bridge.config.template_paths import literal
from bridge.protocols.graphql import REFUSING_CLOSES

REFUSE = {"type": "error"}
KEYS = ("init",)


def expand(spec: dict[str, Any], subscribe: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain ``subprotocols``, ``auth``, ``subscribe``, ``unsubscribe`` and ``replies``."""
    init = {"type": "connection_init", **({"payload": spec["init"]} if "init" in spec else {})}
    steps = [_step(str(i + 1), item) for i, item in enumerate(subscribe)]
    return {
        "subprotocols": ["graphql-transport-ws"],
        "auth": {"send": _literal(init), "expect": {"type": "connection_ack"},
                 "reject": [dict(REFUSE), {"$close": sorted(REFUSING_CLOSES)}]},
        "subscribe": [step for step, _ in steps],
        "unsubscribe": [stop for _, stop in steps if stop is not None],
        "replies": [{"when": {"type": "ping"}, "send": {"type": "pong"}}],
    }


def _step(sid: str, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if "query" not in item:
        return item, None
    rest = {k: v for k, v in item.items() if k not in ("query", "variables")}
    payload = {"query": item["query"], **({"variables": item["variables"]}
                                           if "variables" in item else {})}
    send = {"id": sid, "type": "subscribe", "payload": _literal(payload)}
    return {**rest, "send": send}, {"send": {"id": sid, "type": "complete"}}


def _literal(value: Any) -> Any:
    """``value`` with every string as literal text: a query's braces are not placeholders."""
    if isinstance(value, str):
        return literal(value)
    if isinstance(value, dict):
        return {literal(k): _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value
