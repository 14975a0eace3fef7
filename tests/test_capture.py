"""Captured values ({var.NAME}) in the sans-I/O session, with fake times: what is kept, what
waits for a value, the heartbeat whose interval and payload come from the server."""

from __future__ import annotations

from typing import Any

from bridge.config.specs import AuthSpec, HeartbeatSpec
from bridge.config.stateful import CaptureSpec
from bridge.errors import SessionTimeout
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.session import Session
from bridge.upstream.state import ConnState
from tests.test_session import delivered, failure, frame, sent, source, states, step

HELLO = CaptureSpec(Pattern({"op": 10}),
                    (("heartbeat_ms", Template("{msg.d.heartbeat_interval}")),))
SEQ = CaptureSpec(Pattern({"op": 0}), (("last_seq", Template("{msg.s}")),))
DISCORD_BEAT = HeartbeatSpec(Template({"op": 1, "d": "{var.last_seq}"}), interval=0.0,
                             expect=Pattern({"op": 11}), timeout=5.0,
                             interval_from=Template("{var.heartbeat_ms}ms"))


def gateway(**kw: Any) -> Session:
    return Session(source(capture=(HELLO, SEQ), heartbeat=DISCORD_BEAT, **kw))


def test_a_captured_value_keeps_its_json_type_and_is_read_by_a_send() -> None:
    send = {"op": 2, "every": "{var.heartbeat_ms}", "as_text": "v{var.heartbeat_ms}"}
    auth = AuthSpec(await_=Pattern({"op": 10}), send=Template(send))
    s = Session(source(capture=(HELLO,), auth=auth))
    s.start(0.0)
    out = s.receive(frame({"op": 10, "d": {"heartbeat_interval": 41250}}), 0.1)
    assert sent(out) == [{"op": 2, "every": 41250, "as_text": "v41250"}]


def test_a_send_reading_an_unset_variable_waits_until_a_capture_sets_it() -> None:
    steps = (step({"op": "sub", "token": "{var.token}"}, expect={"ack": True}),)
    cap = CaptureSpec(Pattern({"type": "welcome"}), (("token", Template("{msg.token}")),))
    s = Session(source(capture=(cap,), subscribe=steps))
    out = s.start(0.0)
    assert states(out) == [ConnState.SUBSCRIBING]
    assert sent(out) == []  # held: nothing to put in "token" yet
    assert s.deadline() == 5.0  # the step's timeout
    assert sent(s.receive(frame({"type": "noise"}), 1.0)) == []
    out = s.receive(frame({"type": "welcome", "token": "t-1"}), 2.0)
    assert sent(out) == [{"op": "sub", "token": "t-1"}]
    assert states(s.receive(frame({"ack": True}), 3.0)) == [ConnState.CONNECTED]


def test_a_send_whose_variable_never_comes_times_out_at_its_step() -> None:
    steps = (step({"op": "sub", "token": "{var.token}"}),)
    s = Session(source(capture=(SEQ,), subscribe=steps))
    s.start(10.0)
    assert s.tick(14.9) == []
    err = failure(s.tick(15.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "subscribe"


def test_values_are_kept_across_reconnects_until_overwritten() -> None:
    steps = (step({"op": "resume", "seq": "{var.last_seq}"}),)
    s = Session(source(capture=(SEQ,), subscribe=steps))
    s.start(0.0)  # held: no seq yet
    out = s.receive(frame({"op": 0, "s": 7}), 1.0)
    assert sent(out) == [{"op": "resume", "seq": 7}]
    s.receive(frame({"op": 0, "s": 8}), 2.0)
    s.lost(SessionTimeout("src", "idle"), "timeout", True)
    s.connecting()
    assert sent(s.start(10.0)) == [{"op": "resume", "seq": 8}]  # known: sent at once


def test_a_capture_that_cannot_render_leaves_the_value_as_it_was() -> None:
    s = Session(source(capture=(SEQ,), subscribe=(step({"seq": "{var.last_seq}"}),)))
    s.start(0.0)
    s.receive(frame({"op": 0, "s": 3}), 1.0)
    s.receive(frame({"op": 0, "no_s": True}), 2.0)  # matches, but has no "s"
    s.lost(SessionTimeout("src", "idle"), "timeout", True)
    s.connecting()
    assert sent(s.start(3.0)) == [{"seq": 3}]


def test_heartbeat_starts_once_its_interval_is_captured_and_carries_the_last_seq() -> None:
    s = gateway()
    s.start(0.0)
    assert s.deadline() is None  # connected, but no interval yet: no heartbeat
    s.receive(frame({"op": 10, "d": {"heartbeat_interval": 2000}}), 1.0)
    assert s.deadline() == 3.0  # one interval after the hello
    data = frame({"op": 0, "s": 41, "t": "MESSAGE"})
    assert delivered(s.receive(data, 2.0)) == [data]
    assert sent(s.tick(3.0)) == [{"op": 1, "d": 41}]
    assert s.receive(frame({"op": 11}), 3.1) == []  # the ack is the session's own
    s.receive(frame({"op": 0, "s": 42}), 4.0)
    assert sent(s.tick(5.0)) == [{"op": 1, "d": 42}]
    err = failure(s.tick(10.0))  # no ack for the second one
    assert isinstance(err, SessionTimeout)
    assert err.stage == "heartbeat"


def test_a_heartbeat_due_before_its_variable_is_held_until_it_is_set() -> None:
    s = gateway()
    s.start(0.0)
    s.receive(frame({"op": 10, "d": {"heartbeat_interval": 1000}}), 0.0)
    assert sent(s.tick(1.0)) == []  # due, but no seq seen yet: held
    assert sent(s.receive(frame({"op": 0, "s": 1}), 1.5)) == [{"op": 1, "d": 1}]


def test_a_held_heartbeat_fails_once_its_timeout_passes() -> None:
    s = gateway()
    s.start(0.0)
    s.receive(frame({"op": 10, "d": {"heartbeat_interval": 1000}}), 0.0)
    s.tick(1.0)
    assert s.deadline() == 2.0  # the next beat; the held one's timeout is at 6.0
    s.receive(frame({"op": 11}), 1.1)
    s.tick(2.0)
    s.tick(3.0), s.tick(4.0), s.tick(5.0)
    err = failure(s.tick(6.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "heartbeat"


def test_an_interval_that_is_no_duration_fails_the_connection_clearly() -> None:
    s = gateway()
    s.start(0.0)
    hello = frame({"op": 10, "d": {"heartbeat_interval": "soon"}})
    err = failure(s.receive(hello, 1.0))
    assert "the heartbeat interval 'soonms' is not a duration" in str(err)
