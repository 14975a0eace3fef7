"""What the server's answer means to the plan's current wait: expected, data it delivers, pool
items refused, or a rejection (with the server's reason) — from a message or from a close."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import AuthRejected, ConnectionLost, Rejected, SourceError
from bridge.routing.pattern import Pattern
from bridge.upstream.actions import Action, Fail, Refused
from bridge.upstream.excerpt import excerpt
from bridge.upstream.plan import Wait
from bridge.upstream.state import Event

if TYPE_CHECKING:
    from bridge.upstream.handshake import PlanRunner


def answer(wait: Wait | None, refuse: Pattern | None, value: Any, text: str | None,
           source: str) -> str | SourceError | None:
    """What a message (its JSON ``value``, its frame's ``text``) means to ``wait``: "expected"
    (or "deliver", when its step delivers it), "refused" (pool items' subscription rejected),
    the error of any other rejection (by the server, at the wait's stage, or at any time by a
    preset's ``refuse``), or None."""
    rejected = wait is not None and wait.reject is not None and wait.reject.matches(value, text)
    if rejected and wait is not None and wait.items:
        return "refused"
    if rejected or (refuse is not None and refuse.matches(value, text)):
        stage = "connection" if wait is None else wait.stage
        kind = AuthRejected if stage == "auth" else Rejected
        return kind(source, f"{stage} rejected by the server: {excerpt(text, value)}")
    if wait is None or not wait.expect.matches(value, text):
        return None
    return "deliver" if wait.deliver else "expected"


def heard(plan: PlanRunner, value: Any, text: str | None, now: float, source: str
          ) -> tuple[bool, list[Action | Event]] | None:
    """What a message (its JSON ``value``, its frame's ``text``) means to ``plan``: None when
    nothing; else whether it is the session's own (a step that ``deliver``s its answer makes
    it data) and what follows: a rejection's ``Fail``, or the plan going on (after ``Refused``
    when the upstream refused the wait's pool items: those, not the connection)."""
    said = answer(plan.wait, plan.refuse, value, text, source)
    if said is None:
        return None
    if isinstance(said, SourceError):
        return True, [Fail(said)]
    out: list[Action | Event] = []
    if said == "refused" and plan.wait is not None:
        out.append(Refused(plan.wait.items, excerpt(text, value)))
    return said != "deliver", out + plan.render.guard(plan.advance, now, value)


def closed(wait: Wait | None, error: SourceError) -> SourceError:
    """``error`` ended the connection: a rejection instead when the server closed it with a
    code (and reason) that ``wait``'s ``reject`` names (``$close``)."""
    if not isinstance(error, ConnectionLost) or error.code is None:
        return error
    if wait is None or wait.reject is None or not wait.reject.closes(error.code, error.reason):
        return error
    kind = AuthRejected if wait.stage == "auth" else Rejected
    reason = f": {excerpt(error.reason, None)}" if error.reason else ""
    return kind(error.source, f"{wait.stage} rejected by the server with close code "
                f"{error.code}{reason}")
