"""Automatic answers to server messages (``replies``): each whose ``when`` matches is sent."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from bridge.config.specs import ReplySpec
from bridge.messages import Message
from bridge.routing.template import TemplateError
from bridge.upstream.actions import Send
from bridge.upstream.render import Renderer


def replies(render: Renderer, specs: tuple[ReplySpec, ...], msg: Message, value: Any,
            now: float) -> list[Send]:
    """The ``replies`` whose ``when`` matches ``msg`` (its JSON ``value``, or its text),
    rendered by ``render``; one missing a field is skipped."""
    out = []
    for reply in specs:
        if reply.when.matches(value, msg.text):
            with suppress(TemplateError):
                out.append(render.send(reply.send, now, value, msg.data))
    return out
