"""The ``nats`` preset as the plain YAML it stands for (the NATS client protocol over WebSocket).

    protocol: {type: nats, token: T}             # or user: U, pass: P
    subscribe: [{subject: ticks.>}]

is (``\\r\\n`` ends each operation)

    auth:
      await: {nats: INFO}
      send: 'CONNECT {{"verbose":false,"pedantic":false,"protocol":1,"name":"ws-bridge",
             "auth_token":"T"}}\\r\\nPING\\r\\n'
      expect: {nats: PONG}                       # the server answers the PING once connected
      reject: {nats: -ERR}                       # -ERR 'Authorization Violation'
    subscribe: [{send: "SUB ticks.> 1\\r\\n"}]
    unsubscribe: [{send: "UNSUB 1\\r\\n"}]
    replies: [{when: {nats: PING}, send: "PONG\\r\\n"}]

with a connection's frames read as one stream by ``bridge.protocols.nats_stream`` (an operation
may span frames): ``MSG`` is ``{subject, reply, data}``."""

from __future__ import annotations

import json
from typing import Any

from bridge.config.template_paths import literal

REFUSE = {"nats": "-ERR"}
KEYS = ("token", "user", "pass")
_OPTIONS = {"verbose": False, "pedantic": False, "protocol": 1, "name": "ws-bridge"}


def expand(spec: dict[str, Any], subscribe: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain ``auth``, ``subscribe``, ``unsubscribe`` and ``replies`` of this preset."""
    creds = {"auth_token": spec["token"]} if "token" in spec else {}
    creds |= {k: spec[k] for k in ("user", "pass") if k in spec}
    connect = json.dumps({**_OPTIONS, **creds}, separators=(",", ":"), ensure_ascii=False)
    steps = [_step(str(i + 1), item) for i, item in enumerate(subscribe)]
    return {
        "auth": {"await": {"nats": "INFO"}, "send": literal(f"CONNECT {connect}\r\nPING\r\n"),
                 "expect": {"nats": "PONG"}, "reject": dict(REFUSE)},
        "subscribe": [step for step, _ in steps],
        "unsubscribe": [stop for _, stop in steps if stop is not None],
        "replies": [{"when": {"nats": "PING"}, "send": "PONG\r\n"}],
    }


def _step(sid: str, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if "subject" not in item:
        return item, None
    rest = {k: v for k, v in item.items() if k != "subject"}
    send = literal(f"SUB {item['subject']} {sid}\r\n")
    return {**rest, "send": send}, {"send": f"UNSUB {sid}\r\n"}
