"""A route's processing steps through the router: each and item_when, on_change, throttle (on an
injected clock) and batch (size, time, shutdown), what they count, and what a reload keeps."""

from __future__ import annotations

import json
from typing import Any

from bridge.config.route_specs import BatchSpec, OnChangeSpec, ThrottleSpec
from bridge.config.specs import RouteSpec
from bridge.routing.changes import ABSENT, Changes, differs
from bridge.routing.pattern import Pattern
from bridge.routing.router import Router
from bridge.routing.template import Template
from bridge.routing.throttle import Throttle
from tests.test_router import Clock, Recorder, msg, sinks, source

HA = {"type": "event", "event": {"data": {"changes": [
    {"entity_id": "sensor.t", "state": "21.5"}, {"entity_id": "light.k", "state": "on"}]}}}


def route(**steps: Any) -> RouteSpec:
    return RouteSpec("out", **steps)


def router(*routes: RouteSpec, clock: Clock | None = None,
           previous: Router | None = None) -> tuple[Router, Recorder]:
    out = sinks("out")
    made = Router(source(*routes), out, clock=clock or Clock(0.0), previous=previous)
    return made, out["out"]


def payloads(sink: Recorder) -> list[Any]:
    return [d.payload for d in sink.got]


def send(r: Router, *values: Any) -> None:
    for value in values:
        r.route(msg(json.dumps(value)))


# --- each ---------------------------------------------------------------------------------------

def test_each_delivers_one_per_element_with_its_index_and_fields() -> None:
    r, out = router(route(each=Template("{msg.event.data.changes}"),
                          topic=Template("ha/{item.entity_id}/state"),
                          payload=Template("{index}:{item.state}")))
    send(r, HA)
    assert [(d.topic, d.payload) for d in out.got] == [
        ("ha/sensor.t/state", "0:21.5"), ("ha/light.k/state", "1:on")]
    assert r.stats.forwarded == {"out": 2}


def test_each_over_a_mapping_reads_each_entry_as_key_and_value() -> None:
    r, out = router(route(each=Template("{msg.prices}"), topic=Template("p/{item.key}"),
                          payload=Template("{item.value}")))
    send(r, {"prices": {"BTC": 1.5, "ETH": {"bid": 2}}})
    assert [(d.topic, d.payload) for d in out.got] == [("p/BTC", "1.5"), ("p/ETH", '{"bid":2}')]


def test_a_whole_item_is_its_json_and_when_filters_before_item_when() -> None:
    r, out = router(route(when=Pattern({"type": "event"}),
                          each=Template("{msg.event.data.changes}"),
                          item_when=Pattern({"state": {"$ne": "on"}}), payload=Template("{item}")))
    send(r, HA, {"type": "other", "event": HA["event"]})
    assert payloads(out) == ['{"entity_id":"sensor.t","state":"21.5"}']
    assert r.held() == {"filtered": 2}  # one element, one message


def test_a_missing_or_scalar_or_empty_each_path_is_counted_as_no_items() -> None:
    r, out = router(route(each=Template("{msg.list}"), payload=Template("{item}")))
    send(r, {"other": 1}, {"list": 5}, {"list": []}, {"list": "abc"}, {"list": [7]})
    assert payloads(out) == ["7"]
    assert r.held() == {"no_items": 4}


def test_one_bad_element_is_a_render_error_and_the_others_still_go() -> None:
    r, out = router(route(each=Template("{msg.l}"), topic=Template("t/{item.id}")))
    send(r, {"l": [{"id": 1}, {"no": 2}, {"id": 3}]})
    assert [d.topic for d in out.got] == ["t/1", "t/3"]
    assert r.stats.render_errors == {0: 1}


# --- on_change ----------------------------------------------------------------------------------

def test_numbers_and_numeric_strings_change_by_more_than_the_deadband() -> None:
    change = OnChangeSpec(Template("{msg.id}"), Template("{msg.v}"), deadband=0.5)
    r, out = router(route(on_change=change, payload=Template("{msg.v}")))
    send(r, *({"id": "a", "v": v} for v in (21.0, 21.3, "21.5", 21.6, "21.1", 21.05, 22)))
    assert payloads(out) == ["21.0", "21.6", "21.05", "22"]  # each against the last one sent
    assert r.held() == {"unchanged": 3}


def test_other_values_change_when_different_and_keys_are_apart() -> None:
    change = OnChangeSpec(Template("{msg.id}"), Template("{msg.v}"))
    r, out = router(route(on_change=change, payload=Template("{msg.id}={msg.v}")))
    send(r, *({"id": i, "v": v} for i, v in [("a", "on"), ("b", "on"), ("a", "on"), ("a", "off"),
                                              ("a", True), ("a", 1), ("a", [1]), ("a", [1])]))
    assert payloads(out) == ["a=on", "b=on", "a=off", "a=true", "a=1", "a=[1]"]


def test_a_missing_value_is_a_value_of_its_own() -> None:
    change = OnChangeSpec(Template("{msg.id}"), Template("{msg.v}"))
    r, out = router(route(on_change=change, payload=Template("{msg.id}")))
    send(r, {"id": "a"}, {"id": "a"}, {"id": "a", "v": None}, {"id": "a", "v": None}, {"id": "a"})
    assert len(out.got) == 3


def test_the_rules_of_a_change_directly() -> None:
    assert not differs("21.5", 21.5, 0.0) and differs("nan", "NaN", 0.0)  # nan is text here
    assert differs(True, 1, 0.0) and not differs(ABSENT, ABSENT, 0.0)
    assert not differs({"a": [1]}, {"a": [1]}, 0.0) and differs("inf", "inf ", 0.0)
    changes = Changes(0.0, max_keys=2)
    assert all(changes.changed(k, 1) for k in "abc") and changes.evicted == 1
    assert changes.changed("a", 1) and not changes.changed("c", 1)  # a was forgotten, c was not


def test_on_change_state_survives_a_reload_of_an_unchanged_route_only() -> None:
    change = OnChangeSpec(Template("{msg.id}"), Template("{msg.v}"))
    kept = route(on_change=change, payload=Template("{msg.v}"))
    first, _ = router(kept)
    send(first, {"id": "a", "v": 1})
    second, out = router(kept, previous=first)
    send(second, {"id": "a", "v": 1}, {"id": "a", "v": 2})
    assert payloads(out) == ["2"]
    edited = route(on_change=change, payload=Template("v={msg.v}"))
    third, out = router(edited, previous=second)
    send(third, {"id": "a", "v": 2})
    assert payloads(out) == ["v=2"]  # a changed route starts afresh


# --- throttle -----------------------------------------------------------------------------------

def test_keep_last_sends_a_quiet_key_at_once_and_a_bursts_last_value_at_the_period_end() -> None:
    clock = Clock(100.0)
    r, out = router(route(throttle=ThrottleSpec(Template("{msg.s}"), every=1.0),
                          payload=Template("{msg.s}{msg.p}")), clock=clock)
    woken: list[float | None] = []
    r.wake = lambda: woken.append(r.deadline())
    send(r, {"s": "A", "p": 1}, {"s": "A", "p": 2}, {"s": "B", "p": 1}, {"s": "A", "p": 3})
    assert payloads(out) == ["A1", "B1"]
    assert r.deadline() == 101.0 and woken == [101.0]  # told once: B's deadline is not sooner
    clock.t = 100.999
    assert r.tick() is None and payloads(out) == ["A1", "B1"]
    clock.t = 101.0
    r.tick()
    assert payloads(out) == ["A1", "B1", "A3"]  # the burst's final value, never dropped
    assert r.held() == {"throttled": 1}  # A2, replaced by A3
    clock.t = 101.5
    send(r, {"s": "A", "p": 4})  # A's next period opened when A3 went: held until 102
    assert r.deadline() == 102.0
    clock.t = 102.0
    r.tick()
    assert payloads(out)[-1] == "A4"
    clock.t = 103.5  # quiet for a period: the next value goes at once
    r.tick()
    send(r, {"s": "A", "p": 5})
    assert payloads(out)[-1] == "A5"


def test_keep_first_sends_at_once_and_drops_the_rest_of_the_period() -> None:
    clock = Clock(0.0)
    spec = ThrottleSpec(Template("{msg.s}"), every=1.0, keep="first")
    r, out = router(route(throttle=spec, payload=Template("{msg.p}")), clock=clock)
    send(r, {"s": "A", "p": 1}, {"s": "A", "p": 2})
    assert r.deadline() is None  # nothing is held: no timer
    clock.t = 1.0
    send(r, {"s": "A", "p": 3}, {"s": "A", "p": 4})
    assert payloads(out) == ["1", "3"] and r.held() == {"throttled": 2}


def test_the_keys_are_bounded_and_a_forgotten_keys_held_value_still_goes() -> None:
    throttle: Throttle[str] = Throttle(1.0, keep_last=True, max_keys=2)
    out: list[str] = []
    for key, value in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1")]:
        throttle.offer(key, value, 0.0, out)
    assert out == ["a1", "b1", "a2", "c1"] and throttle.evicted == 1


def test_flush_sends_what_throttle_holds() -> None:
    r, out = router(route(throttle=ThrottleSpec(Template("k"), every=60.0),
                          payload=Template("{msg.p}")))
    send(r, {"p": 1}, {"p": 2}, {"p": 3})
    r.flush()
    assert payloads(out) == ["1", "3"]


# --- batch --------------------------------------------------------------------------------------

def test_a_batch_is_one_json_array_at_max() -> None:
    r, out = router(route(batch=BatchSpec(3, 1.0), topic=Template("archive")))
    r.route(msg('{"a": 1}'))
    r.route(msg("not json"))
    assert out.got == []
    r.route(msg('[2, "x"]'))
    (batch,) = out.got
    assert json.loads(batch.payload) == [{"a": 1}, "not json", [2, "x"]]
    assert batch.topic == "archive" and batch.message.data == batch.payload
    assert r.deadline() is None


def test_a_batch_goes_within_its_time_and_on_flush() -> None:
    clock = Clock(10.0)
    r, out = router(route(batch=BatchSpec(100, 2.0), payload=Template({"v": "{msg.v}"})),
                    clock=clock)
    woken: list[int] = []
    r.wake = lambda: woken.append(1)
    send(r, {"v": 1}, {"v": 2})
    assert r.deadline() == 12.0 and len(woken) == 1
    clock.t = 12.0
    r.tick()
    assert payloads(out) == ['[{"v":1},{"v":2}]']
    send(r, {"v": 3})
    r.flush()
    assert payloads(out)[-1] == '[{"v":3}]'
    r.flush()
    assert len(out.got) == 2  # nothing twice


def test_throttle_then_batch_and_a_reload_that_drops_the_route_sends_what_it_held() -> None:
    clock = Clock(0.0)
    first, out = router(route(throttle=ThrottleSpec(Template("{msg.s}"), every=1.0),
                              batch=BatchSpec(10, 5.0), payload=Template("{msg.p}")), clock=clock)
    send(first, {"s": "A", "p": 1}, {"s": "A", "p": 2}, {"s": "B", "p": 1})
    clock.t = 1.0
    first.tick()
    assert out.got == []  # released by the throttle into the open batch
    _, out2 = router(route(), previous=first)
    assert payloads(out2) == ['[1,1,2]']
