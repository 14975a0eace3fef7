"""The session engine's MQTT-to-upstream rules, its state table, the reconnect iterator and
backoff: plain unit tests with injected clocks and random sources, no sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge.config.model import SourceConfig, Step
from bridge.config.outbound import OutboxSpec, RateLimitSpec, RpcSpec
from bridge.errors import ConnectionLost, SourceError
from bridge.messages import Message
from bridge.routing.context import mqtt_value
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.actions import (
    Action,
    Answer,
    Close,
    Deliver,
    Fail,
    Notice,
    Send,
    SetState,
    Unread,
)
from bridge.upstream.attempt import Dial
from bridge.upstream.backoff import BackoffPolicy, backoff
from bridge.upstream.reconnect import Reconnect
from bridge.upstream.session import Session
from bridge.upstream.state import TRANSITIONS, ConnState, Event, transition

RPC = RpcSpec(None, Template({"type": "rpc", "id": "{seq}", "data": "{mqtt.payload}"}),
              match=Pattern({"type": "rpc_result"}), error=Pattern({"type": "rpc_error"}),
              timeout=2.0)
SEND = Template({"op": "set", "value": "{mqtt.payload}"})
LOST = ConnectionLost("src", 1006, "no close frame")


def source(**kw: Any) -> SourceConfig:
    return SourceConfig(name="src", url="ws://127.0.0.1:1/", **kw)


def frame(value: Any) -> Message:
    return Message("src", json.dumps(value), 0.0)


def sent(actions: list[Action]) -> list[Any]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def answers(actions: list[Action]) -> list[tuple[Any, Any]]:
    return [(a.to, json.loads(a.payload)) for a in actions if isinstance(a, Answer)]


def mqtt(payload: Any) -> Any:
    return mqtt_value("a/b", json.dumps(payload))


# --- RPC ---------------------------------------------------------------------------------------


def test_an_rpc_is_sent_once_connected_and_its_reply_is_the_answer_not_data() -> None:
    s = Session(source(rpc=RPC))
    assert s.call(mqtt({"m": 1}), "caller", 0.0) == []  # not connected: it waits
    out = s.start(1.0)
    assert sent(out) == [{"type": "rpc", "id": 1, "data": {"m": 1}}]
    assert s.screen(frame({"type": "ack", "id": 1}), 1.1) is None  # shares the id: data
    reply = frame({"type": "rpc_result", "id": 1, "ok": True})
    assert s.screen(reply, 1.2) == [Answer("caller", reply.data), Unread(on=True)]
    assert s.receive(reply, 1.3) == [Deliver(reply)]  # answered once: a repeat is only data


def test_an_rpc_times_out_on_the_sessions_clock_even_while_disconnected() -> None:
    s = Session(source(rpc=RPC))
    s.call(mqtt(1), "caller", 10.0)
    assert s.deadline() == 12.0
    assert s.tick(11.9) == []
    assert answers(s.tick(12.0)) == [("caller", {"error": "no reply within 2s"})]
    assert s.deadline() is None
    s.start(13.0)
    assert sent(s.tick(13.0)) == []  # the timed-out request is not sent late


def test_an_rpc_error_reply_and_a_lost_connection_each_answer_with_an_error() -> None:
    s = Session(source(rpc=RPC))
    s.start(0.0)
    s.call(mqtt(1), "a", 0.0)
    s.call(mqtt(2), "b", 0.0)
    out = s.screen(frame({"type": "rpc_error", "id": 1, "why": "no"}), 0.5)
    assert out is not None
    assert answers(out) == [("a", {"error": "upstream error",
                                   "reply": {"type": "rpc_error", "id": 1, "why": "no"}})]
    out = s.lost(LOST, "network", retry=True)
    assert answers(out) == [("b", {"error": "upstream disconnected before replying"})]
    assert out[-1] == SetState(ConnState.RECONNECTING)


def test_an_rpc_without_rpc_configured_or_an_id_is_answered_at_once() -> None:
    assert answers(Session(source()).call(mqtt(1), "c", 0.0)) == [
        ("c", {"error": "source src has no rpc configured"})]
    no_id = RpcSpec(None, Template({"type": "rpc"}), timeout=2.0)
    s = Session(source(rpc=no_id))
    s.start(0.0)
    assert answers(s.call(mqtt(1), "c", 0.0)) == [
        ("c", {"error": "the request has no 'id' to match"})]


def test_stopping_answers_every_open_call_and_giving_up_fails_them() -> None:
    s = Session(source(rpc=RPC))
    s.call(mqtt(1), "queued", 0.0)
    s.lost(LOST, "network", retry=False)  # max_attempts spent
    assert s.state is ConnState.FAILED
    s2 = Session(source(rpc=RPC))
    s2.call(mqtt(1), "queued", 0.0)
    out = s2.stopped()
    assert answers(out) == [("queued", {"error": "the bridge stopped"})]
    assert out[-1] == SetState(ConnState.STOPPED)


# --- the outgoing queue ------------------------------------------------------------------------


def test_publishes_wait_while_down_and_go_in_order_after_the_plan() -> None:
    sub = Step(Template({"op": "sub"}), expect=Pattern({"op": "subbed"}))
    s = Session(source(subscribe=(sub,)))
    for n in range(3):
        assert s.publish(SEND, mqtt(n), 0.0) == []
    assert sent(s.start(1.0)) == [{"op": "sub"}]  # auth and subscribe first
    out = s.screen(frame({"op": "subbed"}), 1.1)
    assert out is not None
    assert sent(out) == [{"op": "set", "value": n} for n in range(3)]
    assert sent(s.publish(SEND, mqtt(9), 1.2)) == [{"op": "set", "value": 9}]


def test_old_and_overflowing_publishes_are_dropped_counted_and_logged_once() -> None:
    s = Session(source(outbox=OutboxSpec(max_messages=2, max_age=5.0)))
    s.publish(SEND, mqtt("old"), 0.0)
    notes = [a for n in range(3) for a in s.publish(SEND, mqtt(n), 4.0) if isinstance(a, Notice)]
    assert notes == [Notice("outgoing queue full (2), dropping the oldest")]
    assert s.stats.outgoing == {"overflow": 2}
    out = s.start(9.5)  # "0" was dropped for room; "1" is 5.5 s old, "2" too: both expire
    assert sent(out) == []
    assert Notice("dropped 2 outgoing messages older than 5s") in out
    assert s.stats.outgoing == {"overflow": 2, "expired": 2}


def test_a_publish_the_socket_refused_goes_first_on_the_next_connection() -> None:
    s = Session(source())
    s.start(0.0)
    (first,) = s.publish(SEND, mqtt(1), 0.0)
    assert isinstance(first, Send)
    s.publish(SEND, mqtt(2), 0.0)
    s.unsent(first)  # the driver could not send it: the connection dropped
    s.lost(LOST, "network", retry=True)
    s.connecting()
    assert sent(s.start(1.0)) == [{"op": "set", "value": 1}]


# --- the rate limit ----------------------------------------------------------------------------


def test_sends_past_the_burst_are_held_and_released_by_tick_at_their_deadlines() -> None:
    s = Session(source(rate_limit=RateLimitSpec(messages=2, per=1.0)))  # 2 in any 1.05 s
    s.start(0.0)
    out = [a for n in range(5) for a in s.publish(SEND, mqtt(n), 0.0)]
    assert sent(out) == [{"op": "set", "value": 0}, {"op": "set", "value": 1}]
    assert s.deadline() == 1.05  # the window's wait, as a deadline: nothing sleeps
    assert s.tick(1.04) == []
    assert sent(s.tick(1.05)) == [{"op": "set", "value": 2}, {"op": "set", "value": 3}]
    assert s.deadline() == pytest.approx(2.1)
    assert sent(s.tick(2.1)) == [{"op": "set", "value": 4}]
    assert s.deadline() is None
    out = [a for n in range(5, 8) for a in s.publish(SEND, mqtt(n), 10.0)]  # past: a burst
    assert sent(out) == [{"op": "set", "value": 5}, {"op": "set", "value": 6}]
    assert sent(s.tick(12.0)) == [{"op": "set", "value": 7}]  # a late tick sends what is due


def test_the_sessions_own_sends_pass_the_rate_limit_too_and_close_waits_for_them() -> None:
    subs = tuple(Step(Template({"op": "sub", "n": n})) for n in range(3))
    unsub = (Step(Template({"op": "unsub"})),)
    s = Session(source(subscribe=subs, unsubscribe=unsub,
                       rate_limit=RateLimitSpec(messages=1, per=1.0)))
    out = s.start(0.0)
    assert sent(out) == [{"op": "sub", "n": 0}]
    assert SetState(ConnState.CONNECTED) in out
    assert s.tick(1.0) == []  # one in any 1.05 s
    assert sent(s.tick(1.05)) == [{"op": "sub", "n": 1}]
    assert sent(s.tick(2.1)) == [{"op": "sub", "n": 2}]
    out = s.stop(2.1)
    assert out == []  # the unsubscribe waits for its place in the window, and Close for it
    assert s.tick(3.2) == [Send('{"op":"unsub"}'), Close()]


# --- the driver's fast path --------------------------------------------------------------------


def test_the_fast_path_is_announced_and_frames_delivered_unread_still_count_for_idle() -> None:
    s = Session(source(rpc=RPC, idle_timeout=10.0))
    assert Unread(on=True) in s.start(0.0)  # nothing to match: frames may skip screen()
    assert Unread(on=False) in s.call(mqtt(1), "c", 1.0)  # now its reply must be seen
    out = s.screen(frame({"type": "rpc_result", "id": 1}), 2.0)
    assert out is not None and Unread(on=True) in out  # answered: nothing to match again
    assert s.tick(10.0, heard=8.0) == []  # a frame delivered unread at 8: not idle
    (fail,) = s.tick(18.0, heard=8.0)
    assert isinstance(fail, Fail) and "idle" in str(fail.error)


# --- states: the table is the only way ---------------------------------------------------------


def test_every_state_change_goes_through_the_table() -> None:
    s = Session(source())
    assert s.connecting() == [SetState(ConnState.CONNECTING), Dial("ws://127.0.0.1:1/", {})]
    assert s.start(0.0) == [SetState(ConnState.CONNECTED), Unread(on=True)]
    assert s.lost(LOST, "network", retry=True) == [SetState(ConnState.RECONNECTING)]
    assert s.stopped() == [SetState(ConnState.STOPPED)]
    with pytest.raises(RuntimeError, match="no transition from stopped on connecting"):
        s.connecting()
    assert transition(ConnState.CONNECTED, Event.SUBSCRIBE) is ConnState.SUBSCRIBING
    assert TRANSITIONS[ConnState.FAILED] == {}  # giving up is final


def test_the_connect_and_reconnect_counters_follow_the_states() -> None:
    s = Session(source())
    s.start(0.0)
    s.lost(LOST, "network", retry=True)
    s.connecting()
    s.lost(LOST, "network", retry=True)
    assert (s.stats.connects, dict(s.stats.reconnects)) == (1, {"network": 2})
    assert s.stats.last_error == str(LOST)


# --- backoff, with an injected random source ---------------------------------------------------


def test_backoff_grows_to_its_cap_without_jitter() -> None:
    policy = BackoffPolicy(initial_delay=1.0, max_delay=5.0, multiplier=2.0, jitter=0.0)
    delays = backoff(policy, rand=lambda: 0.9)
    assert [next(delays) for _ in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_jitter_spreads_each_delay_both_ways_and_never_above_the_cap() -> None:
    policy = BackoffPolicy(initial_delay=1.0, max_delay=4.0, multiplier=2.0, jitter=0.5)
    low, high = backoff(policy, rand=lambda: 0.0), backoff(policy, rand=lambda: 1.0)
    assert [next(low) for _ in range(3)] == [0.5, 1.0, 2.0]  # rand 0: -jitter
    assert [next(high) for _ in range(4)] == [1.5, 3.0, 4.0, 4.0]  # rand 1: +jitter, capped
    assert next(backoff(policy, rand=lambda: 0.5)) == 1.0  # rand 0.5: none


def test_backoff_ends_after_max_attempts() -> None:
    policy = BackoffPolicy(initial_delay=1.0, jitter=0.0, max_attempts=3)
    assert list(backoff(policy, rand=lambda: 0.5)) == [1.0, 2.0, 4.0]


# --- the reconnect iterator, with an injected clock --------------------------------------------


class Script:
    """What the iterator sees: an opener that fails or yields numbered connections, a clock the
    test moves, and the pauses it asked for."""

    def __init__(self, fail_opens: int = 0) -> None:
        self.now, self.opened, self.fail_opens = 0.0, 0, fail_opens
        self.lost: list[tuple[str, float | None]] = []
        self.paused: list[float] = []

    async def open(self) -> int:
        if self.fail_opens:
            self.fail_opens -= 1
            raise LOST
        self.opened += 1
        return self.opened

    def on_lost(self, error: SourceError, reason: str, delay: float | None) -> None:
        self.lost.append((reason, delay))

    async def pause(self, delay: float) -> None:
        self.paused.append(delay)


def reconnect(script: Script, policy: BackoffPolicy) -> Reconnect[int]:
    return Reconnect("src", policy, script.open, script.on_lost, script.pause,
                     clock=lambda: script.now, rand=lambda: 0.5)


POLICY = BackoffPolicy(initial_delay=1.0, max_delay=60.0, multiplier=2.0, jitter=0.2)


async def test_the_backoff_resets_after_a_connection_stayed_connected_reset_after() -> None:
    script = Script()
    it = reconnect(script, POLICY)
    healthy = POLICY.reset_after
    stays = [0.0, 1.0, healthy - 0.01, healthy, 0.0]
    async for conn in it:
        connected_at = script.now
        script.now += stays[conn - 1]
        it.ended(LOST, connected_at)
        if conn == len(stays):
            it.stop()
    # 1, 2, 4, 8 ...; the fourth stayed reset_after: back to 1 after it, then 2
    assert script.paused == [1.0, 2.0, 4.0, 1.0, 2.0]
    assert [reason for reason, _ in script.lost] == ["network"] * 5


async def test_a_connection_that_never_got_connected_never_resets_and_stop_ends_it() -> None:
    script = Script(fail_opens=2)
    it = reconnect(script, POLICY)
    async for conn in it:
        script.now += 60.0  # open for a minute, but never CONNECTED (auth hung, say)
        it.ended(LOST if conn == 1 else None, None)
    assert script.paused == [1.0, 2.0, 4.0]  # two failed opens, then one that never connected
    assert script.opened == 2  # the second ended cleanly (stopped): no further attempt


async def test_the_iterator_gives_up_after_max_attempts_and_says_so() -> None:
    script = Script(fail_opens=10)
    it = reconnect(script, BackoffPolicy(initial_delay=1.0, jitter=0.0, max_attempts=2))
    async for _ in it:
        pytest.fail("no connection opens")
    assert script.lost == [("network", 1.0), ("network", 2.0), ("network", None)]


async def test_a_failure_that_is_not_a_source_error_is_a_bug_and_propagates() -> None:
    async def broken() -> int:
        raise KeyError("bug")

    it = Reconnect("src", POLICY, broken, lambda *_: None, asyncio.sleep, clock=lambda: 0.0)
    with pytest.raises(KeyError):
        async for _ in it:
            pass
