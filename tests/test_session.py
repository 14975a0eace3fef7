"""The session state machine, driven with fake times: what it sends, delivers and fails on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.config.model import SourceConfig
from bridge.config.specs import AuthSpec, HeartbeatSpec, ReplySpec, Step
from bridge.errors import AuthRejected, Rejected, SessionTimeout
from bridge.messages import INVALID, Message
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.actions import (
    UNREAD,
    Action,
    Close,
    Deliver,
    Fail,
    Notice,
    Send,
    SetState,
    Unread,
)
from bridge.upstream.session import Session
from bridge.upstream.state import ConnState

HA_AUTH = AuthSpec(
    await_=Pattern({"type": "auth_required"}),
    send=Template({"type": "auth", "access_token": "secret-token"}),
    expect=Pattern({"type": "auth_ok"}),
    reject=Pattern({"type": "auth_invalid"}),
    timeout=10.0,
)


def source(**kw: Any) -> SourceConfig:
    return SourceConfig(name="src", url="ws://127.0.0.1:1/", **kw)


def frame(value: Any) -> Message:
    return Message("src", value if isinstance(value, str | bytes) else json.dumps(value), 0.0)


def sent(actions: list[Action]) -> list[Any]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def delivered(actions: list[Action]) -> list[Message]:
    return [a.msg for a in actions if isinstance(a, Deliver)]


def states(actions: list[Action]) -> list[ConnState]:
    return [a.state for a in actions if isinstance(a, SetState)]


def failure(actions: list[Action]) -> Exception:
    fails = [a.error for a in actions if isinstance(a, Fail)]
    assert len(fails) == 1, actions
    return fails[0]


def step(send: Any, expect: Any = None, reject: Any = None, timeout: float = 5.0) -> Step:
    return Step(
        Template(send),
        Pattern(expect) if expect is not None else None,
        Pattern(reject) if reject is not None else None,
        timeout,
    )


def test_without_auth_or_subscribe_the_session_is_connected_at_once() -> None:
    s = Session(source())
    # nothing to match: the driver may deliver frames without asking the session
    assert s.start(0.0) == [SetState(ConnState.CONNECTED), Unread(on=True)]
    m = frame({"x": 1})
    assert s.receive(m, 1.0) == [Deliver(m)]
    assert s.deadline() is None


def test_auth_waits_for_the_greeting_then_authenticates_and_subscribes() -> None:
    s = Session(source(auth=HA_AUTH, subscribe=(step({"id": "{seq}", "type": "sub"}),)))
    out = s.start(0.0)
    assert states(out) == [ConnState.AUTHENTICATING]
    assert sent(out) == []  # nothing is sent before the server greets
    assert s.receive(frame({"type": "noise"}), 0.5) == []
    out = s.receive(frame({"type": "auth_required"}), 1.0)
    assert sent(out) == [{"type": "auth", "access_token": "secret-token"}]
    assert delivered(out) == []
    out = s.receive(frame({"type": "auth_ok"}), 2.0)
    assert states(out) == [ConnState.SUBSCRIBING, ConnState.CONNECTED]
    assert sent(out) == [{"id": 1, "type": "sub"}]
    assert delivered(out) == []  # auth_ok is the session's own message


def test_auth_reject_fails_as_an_auth_rejection() -> None:
    s = Session(source(auth=HA_AUTH))
    s.start(0.0)
    s.receive(frame({"type": "auth_required"}), 0.1)
    err = failure(s.receive(frame({"type": "auth_invalid", "message": "bad"}), 0.2))
    assert isinstance(err, AuthRejected)
    assert "secret-token" not in str(err)
    assert s.receive(frame({"type": "auth_ok"}), 0.3) == []  # the session is over
    assert s.deadline() is None


def test_auth_timeout_fails_with_stage_auth() -> None:
    s = Session(source(auth=AuthSpec(send=Template({"t": "auth"}), expect=Pattern({"ok": True}))))
    out = s.start(100.0)
    assert sent(out) == [{"t": "auth"}]
    assert s.deadline() == 110.0
    assert s.tick(109.9) == []
    err = failure(s.tick(110.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "auth"


def test_auth_send_can_use_the_awaited_message() -> None:
    auth = AuthSpec(
        await_=Pattern({"type": "challenge"}),
        send=Template({"type": "auth", "nonce": "{msg.nonce}"}),
    )
    s = Session(source(auth=auth))
    s.start(0.0)
    out = s.receive(frame({"type": "challenge", "nonce": "n-1"}), 0.1)
    assert sent(out) == [{"type": "auth", "nonce": "n-1"}]
    assert states(out) == [ConnState.CONNECTED]


def test_subscribe_steps_wait_for_their_acks_in_order() -> None:
    steps = (
        step({"id": "{seq}", "op": "a"}, expect={"ack": "a"}),
        step({"id": "{seq}", "op": "b", "after": "{msg.sub}"}, expect={"ack": "b"}),
        step({"id": "{seq}", "op": "c"}),
    )
    s = Session(source(subscribe=steps))
    out = s.start(0.0)
    assert states(out) == [ConnState.SUBSCRIBING]
    assert sent(out) == [{"id": 1, "op": "a"}]
    early = frame({"ack": "b"})
    assert s.receive(early, 0.5) == [Deliver(early)]  # not the ack the session waits for
    out = s.receive(frame({"ack": "a", "sub": 7}), 1.0)
    assert sent(out) == [{"id": 2, "op": "b", "after": 7}]
    assert states(out) == []
    out = s.receive(frame({"ack": "b"}), 2.0)
    assert sent(out) == [{"id": 3, "op": "c"}]
    assert states(out) == [ConnState.CONNECTED]


def test_data_during_subscribe_is_delivered_but_not_during_auth() -> None:
    s = Session(source(auth=HA_AUTH, subscribe=(step({"op": "sub"}, expect={"ack": 1}),)))
    s.start(0.0)
    s.receive(frame({"type": "auth_required"}), 0.0)
    assert delivered(s.receive(frame({"type": "event"}), 0.0)) == []
    s.receive(frame({"type": "auth_ok"}), 0.0)
    data = frame({"type": "event"})
    assert s.receive(data, 0.1) == [Deliver(data)]
    assert delivered(s.receive(frame({"ack": 1}), 0.2)) == []


def test_subscribe_ack_timeout_and_reject() -> None:
    s = Session(source(subscribe=(step({"op": "sub"}, expect={"ok": True}, timeout=3.0),)))
    s.start(10.0)
    assert s.deadline() == 13.0
    err = failure(s.tick(13.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "subscribe"

    s = Session(source(subscribe=(step({"op": "sub"}, expect={"ok": True}, reject={"ok": False}),)))
    s.start(0.0)
    err = failure(s.receive(frame({"ok": False}), 1.0))
    assert type(err) is Rejected  # refused by the server, with its reason
    assert str(err) == """source 'src': subscribe rejected by the server: {"ok": false}"""


def test_seq_is_strictly_increasing_across_every_kind_of_message() -> None:
    cfg = source(
        auth=AuthSpec(send=Template({"id": "{seq}", "t": "auth"}), expect=Pattern({"t": "ok"})),
        subscribe=(step({"id": "{seq}", "t": "sub"}), step({"id": "{seq}", "t": "sub2"})),
        heartbeat=HeartbeatSpec(send=Template({"id": "{seq}", "t": "ping"}), interval=5.0),
        replies=(ReplySpec(Pattern({"t": "q"}), Template({"id": "{seq}", "t": "answer"})),),
        unsubscribe=(step({"id": "{seq}", "t": "unsub"}),),
    )
    s = Session(cfg)
    ids = sent(s.start(0.0))
    ids += sent(s.receive(frame({"t": "ok"}), 1.0))
    ids += sent(s.tick(6.0))
    ids += sent(s.receive(frame({"t": "q"}), 7.0))
    ids += sent(s.tick(11.0))
    ids += sent(s.stop(12.0))
    assert [m["t"] for m in ids] == ["auth", "sub", "sub2", "ping", "answer", "ping", "unsub"]
    assert [m["id"] for m in ids] == [1, 2, 3, 4, 5, 6, 7]
    again = Session(cfg)  # every connection counts from 1 again
    assert sent(again.start(20.0)) == [{"id": 1, "t": "auth"}]


def test_heartbeat_is_sent_every_interval_and_a_missing_pong_fails() -> None:
    ping, pong = Template({"type": "ping"}), Pattern({"type": "pong"})
    beat = HeartbeatSpec(ping, interval=30.0, expect=pong, timeout=10.0)
    s = Session(source(heartbeat=beat))
    s.start(0.0)
    assert s.deadline() == 30.0
    assert s.tick(29.0) == []
    assert sent(s.tick(30.0)) == [{"type": "ping"}]
    assert s.deadline() == 40.0
    assert s.receive(frame({"type": "pong"}), 31.0) == []  # the pong is not delivered
    assert s.deadline() == 60.0
    assert sent(s.tick(60.0)) == [{"type": "ping"}]
    err = failure(s.tick(70.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "heartbeat"


def test_heartbeat_without_expect_never_fails() -> None:
    s = Session(source(heartbeat=HeartbeatSpec(Template("ping"), interval=1.0)))
    s.start(0.0)
    for t in range(1, 6):
        assert [a for a in s.tick(float(t)) if isinstance(a, Send)] == [Send("ping")]


def test_idle_timeout_counts_from_the_last_message() -> None:
    s = Session(source(idle_timeout=5.0))
    s.start(0.0)
    assert s.deadline() == 5.0
    s.receive(frame({"x": 1}), 3.0)
    # Idle is tracked lazily: the wake-up at 5.0 finds a recent message and moves on to 8.0.
    assert s.tick(5.0) == []
    assert s.deadline() == 8.0
    assert s.tick(7.9) == []
    err = failure(s.tick(8.0))
    assert isinstance(err, SessionTimeout)
    assert err.stage == "idle"


def test_replies_answer_matching_messages_which_are_still_delivered() -> None:
    reply = ReplySpec(
        when=Pattern({"method": "heartbeat", "params": {"type": "test_request"}}),
        send=Template({"jsonrpc": "2.0", "id": "{seq}", "method": "public/test"}),
    )
    s = Session(source(replies=(reply,)))
    s.start(0.0)
    m = frame({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
    out = s.receive(m, 1.0)
    assert sent(out) == [{"jsonrpc": "2.0", "id": 1, "method": "public/test"}]
    assert delivered(out) == [m]
    other = frame({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}})
    assert s.receive(other, 2.0) == [Deliver(other)]


def test_a_reply_whose_field_is_missing_is_skipped() -> None:
    reply = ReplySpec(Pattern({"q": True}), Template({"echo": "{msg.missing}"}))
    s = Session(source(replies=(reply,)))
    s.start(0.0)
    m = frame({"q": True})
    assert s.receive(m, 1.0) == [Deliver(m)]


@pytest.mark.parametrize(("on_invalid", "kept"), [("forward", True), ("drop", False)])
def test_invalid_json_is_counted_and_forwarded_or_dropped(on_invalid: Any, kept: bool) -> None:
    s = Session(source(on_invalid=on_invalid))
    s.start(0.0)
    bad = frame("{not json")
    out = s.screen(bad, 1.0)
    if out is UNREAD:  # forward with nothing to match: the session passed it on unread,
        assert bad.json is INVALID  # a route parsed it, and the driver says what it found
        out = [Deliver(bad), *s.unread_invalid(1.0)]
    assert out is not None
    assert delivered(out) == ([bad] if kept else [])
    action = "forwarding it raw" if kept else "dropping it"
    assert [a.text for a in out if isinstance(a, Notice)] == [
        f"received a text frame that is not valid JSON, {action} "
        "(further ones are counted and summarised every 60s)"]
    assert s.stats.invalid == 1
    binary = frame(b"\x00\x01")
    assert s.receive(binary, 2.0) == [Deliver(binary)]  # binary frames are not invalid JSON
    assert s.stats.invalid == 1


def test_stop_sends_unsubscribes_then_close() -> None:
    s = Session(source(subscribe=(step({"op": "sub", "id": "{seq}"}),),
                       unsubscribe=(step({"op": "unsub", "id": "{seq}"}),)))
    s.start(0.0)
    out = s.stop(1.0)
    assert out == [Send('{"op":"unsub","id":2}'), Close()]
    assert s.deadline() is None


def test_stop_before_auth_finished_only_closes() -> None:
    s = Session(source(auth=HA_AUTH, unsubscribe=(step({"op": "unsub"}),)))
    s.start(0.0)
    assert s.stop(1.0) == [Close()]


def test_a_template_that_cannot_render_fails_the_connection() -> None:
    s = Session(source(subscribe=(step({"op": "sub", "x": "{msg.field}"}),)))
    err = failure(s.start(0.0))
    assert "cannot render" in str(err)


def test_string_templates_are_sent_as_is_and_now_uses_the_wall_clock() -> None:
    s = Session(source(subscribe=(step("hello {now_s}"),)), wall=lambda: 1234.5)
    out = s.start(0.0)
    assert out[1] == Send("hello 1234")


def test_resubscribe_sends_the_new_subscriptions_even_without_unsubscribe_steps() -> None:
    s = Session(source(subscribe=(step({"op": "sub", "ch": "a"}),)))
    s.start(0.0)
    new = source(subscribe=(step({"op": "sub", "ch": "b"}),))
    out = s.resubscribe(new, 1.0)
    assert sent(out) == [{"op": "sub", "ch": "b"}]
    assert states(out) == [ConnState.SUBSCRIBING, ConnState.CONNECTED]
    assert s.screen(frame({"x": 1}), 2.0) is UNREAD  # still nothing to match: not parsed


def test_resubscribe_before_the_connection_is_up_only_keeps_the_config() -> None:
    s = Session(source(subscribe=(step({"op": "sub"}),)))
    new = source(subscribe=(step({"op": "sub", "ch": "b"}),))
    assert s.resubscribe(new, 1.0) == []
    assert sent(s.start(2.0)) == [{"op": "sub", "ch": "b"}]
