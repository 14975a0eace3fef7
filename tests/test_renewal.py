"""Renewing a live connection in the sans-I/O session, with fake times: reconnect_when,
max_connection_age, and rollover: a successor run beside the live connection that takes over."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bridge.config.outbound import RateLimitSpec
from bridge.config.recovery_specs import DedupSpec, SequenceSpec
from bridge.config.stateful import RenewSpec
from bridge.errors import SessionTimeout
from bridge.errors_renewal import Renewed
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.stats.source import reason_of
from bridge.upstream.actions import Action, Notice
from bridge.upstream.handoff import Handover, Rollover
from bridge.upstream.session import Session
from bridge.upstream.state import ConnState
from bridge.upstream.successor import Successor
from tests.test_session import delivered, failure, frame, sent, source, states, step

EXPIRED = Pattern({"e": "listenKeyExpired"})
SUB = (step({"op": "sub", "id": "{seq}"}, expect={"ack": True}),)


def session(**renew: Any) -> Session:
    return Session(source(renew=RenewSpec(**renew), subscribe=SUB,
                          dedup=DedupSpec(Template("{msg.n}"))))


def connected(s: Session, now: float = 0.0) -> None:
    s.start(now)
    assert states(s.receive(frame({"ack": True}), now)) == [ConnState.CONNECTED]


def leg_of(out: list[Action]) -> Successor:
    legs = [a.leg for a in out if isinstance(a, Rollover)]
    assert len(legs) == 1, out
    return legs[0]


def test_reconnect_when_delivers_the_message_then_renews_the_connection() -> None:
    s = session(reconnect_when=(EXPIRED,))
    connected(s)
    msg = frame({"e": "listenKeyExpired"})
    out = s.receive(msg, 1.0)
    assert delivered(out) == [msg]
    err = failure(out)
    assert isinstance(err, Renewed) and err.why == "reconnect_when"
    assert reason_of(err) == "renewed"


def test_max_connection_age_renews_the_connection_at_its_age() -> None:
    s = session(max_age=60.0)
    connected(s, 100.0)
    assert s.deadline() == 160.0
    assert s.tick(159.0) == []
    err = failure(s.tick(160.0))
    assert isinstance(err, Renewed) and err.why == "max_connection_age"


def test_rollover_runs_the_whole_session_on_a_successor_before_the_old_one_goes() -> None:
    s = session(max_age=60.0, rollover="overlap")
    connected(s)
    leg = leg_of(s.tick(60.0))
    assert s.state is ConnState.CONNECTED  # the old connection still delivers
    assert s.deadline() is None  # no second rollover of the same connection
    assert sent(leg.start(61.0)) == [{"op": "sub", "id": 1}]  # its own {seq}
    # both connections deliver during the overlap; dedup removes what both carry
    one, two, three = frame({"n": 1}), frame({"n": 2}), frame({"n": 3})
    assert delivered(s.receive(one, 61.1)) == [one]
    assert delivered(leg.screen(one, 61.2)) == []  # not subscribed yet: not delivered
    out = leg.screen(frame({"ack": True}), 61.3)
    assert [a for a in out if isinstance(a, Handover)] == [Handover()]
    assert delivered(s.receive(two, 61.4)) == [two]
    out = leg.handover(61.5)
    assert states(out) == [ConnState.CONNECTED]  # through ROLLOVER, by the table
    notes = [a.text for a in out if isinstance(a, Notice)]
    assert notes == ["rolled over to a new connection (max_connection_age); closing the old one"]
    assert s.stats.rollovers == 1
    # the successor is the live connection now: its frames go through the session
    assert delivered(s.receive(two, 61.6)) == []  # a repeat, removed by dedup
    assert delivered(s.receive(three, 61.7)) == [three]
    assert s.deadline() == 121.0  # its age counts from when it opened


def test_a_failed_successor_renews_the_old_connection_the_plain_way() -> None:
    s = session(reconnect_when=(EXPIRED,), rollover="overlap")
    connected(s)
    leg = leg_of(s.receive(frame({"e": "listenKeyExpired"}), 1.0))
    leg.start(1.0)
    err = failure(leg.tick(6.0))  # its subscribe ack never came
    assert isinstance(err, SessionTimeout)
    out = leg.lost(err, 6.0)
    assert isinstance(failure(out), Renewed)
    assert any(isinstance(a, Notice) and "rollover (reconnect_when) failed" in a.text
               for a in out)
    assert s.stats.rollovers == 0


def test_without_overlap_or_before_connected_no_successor_is_started() -> None:
    s = session(reconnect_when=(EXPIRED,), rollover="overlap")
    s.start(0.0)  # subscribing: nothing to overlap with
    assert isinstance(failure(s.receive(frame({"e": "listenKeyExpired"}), 0.5)), Renewed)


def test_a_successor_numbering_its_messages_its_own_way_is_no_gap() -> None:
    seq = SequenceSpec(Template("{msg.s}"))
    s = Session(source(renew=RenewSpec(max_age=10.0, rollover="overlap"), subscribe=SUB,
                       sequence=seq))
    connected(s)
    for n in (1, 2, 3):
        s.receive(frame({"s": n}), 1.0)
    leg = leg_of(s.tick(10.0))
    leg.start(10.0)
    leg.screen(frame({"ack": True}), 10.1)
    leg.handover(10.2)
    out = s.receive(frame({"s": 70}), 10.3)  # the new session numbers its own way
    assert [a for a in out if isinstance(a, Notice)] == []
    s.receive(frame({"s": 72}), 10.4)  # but within it, a gap is still a gap
    assert s.stats.recovery["gap"] == 1


def test_a_connection_lost_during_a_rollover_rolls_over_again_on_the_next_one() -> None:
    s = session(max_age=60.0, rollover="overlap")
    connected(s)
    leg_of(s.tick(60.0)).start(60.0)  # the successor is on its way ...
    s.lost(SessionTimeout("src", "idle"), "timeout", True)  # ... when the old one dies
    s.connecting()
    connected(s, 70.0)  # the driver dropped the successor with it
    assert s.deadline() == 130.0
    leg_of(s.tick(130.0))  # a new rollover, not "one is already on its way"


def test_subscriptions_a_reload_changed_during_the_overlap_are_made_on_the_successor() -> None:
    cfg = source(renew=RenewSpec(max_age=60.0, rollover="overlap"), subscribe=SUB)
    s = Session(cfg)
    connected(s)
    leg = leg_of(s.tick(60.0))
    leg.start(60.0)  # subscribes as configured when it started
    new = dataclasses.replace(cfg, subscribe=(step({"op": "sub", "v": 2}),))
    s.resubscribe(new, 60.1)  # a reload, on the live (old) connection
    leg.screen(frame({"ack": True}), 60.2)
    out = leg.handover(60.3)
    assert sent(out) == [{"op": "sub", "v": 2}]  # no unsubscribe configured: just the new one
    assert states(out) == [ConnState.CONNECTED, ConnState.SUBSCRIBING, ConnState.CONNECTED]


def test_a_successors_sends_pass_the_sources_rate_limit_and_it_takes_over_once_they_are_out(
        ) -> None:
    steps = (step({"op": "sub", "ch": "a"}), step({"op": "sub", "ch": "b"}))  # no acks
    s = Session(source(renew=RenewSpec(max_age=60.0, rollover="overlap"), subscribe=steps,
                       rate_limit=RateLimitSpec(1, 1.0)))
    assert sent(s.start(0.0)) == [{"op": "sub", "ch": "a"}]  # b waits for its turn
    assert sent(s.tick(1.05)) == [{"op": "sub", "ch": "b"}]  # one in any 1.05 s
    leg = leg_of(s.tick(60.0))
    out = leg.start(60.5)
    assert sent(out) == [{"op": "sub", "ch": "a"}]  # the source's window: b waits again
    assert not [a for a in out if isinstance(a, Handover)]  # not while a send is held
    assert leg.deadline() == pytest.approx(61.55)
    out = leg.tick(61.55)
    assert sent(out) == [{"op": "sub", "ch": "b"}]
    assert isinstance(out[-1], Handover)  # subscribed, and nothing of it left behind
