"""``protocol:`` presets expanded at config build time into the plain YAML they stand for.

Each preset module (``preset_socketio``, ``preset_graphql``, ``preset_stomp``,
``preset_nats``) writes the ``auth``, ``subscribe``, ``unsubscribe``, ``replies`` and
``heartbeat`` a user could have written by hand; the source then runs on the same engine as
any other. What YAML cannot say is the frame format (``bridge.protocols``) and the
protocol's refusals at any time, which the ``ProtocolSpec`` carries."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final

from bridge.config import preset_graphql, preset_nats, preset_socketio, preset_stomp
from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.model import ProtocolSpec
from bridge.routing.pattern import Pattern

PRESETS: Final[dict[str, ModuleType]] = {
    "socketio": preset_socketio, "graphql-ws": preset_graphql,
    "stomp": preset_stomp, "nats": preset_nats,
}
# The key a subscribe entry of each preset is written with, instead of ``send``
SUBSCRIBE_KEYS: Final = {"socketio": "emit", "graphql-ws": "query", "stomp": "destination",
                         "nats": "subject"}
_OWN: Final = ("auth", "heartbeat", "unsubscribe")  # a preset's, not to be given beside it


def expand_preset(raw: dict[str, Any], path: KeyPath, c: Collector
                  ) -> tuple[dict[str, Any], ProtocolSpec | None]:
    """``raw`` with its preset expanded, and the preset's ``ProtocolSpec`` (None: no preset)."""
    spec, subscribe = raw.get("protocol"), list(raw.get("subscribe", []))
    kind = spec.get("type") if isinstance(spec, dict) else None
    key = SUBSCRIBE_KEYS.get(kind) if isinstance(kind, str) else None
    for i, item in enumerate(subscribe):
        if "send" not in item and (key is None or key not in item):
            c.add((*path, "subscribe", i), f"protocol {kind} subscribes with {key}: write "
                  f"{{{key}: ...}}, or send: (the message)" if key else
                  "without a protocol preset, a subscribe entry needs send: (the message)")
    subscribe = [item for item in subscribe if "send" in item or (key and key in item)]
    if spec is None or kind not in PRESETS:
        return {**raw, "subscribe": subscribe}, None
    module = PRESETS[kind]
    for key in sorted(set(spec) - {"type", *module.KEYS}):
        c.add((*path, "protocol", key), f"not a setting of protocol {kind}; "
                                        f"it takes {', '.join(module.KEYS)}")
    plain: dict[str, Any] = module.expand(spec, subscribe)
    for key in _OWN:
        if key in raw and key in plain:
            c.add((*path, key), f"protocol {kind} sets {key} itself: remove one of them")
    out = {**raw, **plain, "replies": [*plain.get("replies", ()), *raw.get("replies", ())]}
    out["subprotocols"] = raw.get("subprotocols", plain.get("subprotocols", []))
    return out, ProtocolSpec(kind, Pattern(module.REFUSE))
