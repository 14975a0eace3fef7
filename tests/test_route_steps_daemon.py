"""Route steps end to end: the real daemon against the loopback upstream and a real Mosquitto;
what a subscriber receives and what lands in the files is the oracle. The Home Assistant example
(configs/home-assistant-on-change.yaml) runs as shipped, only pointed at the test servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import NotifySocket
from tests.support.mosquitto import Broker
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_daemon import (
    Spawn,
    config,
    file_has,
    file_sink,
    get,
    lines,
    metrics_port,
    notify,  # noqa: F401 - the fixture
    reload,
    run_ready,
    sample,
    source,
    stop,
    write,
)
from tests.test_outbox import Subscribe

HA_EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "home-assistant-on-change.yaml"


def state_changed(entity: str, state: str | None, **attributes: Any) -> dict[str, Any]:
    new = None if state is None else {"entity_id": entity, "state": state,
                                      "attributes": attributes}
    return {"id": 1, "type": "event", "event": {"event_type": "state_changed", "data": {
        "entity_id": entity, "old_state": None, "new_state": new}}}


async def home_assistant(conn: UpstreamConn, events: list[dict[str, Any]]) -> None:
    """Home Assistant's side: auth, the subscription's result, then ``events``."""
    await conn.send_json({"type": "auth_required", "ha_version": "2025.1.0"})
    assert (await conn.recv_json())["type"] == "auth"
    await conn.send_json({"type": "auth_ok"})
    subscribe = await conn.recv_json()
    await conn.send_json({"id": subscribe["id"], "type": "result", "success": True})
    for event in events:
        await conn.send_json(event)


async def test_the_home_assistant_example_publishes_one_retained_topic_per_entity_on_change(
    mosquitto: Callable[..., Broker], mqtt_subscriber: Subscribe, upstream: Upstream,
    spawn: Spawn, tmp_path: Path,
) -> None:
    events = [
        state_changed("sensor.t", "21.5"), state_changed("light.k", "on", brightness=10),
        state_changed("sensor.t", "21.52"),  # within the deadband
        state_changed("light.k", "on", brightness=200),  # attributes only
        state_changed("sensor.t", "21.6"), state_changed("light.k", "off"),
        state_changed("light.k", None),  # removed: nothing to publish
        {"id": 2, "type": "pong"}, state_changed("sensor.end", "done"),
    ]
    upstream.handler = lambda conn: home_assistant(conn, events)
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "ha/#")
    cfg = yaml.safe_load(HA_EXAMPLE.read_text())
    cfg["sources"][0]["url"] = upstream.url
    cfg["sinks"]["broker"]["url"] = f"mqtt://127.0.0.1:{broker.port}"
    daemon = await spawn("run", write(tmp_path / "ha.yaml", cfg))
    await sub.wait_for(1, topic="ha/sensor.end/state", timeout=20)  # in order: the rest is in
    got = [(m.topic, m.payload.decode(), m.retain) for m in sub.messages]
    assert got == [("ha/sensor.t/state", "21.5", True), ("ha/light.k/state", "on", True),
                   ("ha/sensor.t/state", "21.6", True), ("ha/light.k/state", "off", True),
                   ("ha/sensor.end/state", "done", True)]
    late = await mqtt_subscriber(broker, "ha/#")  # a dashboard starting now: the last states
    retained = await late.wait_for(3)
    assert {(m.topic, m.payload.decode()) for m in retained} == {
        ("ha/sensor.t/state", "21.6"), ("ha/light.k/state", "off"), ("ha/sensor.end/state", "done")}
    await stop(daemon)


async def test_throttle_and_batch_release_on_their_timers_one_publish_per_batch(
    mosquitto: Callable[..., Broker], mqtt_subscriber: Subscribe, upstream: Upstream,
    spawn: Spawn, tmp_path: Path,
) -> None:
    async def feed(conn: UpstreamConn) -> None:
        for i in range(1, 4):
            await conn.send_json({"s": "A", "p": i, "l": [i, i * 10]})

    upstream.handler = feed
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "t/#", "b/#")
    routes = [
        {"sink": "broker", "throttle": {"key": "{msg.s}", "every": "300ms"},
         "topic": "t/{msg.s}", "payload": "{msg.p}"},
        {"sink": "broker", "each": "{msg.l}", "batch": {"max": 100, "within": "300ms"},
         "topic": "b/all", "payload": "{item}"},
    ]
    sinks = {"out": file_sink(tmp_path),
             "broker": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}"}}
    cfg = config(tmp_path, [source("feed", upstream, routes=routes)], sinks=sinks)
    daemon = await spawn("run", write(tmp_path / "bridge.yaml", cfg))
    # The first value at once, the burst's last at the end of the period; all six elements in
    # one publish when the batch's time is up. Neither needs another message to come.
    throttled = await sub.wait_for(2, topic="t/A", timeout=15)
    assert [m.payload for m in throttled] == [b"1", b"3"]
    (batch,) = await sub.wait_for(1, topic="b/all", timeout=15)
    assert json.loads(batch.payload) == [1, 10, 2, 20, 3, 30]
    await stop(daemon)


async def test_shutdown_flushes_what_routes_hold_and_reloads_and_reconnects_keep_their_state(
    upstream: Upstream, spawn: Spawn, tmp_path: Path, notify: NotifySocket,  # noqa: F811
) -> None:
    routes = [
        {"sink": "out"},
        {"sink": "batched", "batch": {"max": 3, "within": "1h"}, "payload": "{msg.v}"},
        {"sink": "held", "throttle": {"key": "k", "every": "1h"}, "payload": "{msg.v}"},
        {"sink": "changes", "on_change": {"key": "{msg.id}", "value": "{msg.v}"},
         "payload": "{msg.v}"},
    ]
    sinks = {name: file_sink(tmp_path, name) for name in ("out", "batched", "held", "changes")}
    cfg = config(tmp_path, [source("feed", upstream, routes=routes)], sinks=sinks,
                 metrics={"listen": "127.0.0.1:0"})
    path = write(tmp_path / "bridge.yaml", cfg)
    daemon = await run_ready(spawn, path, notify)
    base = f"http://127.0.0.1:{await metrics_port(daemon)}"
    (conn,) = await upstream.wait_connections(1)
    for v in range(1, 5):
        await conn.send_json({"id": "a", "v": v})
    await file_has(tmp_path / "out" / "feed.txt", 4)  # every route has seen all four
    assert lines(tmp_path / "batched" / "feed.txt") == ["[1,2,3]"]
    assert lines(tmp_path / "held" / "feed.txt") == ["1"]
    cfg["sources"][0]["routes"][0]["payload"] = "{msg.v}"  # another route changes
    write(path, cfg)
    await reload(daemon, notify)
    await conn.send_json({"id": "a", "v": 4})
    await upstream.kill()  # and what on_change remembers survives the reconnect, too
    (_, again) = await upstream.wait_connections(2)
    for v in (4, 5):
        await again.send_json({"id": "a", "v": v})
    await file_has(tmp_path / "out" / "feed.txt", 7)
    _, text = await get(f"{base}/metrics")
    held = "ws_bridge_source_messages_held_total"
    assert sample(text, held, source="feed", reason="unchanged") == 2  # the two repeated 4s
    assert sample(text, held, source="feed", reason="throttled") == 5  # replaced while held
    cfg["sources"][0]["headers"] = {"X-Test": "1"}  # the source itself changes: it reconnects
    write(path, cfg)
    await reload(daemon, notify)
    (*_, third) = await upstream.wait_connections(3)
    for v in (5, 6):
        await third.send_json({"id": "a", "v": v})
    await file_has(tmp_path / "out" / "feed.txt", 9)
    await stop(daemon)
    assert lines(tmp_path / "batched" / "feed.txt") == ["[1,2,3]", "[4,4,4]", "[5,5,6]"]
    assert lines(tmp_path / "held" / "feed.txt") == ["1", "6"]
    assert lines(tmp_path / "changes" / "feed.txt") == ["1", "2", "3", "4", "5", "6"]
