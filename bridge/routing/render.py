"""A route's delivery rendered from a message: its topic and payload, or, for a batch, the
payload as one JSON element."""

from __future__ import annotations

from bridge.config.specs import RouteSpec
from bridge.decoding import INVALID
from bridge.encoding import dumps
from bridge.messages import Delivery, Message
from bridge.routing.context import Context
from bridge.routing.sanitize import sanitize_topic_value


def deliver(spec: RouteSpec, msg: Message, ctx: Context, topic: str | None = None) -> Delivery:
    """The delivery of ``msg`` on this route (``topic``: its static topic, if it has one);
    raises TemplateError (or TypeError, ValueError) when a template reads what it lacks."""
    payload: str | bytes = msg.data
    if spec.payload is not None:
        value = spec.payload.render(ctx)
        payload = value if isinstance(value, str | bytes) else dumps(value)
    if topic is None and spec.topic is not None:
        topic = spec.topic.render_str(ctx, sanitize_topic_value)
    return Delivery(msg, payload, topic, spec.qos, spec.retain)


def element(spec: RouteSpec, msg: Message, ctx: Context) -> str:
    """The payload as one element of a batch's JSON array: a JSON frame as it is, a rendered
    value as JSON, any other text (or binary frame) as a JSON string."""
    if spec.payload is not None:
        value = spec.payload.render(ctx)
        return dumps(value.decode(errors="replace") if isinstance(value, bytes) else value)
    if msg.json is not INVALID and isinstance(msg.data, str):
        return msg.data
    data = msg.data
    return dumps(data.decode(errors="replace") if isinstance(data, bytes) else data)
