"""What an attempt sends over HTTP, rendered: an HTTP step's request, and the socket's own URL
and headers, each from one context (one clock per request); and what a failed step means."""

from __future__ import annotations

from typing import Any

from bridge.config.http_specs import HttpStep
from bridge.errors import AuthRejected, ConnectFailed
from bridge.routing.template import Context, Template
from bridge.routing.text import to_text
from bridge.upstream.actions import Action, Fail, Notice
from bridge.upstream.attempt import Dial
from bridge.upstream.http_result import HttpRequest


def _texts(value: Any) -> dict[str, str]:
    return {str(k): to_text(v) for k, v in value.items()}


def request(step: HttpStep, ctx: Context, generation: int) -> HttpRequest:
    """``step``'s request for attempt ``generation``; raises TemplateError."""
    body: Any = None if step.body is None else step.body.render(ctx)
    kind = step.body_kind
    return HttpRequest(
        step.name, step.method, to_text(step.url.render(ctx)), _texts(step.headers.render(ctx)),
        step.timeout, generation,
        json=body if kind == "json" else None,
        form=_texts(body) if kind == "form" else None,
        body=to_text(body) if kind == "body" else None,
    )


def dial(url: Template, headers: Template, ctx: Context) -> Dial:
    """Where this attempt connects; raises TemplateError."""
    return Dial(to_text(url.render(ctx)), _texts(headers.render(ctx)))


def failure(step: HttpStep, source: str, why: str, status: int | None) -> Action:
    """A failed step: a ``connect`` step fails the attempt (401 and 403 as a rejection), one
    with ``on_error: reconnect`` the connection; any other is a log line."""
    text = f"http step {step.name!r} ({step.method}) failed: {why}"
    if step.on == "connect":
        kind = AuthRejected if status in (401, 403) else ConnectFailed
        return Fail(kind(source, text))
    return Fail(ConnectFailed(source, text)) if step.on_error == "reconnect" else Notice(text)
