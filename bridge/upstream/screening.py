"""What a frame the session reads means, past its fast paths: an RPC's reply, the server asking
for a new connection, a text frame that is not JSON, the conversation's part (plan, pong,
captures, replies), then whether it is data and which recovery check it passes."""

from __future__ import annotations

from typing import Final

from bridge.errors import SequenceGap
from bridge.messages import INVALID, Message
from bridge.upstream.actions import Action, Deliver, Fail
from bridge.upstream.invalid import InvalidFrames
from bridge.upstream.lifecycle import Lifecycle
from bridge.upstream.outbound import Outbound
from bridge.upstream.recovery import KEEP, Check
from bridge.upstream.renewal import Renewal
from bridge.upstream.state import ConnState, Event

DELIVERING: Final = (ConnState.SUBSCRIBING, ConnState.CONNECTED)
# What a read frame leads to: actions performed as they are, then the session's to emit, and
# the frame's recovery check when it is data (None: it is not; ``KEEP``: deliver it).
Read = tuple[list[Action], list[Action | Event], Check | None]


class Screening:
    """Reads one frame of the live connection for the session; it emits nothing itself."""

    __slots__ = ("_invalid", "_life", "_out", "_renew")

    def __init__(self, life: Lifecycle, out: Outbound, renew: Renewal,
                 invalid: InvalidFrames) -> None:
        self._life, self._out, self._renew, self._invalid = life, out, renew, invalid

    def read(self, msg: Message, value: object, now: float, checks_only: bool) -> Read:
        """``msg`` (its JSON ``value``) came at ``now`` on the live connection; ``checks_only``:
        data is read by dedup and sequence only (the session's fast path)."""
        if checks_only and value is not INVALID:
            return [], [], self._life.recovery.check(value, msg.data, now)
        calls, state = self._out.calls, self._life.state
        if calls is not None and calls.waiting and (answers := calls.reply(value, msg.data)):
            return [], list(answers), None  # an RPC's reply: answered, not routed
        if self._renew.asking and self._renew.asks(value):  # delivered, then renewed
            keep: list[Action] = [Deliver(msg)] if state in DELIVERING else []
            return keep, self._renew.renew("reconnect_when"), None
        bad = value is INVALID and not msg.is_binary
        out: list[Action | Event] = [*self._invalid.seen(now)] if bad else []
        own, said = self._life.talk.hear(msg, value, now, state is ConnState.CONNECTED)
        out += said
        if own or msg.control or (bad and not self._invalid.forward) or state not in DELIVERING:
            return [], out, None
        # Until subscribed, the old subscription's numbers may still arrive: no gap checks.
        recovery = self._life.recovery
        check = recovery.check(value, msg.data, now, state is ConnState.CONNECTED) \
            if recovery.active else KEEP
        return [], out, check

    def checked(self, msg: Message, check: Check, now: float) -> list[Action | Event]:
        """What a recovery ``check`` that did not ``KEEP`` ``msg`` leads to: its actions, then
        for a gap ``on_gap`` asks: a ``Fail`` (reconnect), or subscribing again."""
        out: list[Action | Event] = [*check.actions(msg)]
        if check.on_gap == "reconnect":
            return [*out, Fail(SequenceGap(self._life.talk.cfg.name, check.gap))]
        cfg = self._life.talk.cfg
        return out + (self._life.resubscribe(cfg, True, now) if check.on_gap else [])
