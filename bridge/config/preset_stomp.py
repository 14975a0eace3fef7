"""The ``stomp`` preset as the plain YAML it stands for (STOMP 1.2 over WebSocket).

    protocol: {type: stomp, login: guest, passcode: P, host: /, heartbeat: 10s}
    subscribe: [{destination: /topic/ticks}]

is (``\\n`` a newline, ``\\0`` a NUL)

    subprotocols: [v12.stomp, v11.stomp, v10.stomp]
    auth:
      send: "CONNECT\\naccept-version:1.2,1.1,1.0\\nhost:/\\nlogin:guest\\npasscode:P\\n
             heart-beat:10000,10000\\n\\n\\0"
      expect: {stomp: CONNECTED}
      reject: {stomp: ERROR}                     # its message header and body are the reason
    subscribe: [{send: "SUBSCRIBE\\nid:1\\ndestination:/topic/ticks\\nack:auto\\n\\n\\0"}]
    unsubscribe: [{send: "UNSUBSCRIBE\\nid:1\\n\\n\\0"}, {send: "DISCONNECT\\n\\n\\0"}]
    heartbeat: {send: "\\n", interval: 5s}       # half the promised 10 s

with frames decoded by ``bridge.protocols.stomp``."""

from __future__ import annotations

from typing import Any

from bridge.config.durations import parse_duration
from bridge.config.template_paths import literal
from bridge.protocols import stomp

REFUSE = {"stomp": "ERROR"}
KEYS = ("login", "passcode", "host", "heartbeat")


def expand(spec: dict[str, Any], subscribe: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain ``subprotocols``, ``auth``, ``subscribe``, ``unsubscribe``, ``heartbeat``."""
    beat = parse_duration(spec.get("heartbeat", 0))
    ms = str(round(beat * 1000))
    headers = [("accept-version", "1.2,1.1,1.0"), ("host", spec.get("host", "/")),
               *((k, spec[k]) for k in ("login", "passcode") if k in spec),
               ("heart-beat", f"{ms},{ms}")]
    steps = [_step(str(i + 1), item) for i, item in enumerate(subscribe)]
    plain: dict[str, Any] = {
        "subprotocols": list(stomp.SUBPROTOCOLS),
        "auth": {"send": literal(stomp.frame("CONNECT", headers)),
                 "expect": {"stomp": "CONNECTED"}, "reject": dict(REFUSE)},
        "subscribe": [step for step, _ in steps],
        "unsubscribe": [*(stop for _, stop in steps if stop is not None),
                        {"send": stomp.frame("DISCONNECT", ())}],
    }
    if beat > 0:
        plain["heartbeat"] = {"send": "\n", "interval": f"{beat / 2:g}s"}
    return plain


def _step(sid: str, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if "destination" not in item:
        return item, None
    rest = {k: v for k, v in item.items() if k != "destination"}
    headers = [("id", sid), ("destination", stomp.escape(item["destination"])), ("ack", "auto")]
    send = literal(stomp.frame("SUBSCRIBE", headers))
    return {**rest, "send": send}, {"send": stomp.frame("UNSUBSCRIBE", [("id", sid)])}
