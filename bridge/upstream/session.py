"""The per-connection session protocol as a sans-I/O state machine: events in, actions out."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from bridge.config.model import SourceConfig
from bridge.errors import AuthRejected, SequenceGap, SessionTimeout, SourceError
from bridge.messages import INVALID, Message
from bridge.routing.template import Context, Template, TemplateError
from bridge.upstream.actions import Action, Close, Deliver, Fail, Notice, Send, SetState
from bridge.upstream.liveness import NEVER, Quiet
from bridge.upstream.plan import Item, Wait, compile_plan, reads_data, step_plan, subscribe_plan
from bridge.upstream.recovery import KEEP, Check, Recovery
from bridge.upstream.state import ConnState

__all__ = ["Action", "Close", "Deliver", "Fail", "Notice", "Send", "Session", "SetState"]

_DELIVERING = (ConnState.SUBSCRIBING, ConnState.CONNECTED)


class Session:
    """One connection's session: auth and subscribe (one plan of states, sends and waits),
    heartbeat, replies, idle timeout, per-subscription liveness, dedup and sequence checks
    (``recovery`` outlives the connection), unsubscribe. Times passed in are monotonic
    seconds; ``wall`` (if given) supplies ``{now_ms}`` values."""

    def __init__(self, cfg: SourceConfig, *, hostname: str = "",
                 wall: Callable[[], float] | None = None, recovery: Recovery | None = None) -> None:
        self.cfg, self.hostname, self._wall = cfg, hostname, wall
        self.recovery = recovery or Recovery(cfg)
        self.state, self._live, self.last_rx = ConnState.CONNECTING, False, 0.0
        # CONNECTED, nothing to match: frames pass unparsed, or ``screen`` only checks recovery
        self.passthrough = self._checks_only = False
        self._idle_at, self.invalid = math.inf, 0  # invalid: text frames not JSON
        self._plan: list[Item] = []
        self._seq: Iterator[int] = itertools.count(1)  # {seq}: restarts on every connection
        self._wait: Wait | None = None  # the plan's current wait
        self._wait_until = self._next_beat = self._pong_until = math.inf  # inf: no deadline
        self._quiet = NEVER  # expect_every, armed on CONNECTED

    def start(self, now: float) -> list[Action]:
        """The socket is open: run the plan until its first wait."""
        self._seq, self.last_rx, self._live = itertools.count(1), now, True
        self._idle_at = now + self.cfg.idle_timeout if self.cfg.idle_timeout > 0 else math.inf
        self._plan = compile_plan(self.cfg)
        return self._guard(self._advance, now, INVALID)

    def receive(self, msg: Message, now: float) -> list[Action]:
        out = self.screen(msg, now)
        return [Deliver(msg)] if out is None else out

    def screen(self, msg: Message, now: float) -> list[Action] | None:
        """``receive``, but None where that is ``[Deliver(msg)]``: the driver's fast path."""
        if not self._live:
            return []
        self.last_rx, value = now, msg.json
        if self._checks_only and value is not INVALID:  # data: dedup and sequence, nothing else
            check = self.recovery.check(value, msg.data, now)
            return None if check is KEEP else self._checked(msg, check, [], now)
        self.invalid += (bad := value is INVALID and not msg.is_binary)
        self._quiet.seen(value, now)
        consumed, out = self._consume(value, now)
        if not self._live:
            return out
        for reply in self.cfg.replies:
            if reply.when.matches(value):
                with suppress(TemplateError):  # a field the reply needs is missing: no reply
                    out.append(self.render(reply.send, now, value, msg.data))
        if consumed or (bad and self.cfg.on_invalid == "drop") or self.state not in _DELIVERING:
            return out
        # Until subscribed, the old subscription's numbers may still arrive: no gap checks.
        check = self.recovery.check(value, msg.data, now, self.state is ConnState.CONNECTED) \
            if self.recovery.active else KEEP
        if check is KEEP:  # the usual data message
            return [*out, Deliver(msg)] if out else None
        return self._checked(msg, check, out, now)

    def _checked(self, msg: Message, check: Check, out: list[Action], now: float) -> list[Action]:
        out += [Notice(note) for note in check.notes]
        out += [Deliver(msg)] if check.keep else []
        if check.on_gap == "reconnect":
            return out + self._fail(SequenceGap(self.cfg.name, check.gap))
        return out + (self.resubscribe(self.cfg, now) if check.on_gap else [])

    def tick(self, now: float) -> list[Action]:
        """Act on every deadline that has passed; afterwards ``deadline()`` is in the future."""
        if not self._live:
            return []
        if now >= self._idle_at:  # lazily moved: receiving a message only notes last_rx
            self._idle_at = self.last_rx + self.cfg.idle_timeout
        waiting = self._wait.stage if self._wait else ""
        for stage, limit in ((waiting, self._wait_until), ("heartbeat", self._pong_until),
                             ("idle", self._idle_at)):
            if now >= limit:
                return self._fail(SessionTimeout(self.cfg.name, stage))
        out: list[Action] = []
        if (beat := self.cfg.heartbeat) is not None and now >= self._next_beat:
            self._next_beat = now + beat.interval
            if beat.expect is not None and self._pong_until == math.inf:
                self._pong_until = now + beat.timeout
            out = self._guard(lambda: [self.render(beat.send, now)])
        for index in self._quiet.due(now) if now >= self._quiet.next else ():
            out += self._resend(index, now) if self._live else []
        return out

    def deadline(self) -> float | None:
        """The next time ``tick`` must be called, or None; idle is lazy, so it may come early."""
        when = min(self._next_beat, self._wait_until, self._pong_until, self._idle_at,
                   self._quiet.next)
        return when if self._live and when < math.inf else None

    def stop(self, now: float) -> list[Action]:
        """Clean shutdown: the unsubscribe messages (if subscribing began), then Close."""
        out: list[Action] = []
        for step in self.cfg.unsubscribe if self._live and self.state in _DELIVERING else ():
            with suppress(TemplateError):
                out.append(self.render(step.send, now))
        self._live = self.passthrough = self._checks_only = False
        return [*out, Close()]

    def resubscribe(self, cfg: SourceConfig, now: float) -> list[Action]:
        """Subscribe again on the live socket: after a reload changed only the subscriptions
        (unsubscribe the old, subscribe the new), or after a sequence gap (the same again)."""
        if not self._live:
            self.cfg = cfg
            return []
        old = self.stop(now)[:-1] if self.state is ConnState.CONNECTED else []
        self.cfg, self._live, self._plan = cfg, True, subscribe_plan(cfg)
        return [*old, *self._guard(self._advance, now, INVALID)]

    def _resend(self, index: int, now: float) -> list[Action]:
        """``expect_every`` passed in silence: send that one subscribe step again, no reconnect."""
        step = self.cfg.subscribe[index]
        self.recovery.counts["resubscribe"] += 1
        self.recovery.reset()  # the channel may number its messages afresh
        note = Notice(f"subscribe[{index}] quiet for {step.expect_every:g}s; sending it again")
        self._plan += step_plan(step)
        return [note, *([] if self._wait else self._guard(self._advance, now, INVALID))]

    def _advance(self, now: float, previous: Any) -> list[Action]:
        """Run the plan up to its next wait; ``previous`` is the message that ended the last one."""
        out: list[Action] = []
        self._wait, self._wait_until = None, math.inf
        while self._plan and self._wait is None:
            item = self._plan.pop(0)
            if isinstance(item, Wait):
                self._wait, self._wait_until = item, now + item.timeout
            elif isinstance(item, Template):
                out.append(self.render(item, now, previous))
            else:
                self.state, connected = item, item is ConnState.CONNECTED
                quiet = connected and not reads_data(self.cfg)
                self._checks_only = quiet and self.recovery.active
                self.passthrough = quiet and not self._checks_only and \
                    self.cfg.on_invalid == "forward"
                self._quiet = Quiet(self.cfg.subscribe, now) if connected else NEVER
                self.recovery.reset()  # numbering starts afresh with every (re)subscribe
                out.append(SetState(item))
                if connected and self.cfg.heartbeat is not None:
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
        pong = self.cfg.heartbeat.expect if self.cfg.heartbeat else None
        if pong is not None and self.state is ConnState.CONNECTED and pong.matches(value):
            self._pong_until = math.inf
            return True, []
        return False, []

    def _guard(self, make: Callable[..., list[Action]], *args: Any) -> list[Action]:
        try:
            return make(*args)
        except TemplateError as exc:
            return self._fail(SourceError(self.cfg.name, f"cannot render a message to send: {exc}"))

    def render(self, template: Template, now: float, msg: Any = INVALID, raw: Any = "",
               mqtt: Any = None) -> Send:
        """A message to send with this connection's ``{seq}``; ``mqtt`` is what {mqtt.*} reads."""
        wall = self._wall() if self._wall else now
        ctx = Context(self.cfg.name, msg, raw, wall, self._seq.__next__, self.hostname, mqtt)
        value = template.render(ctx)
        return Send(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))

    def _fail(self, error: SourceError) -> list[Action]:
        self._live = self.passthrough = self._checks_only = False
        return [Fail(error)]
