"""MQTT to upstream: the outgoing queue, the RPC calls and the pacer, as one sub-machine."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from bridge.config.model import SourceConfig
from bridge.messages import decode_json
from bridge.routing.template import Template, TemplateError
from bridge.upstream.actions import Action, Answer, Notice, Send, error_body
from bridge.upstream.calls import Calls
from bridge.upstream.outgoing import Outgoing, OutgoingQueue
from bridge.upstream.ratelimit import Pacer, SendWindow

# Renders a template with this connection's {seq} and the given {mqtt.*}; raises TemplateError.
Render = Callable[[Template, float, Any], str]


class Outbound:
    """What waits to go upstream and what waits for a reply. Messages are rendered when their
    turn comes (``flush``, once CONNECTED and while the pacer lets them go); every send of the
    source, the session's own included, passes the pacer (``rate_limit``)."""

    def __init__(self, cfg: SourceConfig, dropped: Counter[str]) -> None:
        self._rpc = cfg.rpc
        self.calls = Calls(cfg.rpc) if cfg.rpc is not None else None
        self.queue = OutgoingQueue(cfg.outbox.max_messages, cfg.outbox.max_age)
        self.queue.dropped = dropped  # expired, overflow, render_error
        limit = cfg.rate_limit
        self.pacer = Pacer(SendWindow(limit.messages, limit.per) if limit else None)

    def call(self, mqtt: Any, to: Any, now: float, source: str) -> list[Action]:
        """Queue an RPC request; without ``rpc`` configured it is answered at once."""
        if self._rpc is None or self.calls is None:
            return [Answer(to, error_body(f"source {source} has no rpc configured"))]
        return self.put(Outgoing(self._rpc.send, mqtt, now, self.calls.open(to, now)))

    def put(self, item: Outgoing) -> list[Action]:
        """Queue ``item``; when full, the oldest goes (a call among them is answered)."""
        if (old := self.queue.put(item)) is None:
            return []
        return [*self._answer(old.call, "dropped: too many requests waiting"),
                *self.queue.overflow_notice()]

    def flush(self, now: float, render: Render, connected: bool) -> list[Action]:
        """Send what waits, in order, dropping what got too old, while the pacer lets it go;
        nothing before the session is ``connected`` (auth and subscribe done)."""
        out, expired = list[Action](), 0
        if not connected or not self.queue:
            return out
        while not self.pacer.busy:
            item, old = self.queue.take(now)
            expired += len(old)
            for o in old:
                out += self._answer(o.call, "expired waiting for the upstream")
            if item is None:
                break
            out += self.pacer.pace(self._render(item, now, render), now)
        if expired:
            out.append(Notice(f"dropped {expired} outgoing messages older than "
                              f"{self.queue.max_age:g}s"))
        return out

    @property
    def next(self) -> float:
        """The earliest deadline: a call's timeout, or a held send's turn."""
        return min(self.calls.next if self.calls is not None else math.inf, self.pacer.next)

    def tick(self, now: float) -> list[Action]:
        """Calls that timed out are answered; held sends whose turn came are released."""
        out: list[Action] = []
        if self.calls is not None and now >= self.calls.next:
            out += self.calls.expire(now)
        return out + self.pacer.release(now) if now >= self.pacer.next else out

    def _render(self, item: Outgoing, now: float, render: Render) -> list[Action]:
        calls = self.calls
        if item.call is not None and (calls is None or not calls.is_open(item.call)):
            return []  # timed out while waiting: its error response is already out
        try:
            data = render(item.send, now, item.mqtt)
        except TemplateError as exc:
            self.queue.dropped["render_error"] += 1
            return self._answer(item.call, f"cannot render the request: {exc}")
        if item.call is not None and calls is not None and \
                (answers := calls.sent(decode_json(data), item.call)):
            return list(answers)
        return [Send(data, item)]

    def _answer(self, call: int | None, reason: str) -> list[Action]:
        if call is None or self.calls is None:
            return []
        return list(self.calls.answer(call, error_body(reason)))
