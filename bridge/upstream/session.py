"""The per-connection session protocol as a sans-I/O state machine: events in, actions out."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from bridge.config.model import SourceConfig
from bridge.errors import AuthRejected, SessionTimeout, SourceError
from bridge.messages import INVALID, Message
from bridge.routing.pattern import Pattern
from bridge.routing.template import Context, Template, TemplateError
from bridge.upstream.actions import Action, Close, Deliver, Fail, Send, SetState
from bridge.upstream.state import ConnState

__all__ = ["Action", "Close", "Deliver", "Fail", "Send", "Session", "SetState"]


@dataclass(frozen=True, slots=True)
class _Wait:  # a point in the plan where the session waits for a message matching ``expect``
    expect: Pattern
    reject: Pattern | None
    stage: str  # "auth" or "subscribe": names the timeout and the rejection
    timeout: float


def _wait(expect: Pattern | None, reject: Pattern | None, stage: str, after: float) -> _Wait | None:
    return None if expect is None else _Wait(expect, reject, stage, after)


_Item = ConnState | Template | _Wait
_Clock = Callable[[], float] | None
_DELIVERING = (ConnState.SUBSCRIBING, ConnState.CONNECTED)


class Session:
    """One connection's session: auth and subscribe (compiled into one plan of states, sends and
    waits), heartbeat, replies, idle timeout, unsubscribe. Times passed in are monotonic seconds;
    ``wall`` (if given) supplies ``{now_ms}`` values."""

    def __init__(self, cfg: SourceConfig, *, hostname: str = "", wall: _Clock = None) -> None:
        self.cfg, self.hostname, self._wall = cfg, hostname, wall
        self.state, self._live, self.last_rx = ConnState.CONNECTING, False, 0.0
        # CONNECTED with nothing to match: the driver may deliver frames without ``receive``,
        # setting ``last_rx`` itself, so a frame that no route inspects is never parsed.
        self.passthrough, self._idle_at, beat = False, math.inf, cfg.heartbeat
        self._plain = not cfg.replies and cfg.on_invalid == "forward" and not (beat and beat.expect)
        self.invalid = 0  # text frames that were not valid JSON
        self._plan: list[_Item] = []
        self._seq: Iterator[int] = itertools.count(1)  # {seq}: restarts on every connection
        self._wait: _Wait | None = None  # the plan's current wait
        self._wait_until = self._next_beat = math.inf  # math.inf: no deadline
        self._pong_until = math.inf  # of the oldest unanswered heartbeat

    def start(self, now: float) -> list[Action]:
        """The socket is open: run the plan until its first wait."""
        self._seq, self.last_rx, self._live = itertools.count(1), now, True
        self._idle_at = now + self.cfg.idle_timeout if self.cfg.idle_timeout > 0 else math.inf
        self._plan = self._compile()
        return self._guard(self._advance, now, INVALID)

    def receive(self, msg: Message, now: float) -> list[Action]:
        if not self._live:
            return []
        self.last_rx = now
        value = msg.json
        bad = value is INVALID and not msg.is_binary
        self.invalid += bad
        consumed, out = self._consume(value, now)
        if not self._live:
            return out
        for reply in (r for r in self.cfg.replies if r.when.matches(value)):
            with suppress(TemplateError):  # a field the reply needs is missing: no reply
                out.append(self._render(reply.send, now, value, msg.data))
        drop = consumed or (bad and self.cfg.on_invalid == "drop")
        if self.state in _DELIVERING and not drop:
            out.append(Deliver(msg))
        return out

    def tick(self, now: float) -> list[Action]:
        """Act on every deadline that has passed; afterwards ``deadline()`` is in the future."""
        if not self._live:
            return []
        if now >= self._idle_at:  # lazily moved: receiving a message only notes last_rx
            self._idle_at = self.last_rx + self.cfg.idle_timeout
        for stage, limit in self._limits():
            if now >= limit:
                return self._fail(SessionTimeout(self.cfg.name, stage))
        beat = self.cfg.heartbeat
        if beat is None or now < self._next_beat:
            return []
        self._next_beat = now + beat.interval
        if beat.expect is not None and self._pong_until == math.inf:
            self._pong_until = now + beat.timeout
        return self._guard(lambda: [self._render(beat.send, now)])

    def deadline(self) -> float | None:
        """The next time ``tick`` must be called, or None; idle is lazy, so it may come early."""
        when = min(self._next_beat, self._wait_until, self._pong_until, self._idle_at)
        return when if self._live and when < math.inf else None

    def stop(self, now: float) -> list[Action]:
        """Clean shutdown: the unsubscribe messages (if subscribing began), then Close."""
        out: list[Action] = []
        for step in self.cfg.unsubscribe if self._live and self.state in _DELIVERING else ():
            with suppress(TemplateError):
                out.append(self._render(step.send, now))
        self._live = self.passthrough = False
        return [*out, Close()]

    def resubscribe(self, cfg: SourceConfig, now: float) -> list[Action]:
        """A reload changed only the subscriptions: unsubscribe the old, subscribe the new."""
        old = self.stop(now)[:-1] if self.state is ConnState.CONNECTED else []
        if not self._live and not old:
            self.cfg = cfg
            return []
        self.cfg, self._live, self._wait = cfg, True, None
        self._plan = [item for item in self._compile() if not isinstance(item, ConnState)]
        self._plan = [ConnState.SUBSCRIBING, *self._plan[self._auth_items():], ConnState.CONNECTED]
        return [*old, *self._guard(self._advance, now, INVALID)]

    def _auth_items(self) -> int:
        auth = self.cfg.auth
        if auth is None:
            return 0
        return sum(x is not None for x in (auth.await_, auth.send, auth.expect))

    def _limits(self) -> list[tuple[str, float]]:
        stage = self._wait.stage if self._wait else ""
        return [(stage, self._wait_until), ("heartbeat", self._pong_until), ("idle", self._idle_at)]

    def _compile(self) -> list[_Item]:
        auth, steps = self.cfg.auth, self.cfg.subscribe
        plan: list[_Item | None] = []
        if auth is not None:
            reject, after = auth.reject, auth.timeout
            plan += [ConnState.AUTHENTICATING, _wait(auth.await_, reject, "auth", after), auth.send]
            plan.append(_wait(auth.expect, reject, "auth", after))
        plan += [ConnState.SUBSCRIBING] if steps else []
        for step in steps:
            plan += [step.send, _wait(step.expect, step.reject, "subscribe", step.timeout)]
        return [item for item in [*plan, ConnState.CONNECTED] if item is not None]

    def _advance(self, now: float, previous: Any) -> list[Action]:
        """Run the plan up to its next wait; ``previous`` is the message that ended the last one."""
        out: list[Action] = []
        self._wait, self._wait_until = None, math.inf
        while self._plan and self._wait is None:
            item = self._plan.pop(0)
            if isinstance(item, _Wait):
                self._wait, self._wait_until = item, now + item.timeout
            elif isinstance(item, Template):
                out.append(self._render(item, now, previous))
            else:
                self.state = item
                self.passthrough = item is ConnState.CONNECTED and self._plain
                out.append(SetState(item))
                if item is ConnState.CONNECTED and self.cfg.heartbeat is not None:
                    self._next_beat = now + self.cfg.heartbeat.interval
        return out

    def _consume(self, value: Any, now: float) -> tuple[bool, list[Action]]:
        # True when the message was the session's own: an awaited reply or a heartbeat pong.
        wait = self._wait
        if wait is not None and wait.reject is not None and wait.reject.matches(value):
            kind = AuthRejected if wait.stage == "auth" else SourceError
            return True, self._fail(kind(self.cfg.name, f"{wait.stage} rejected by the server"))
        if wait is not None and wait.expect.matches(value):
            return True, self._guard(self._advance, now, value)
        beat = self.cfg.heartbeat
        pong = beat.expect if beat and self.state is ConnState.CONNECTED else None
        if pong is not None and pong.matches(value):
            self._pong_until = math.inf
            return True, []
        return False, []

    def _guard(self, make: Callable[..., list[Action]], *args: Any) -> list[Action]:
        try:
            return make(*args)
        except TemplateError as exc:
            return self._fail(SourceError(self.cfg.name, f"cannot render a message to send: {exc}"))

    def _render(self, template: Template, now: float, msg: Any = INVALID, raw: Any = "") -> Send:
        wall = self._wall() if self._wall else now
        ctx = Context(self.cfg.name, msg, raw, wall, self._seq.__next__, self.hostname)
        value = template.render(ctx)
        return Send(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))

    def _fail(self, error: SourceError) -> list[Action]:
        self._live = self.passthrough = False
        return [Fail(error)]
