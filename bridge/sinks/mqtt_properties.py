"""MQTT 5 PUBLISH properties of each delivery, encoded: content type, expiry, user properties.

What is the same for every message of a source (the expiry, user properties without per-message
placeholders) is encoded once per source; per message only the rest is rendered and encoded."""

from __future__ import annotations

from typing import Final

from bridge.messages import INVALID, Delivery, Message
from bridge.routing.template import Context, Template, TemplateError
from bridge.sinks import mqtt_packet as packet
from bridge.sinks import mqtt_property_list as plist
from bridge.sinks.mqtt_user_properties import BOUND, CLOCK, Render, bind

_JSON: Final = plist.prop("content_type", "application/json")


class PropertyBuilder:
    """``builder(delivery)``: the encoded property list of one PUBLISH (``packet.publish``)."""

    def __init__(self, expiry: float | None, user: dict[str, Template], host: str) -> None:
        self._head = b""
        if expiry:
            self._head = plist.prop("message_expiry_interval", max(1, round(expiry)))
        self._user = list(user.items())
        self._host = host
        self._uses_msg = any(t.uses_message for t in user.values())
        self._bound: dict[str, list[bytes | Render]] = {}  # per source (few)
        self._heads = (self._head, self._head + _JSON)  # without, with the JSON content type
        self._fixed = tuple(plist.property_list([h]) for h in self._heads)  # no user properties
        self._ctx = Context(hostname=host)  # refilled per message: rendering keeps no reference
        # Only the clock changes per message ({now_ms} and the like): one list per millisecond.
        self._per_ms = all(t.roots <= CLOCK | BOUND for t in user.values())
        self._memo: tuple[int, bool, str, bytes] = (-1, False, "", b"")

    def __call__(self, delivery: Delivery, msg_id: str | None = None) -> bytes:
        """``msg_id``, when given, goes last as a user property (the outbox's dedupe key)."""
        m, text = delivery.message, delivery.payload
        # text shaped like a JSON object or array, unless already found invalid
        json = isinstance(text, str) and text[:1] in ("{", "[") and m.parsed is not INVALID
        if not self._user and msg_id is None:
            return self._fixed[json]
        if self._per_ms and msg_id is None:
            ms, memo = int(m.received_at * 1000), self._memo
            if ms == memo[0] and json is memo[1] and m.source == memo[2]:
                return memo[3]
            self._memo = (ms, json, m.source, encoded := self._encode(m, json))
            return encoded
        return self._encode(m, json, msg_id)

    def _encode(self, m: Message, json: bool, msg_id: str | None = None) -> bytes:
        parts = [self._heads[json]]
        if (bound := self._bound.get(m.source)) is None:
            bound = self._bound[m.source] = bind(self._user, m.source, self._host)
        ctx = None
        for part in bound:
            if isinstance(part, bytes):  # nothing in it changes per message
                parts.append(part)
                continue
            if part.clock and part.last[0] == (ms := int(m.received_at * 1000)):
                parts.append(part.last[1])
                continue
            if ctx is None:
                ctx = self._ctx
                ctx.source, ctx.raw, ctx.now = m.source, m.data, m.received_at
                ctx.msg = m.json if self._uses_msg else INVALID
            try:
                encoded = part.key + packet.str16(part.template.render_str(ctx))
            except (TemplateError, ValueError):  # a field this message lacks, or over 64 KiB
                continue
            parts.append(encoded)
            if part.clock:
                part.last = (ms, encoded)
        if msg_id is not None:
            parts.append(plist.user_property("msg_id", msg_id))
        return plist.property_list(parts)

