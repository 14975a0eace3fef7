"""MQTT 5 PUBLISH properties of each delivery, encoded: content type, expiry, user properties.

What is the same for every message of a source (user properties without per-message
placeholders) is encoded once per source; per message only the rest is rendered and encoded.
The expiry is what is left of it after the message's wait (``mqtt_expiry``)."""

from __future__ import annotations

from bridge.messages import INVALID, Delivery, Message
from bridge.routing.template import Context, Template, TemplateError
from bridge.sinks import mqtt_packet as packet
from bridge.sinks import mqtt_property_list as plist
from bridge.sinks.mqtt_expiry import Expiry
from bridge.sinks.mqtt_user_properties import BOUND, CLOCK, Render, bind


class PropertyBuilder:
    """``builder(delivery)``: the encoded property list of one PUBLISH (``packet.publish``)."""

    def __init__(self, expiry: float | None, user: dict[str, Template], host: str) -> None:
        self.expiry = Expiry(expiry)  # left(message, now): the seconds to pass as ``left``
        self._user = list(user.items())
        self._host = host
        self._uses_msg = any(t.uses_message for t in user.values())
        self._bound: dict[str, list[bytes | Render]] = {}  # per source (few)
        self._ctx = Context(hostname=host)  # refilled per message: rendering keeps no reference
        # Only the clock changes per message ({now_ms} and the like): one list per millisecond.
        self._per_ms = all(t.roots <= CLOCK | BOUND for t in user.values())
        self._memo: tuple[int, bool, str, int, bytes] = (-1, False, "", 0, b"")

    def __call__(self, delivery: Delivery, msg_id: str | None = None, left: int = 0) -> bytes:
        """``msg_id``, when given, goes last as a user property (the outbox's dedupe key);
        ``left``: the seconds of expiry left (``expiry.left``), 0 without an expiry."""
        m, text = delivery.message, delivery.payload
        # text shaped like a JSON object or array, unless already found invalid
        json = isinstance(text, str) and text[:1] in ("{", "[") and m.parsed is not INVALID
        heads, fixed = self.expiry.none if not left else self.expiry.heads(left)
        if not self._user and msg_id is None:
            return fixed[json]
        if self._per_ms and msg_id is None:
            ms, memo = int(m.received_at * 1000), self._memo
            if ms == memo[0] and json is memo[1] and m.source == memo[2] and left == memo[3]:
                return memo[4]
            self._memo = (ms, json, m.source, left, encoded := self._encode(m, heads[json]))
            return encoded
        return self._encode(m, heads[json], msg_id)

    def _encode(self, m: Message, head: bytes, msg_id: str | None = None) -> bytes:
        parts = [head]
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

