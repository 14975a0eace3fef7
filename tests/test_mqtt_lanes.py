"""The lanes of an MQTT sink with several connections: pinning, client ids, what waits."""

from __future__ import annotations

from bridge.messages import Delivery, Message
from bridge.shard import owner
from bridge.sinks.mqtt_lanes import Pins, held_back, lane_client_id


def delivery(source: str, n: int) -> Delivery:
    return Delivery(Message(source, f"{n}", 0.0), f"{n}")


def test_a_source_always_gets_the_same_lane_and_sources_spread_over_lanes() -> None:
    pins = Pins(4)
    names = [f"feed-{i}" for i in range(200)]
    assert [pins(n) for n in names] == [pins(n) for n in names]
    assert [pins(n) for n in names] == [owner(n, 4) for n in names]  # stable across processes
    assert {pins(n) for n in names} == {0, 1, 2, 3}


def test_a_batch_splits_by_lane_keeping_each_sources_order() -> None:
    pins = Pins(3)
    batch = [delivery(f"s{i % 5}", i) for i in range(50)]
    groups = pins.split(batch)
    assert sorted(d.payload for g in groups for d in g) == sorted(d.payload for d in batch)
    for lane, group in enumerate(groups):
        assert all(pins(d.message.source) == lane for d in group)
        assert [int(str(d.payload)) for d in group] == sorted(int(str(d.payload)) for d in group)


def test_what_a_full_lane_could_not_fire_comes_back_lane_by_lane_in_order() -> None:
    groups = [[delivery("a", 0), delivery("a", 1)], [], [delivery("c", 2), delivery("c", 3)]]
    fired = {0: 2, 2: 1}  # lane 0 fired all, lane 2 only its first
    rest = held_back(groups, lambda lane, group: fired[lane])
    assert [d.payload for d in rest] == ["3"]


def test_lane_zero_keeps_the_client_id_and_the_others_number_it() -> None:
    assert [lane_client_id("bridge-h1", k) for k in range(3)] == [
        "bridge-h1", "bridge-h1-1", "bridge-h1-2"]
