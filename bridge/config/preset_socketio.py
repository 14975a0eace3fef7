"""The ``socketio`` preset as the plain YAML it stands for (Socket.IO 5, Engine.IO v4).

    protocol: {type: socketio, namespace: /feed, auth: {token: T}}
    subscribe: [{emit: join, data: room1}]

is

    auth:
      await: {engineio: open}                    # the server's 0{"sid": ...}
      send: '40/feed,{{"token":"T"}}'            # connect to the namespace, with auth
      expect: {socketio: connect}                # 40{"sid": ...}
      reject: {socketio: connect_error}          # 44{"message": "..."}: refused, with its reason
    subscribe: [{send: '42/feed,["join","room1"]'}]
    unsubscribe: [{send: '41/feed,'}]            # on a clean stop
    replies: [{when: {engineio: ping}, send: "3"}]

(namespace ``/`` writes no ``/ns,``), with frames decoded by ``bridge.protocols.socketio``."""

from __future__ import annotations

import json
from typing import Any

from bridge.config.template_paths import literal
from bridge.protocols import socketio

REFUSE = {"socketio": "connect_error"}
KEYS = ("namespace", "auth")


def expand(spec: dict[str, Any], subscribe: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain ``auth``, ``subscribe``, ``unsubscribe`` and ``replies`` of this preset."""
    ns = spec.get("namespace", "/")
    auth = "" if spec.get("auth") is None else _json(spec["auth"])
    return {
        "auth": {"await": {"engineio": "open"},
                 "send": literal(socketio.connect_packet(ns, auth)),
                 "expect": {"socketio": "connect"}, "reject": dict(REFUSE)},
        "subscribe": [_step(ns, item) for item in subscribe],
        "unsubscribe": [{"send": literal(socketio.disconnect_packet(ns))}],
        "replies": [{"when": {"engineio": "ping"}, "send": "3"}],
    }


def _step(ns: str, item: dict[str, Any]) -> dict[str, Any]:
    if "emit" not in item:
        return item
    rest = {k: v for k, v in item.items() if k not in ("emit", "data")}
    args = [item["emit"], *([item["data"]] if "data" in item else [])]
    return {**rest, "send": literal(socketio.event_packet(ns, _json(args)))}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
