"""Home Assistant discovery: the bridge and each source as devices, read by a real subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import gmqtt
import pytest

from bridge.config.load import load_config
from bridge.ha.discovery import Bridge, bridge_configs, removal, source_configs
from bridge.ha.health import Health
from bridge.ha.requests import read, response
from bridge.sinks.presence_settings import Availability
from bridge.stats.snapshot import SinkSnapshot, Snapshot, SourceSnapshot
from bridge.supervisor import Supervisor
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.upstream import Upstream

pytestmark = pytest.mark.mqtt

BRIDGE = Bridge("ws-bridge", "homeassistant", Availability("ws-bridge/bridge/availability"),
                30.0, "1.2.3", "/etc/ws-bridge.yaml")
REQUIRED = {"name", "unique_id", "object_id", "default_entity_id", "device", "origin"}


def check_config(topic: str, payload: str) -> dict[str, Any]:
    """One discovery config as Home Assistant reads it: the fields it needs, ids it accepts."""
    config = json.loads(payload)
    state = "command_topic" if topic.startswith("homeassistant/button/") else "state_topic"
    assert config.keys() >= REQUIRED | {state}, (topic, config)
    component = topic.split("/")[1]
    assert topic == f"homeassistant/{component}/ws-bridge/{config['unique_id']}/config"
    assert config["default_entity_id"] == f"{component}.{config['unique_id']}"
    assert config["object_id"] == config["unique_id"]
    assert config["device"]["identifiers"] and config["origin"]["name"] == "ws-bridge"
    if component == "binary_sensor":
        assert {"payload_on", "payload_off"} <= config.keys()
    return dict(config)


def test_every_entity_has_ids_a_device_an_origin_and_rates_expire() -> None:
    configs = bridge_configs(BRIDGE) + source_configs(BRIDGE, "feed")
    parsed = {topic: check_config(topic, payload) for topic, payload in configs}
    assert len({c["unique_id"] for c in parsed.values()}) == len(configs) == 4 + 7
    by_id = {c["unique_id"]: c for c in parsed.values()}
    feed_rate = by_id["ws-bridge_feed_messages_per_second"]
    assert feed_rate["expire_after"] == 90 and feed_rate["state_topic"] == "ws-bridge/feed/metrics"
    assert feed_rate["value_template"] == "{{ value_json.messages_per_second }}"
    assert "expire_after" not in by_id["ws-bridge_feed_reconnects"]
    link = by_id["ws-bridge_feed_connectivity"]
    assert link["state_topic"] == "ws-bridge/feed/availability"
    assert link["availability"][0]["topic"] == "ws-bridge/bridge/availability"
    assert link["entity_category"] == "diagnostic"
    bridge_device = by_id["ws-bridge_bridge_uptime"]["device"]
    assert link["device"]["via_device"] == bridge_device["identifiers"][0] == "ws-bridge"
    bridge_link = by_id["ws-bridge_bridge_connectivity"]  # off, not unavailable, when offline
    assert bridge_link["state_topic"] == "ws-bridge/bridge/availability"
    assert "availability" not in bridge_link
    assert by_id["ws-bridge_feed_state"]["options"] == [
        "connecting", "authenticating", "subscribing", "connected", "reconnecting", "stopped",
        "failed"]
    assert removal(BRIDGE, "feed") == [(t, "") for t, _ in source_configs(BRIDGE, "feed")]


def source(name: str, received: int, **more: Any) -> SourceSnapshot:
    return SourceSnapshot(name=name, state="connected", connected_since=1.0, received=received,
                          bytes=0, invalid=0, forwarded={}, dropped={"render_error": 1},
                          reconnects={"closed": 2, "timeout": 1}, last_message_age=0.25,
                          handshake_seconds=None, grace_until=None, **more)


def test_health_values_rate_since_the_previous_snapshot_and_queue_of_the_sources_sinks() -> None:
    health = Health(started=100.0)
    sink = SinkSnapshot("broker", "mqtt", True, 7, 0, 0, {}, None)
    other = SinkSnapshot("file", "file", True, 5, 0, 0, {}, None)
    first = Snapshot((source("feed", 100),), (sink, other), taken_at=110.0)
    bridge, sources = health.values(first, {"feed": {"broker"}}, "/c.yaml")
    assert sources["feed"]["messages_per_second"] is None  # no rate from one snapshot
    second = Snapshot((source("feed", 400, outgoing_dropped={"expired": 3}),), (sink, other),
                      taken_at=140.0)
    bridge, sources = health.values(second, {"feed": {"broker"}}, "/c.yaml")
    assert sources["feed"] == {"state": "connected", "messages_per_second": 10.0,
                               "last_message_age": 0.2, "reconnects": 3, "dropped": 4,
                               "queue_depth": 7}
    assert bridge == {"uptime": 40, "sources_connected": 1, "sources": 1,
                      "messages_per_second": 10.0, "config": "/c.yaml"}


def write_config(path: Path, url: str, port: int, sources: list[str], controls: bool = False,
                 ha: str = "", prefix: str = "ws-bridge", pooled: str = "") -> None:
    """``sources`` each subscribing once; ``ha``: more of ``homeassistant`` (``none``: none);
    ``pooled``: one more source, its items a, b, c, d over two connections."""
    listed = "".join(f"""
  - name: {name}
    url: {url}
    subscribe: [{{send: {{op: sub}}}}]
    routes:
      - sink: broker
        topic: data/{{source}}
""" for name in sources)
    if pooled:
        listed += f"""
  - name: {pooled}
    url: {url}
    reconnect: {{initial_delay: 10ms, max_delay: 50ms}}
    subscribe: [{{each: [a, b, c, d], batch: 2, send: {{op: sub, items: "{{items}}"}}}}]
    pool: {{per_connection: 2}}
    routes: [{{sink: broker, topic: "data/{{source}}"}}]
"""
    settings = "" if ha == "none" else \
        f"homeassistant: {{interval: 1s, controls: {str(controls).lower()}{ha}}}"
    path.write_text(f"""
version: 1
sinks:
  broker:
    type: mqtt
    url: mqtt://127.0.0.1:{port}
    client_id: ha-test
    topic_prefix: {prefix}
    {settings}
sources:{listed}""")


def configs(messages: list[Received]) -> dict[str, bytes]:
    return {m.topic: m.payload for m in messages if m.topic.endswith("/config")}


@contextlib.asynccontextmanager
async def bridge(path: Path, broker: Broker) -> AsyncIterator[tuple[Supervisor, gmqtt.Client]]:
    """The bridge running ``path``, and a client publishing as Home Assistant would."""
    supervisor = Supervisor(load_config(path))
    running = asyncio.create_task(supervisor.run())
    ha = gmqtt.Client("home-assistant")
    await ha.connect(broker.host, broker.port)
    try:
        yield supervisor, ha
    finally:
        await ha.disconnect()
        supervisor.request_stop()
        assert await asyncio.wait_for(running, 20) == 0


async def test_discovery_follows_the_config_and_home_assistant_restarts(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, ["feed", "spare"])
    sub = await mqtt_subscriber(broker, "homeassistant/#", "ws-bridge/#")
    async with bridge(path, broker) as (supervisor, ha):
        every = 4 + 7 + 7
        first = configs(await sub.wait_for(lambda ms: len(configs(ms)) == every))
        for topic, payload in first.items():
            check_config(topic, payload.decode())
        await sub.wait_for(lambda ms: any(m.topic == "ws-bridge/feed/availability"
                                          and m.payload == b"online" for m in ms))
        metrics = await sub.wait_for(lambda ms: any(
            m.topic == "ws-bridge/feed/metrics" and json.loads(m.payload)["state"] == "connected"
            for m in ms))
        assert any(m.topic == "ws-bridge/bridge/metrics" and m.retain for m in metrics)

        seen = len(sub.messages)  # Home Assistant restarts: it asks for every config again
        ha.publish("homeassistant/status", b"online", qos=1)
        again = await sub.wait_for(lambda ms: len(configs(ms[seen:])) == every)
        assert configs(again[seen:]) == first

        seen = len(sub.messages)  # a reload removes a source: its entities go
        write_config(path, upstream.url, broker.port, ["feed"])
        assert await supervisor.reload() is True
        spare = {t for t in first if "_spare_" in t}
        gone = await sub.wait_for(lambda ms: {m.topic for m in ms[seen:] if not m.payload}
                                  >= spare)
        assert not any(m.payload == b"" for m in gone[seen:] if "_feed_" in m.topic)
        fresh = await mqtt_subscriber(broker, "homeassistant/#")  # what the broker retains,
        ha.publish("homeassistant/marker", b"", qos=1)  # sent to it before this marker
        await fresh.wait_for(1, topic="homeassistant/marker")
        assert set(configs(fresh.messages)) == set(first) - spare


def test_control_requests_are_read_and_answered_with_their_transaction() -> None:
    req = read("wb/bridge/request/reconnect", b'{"source": "feed", "transaction": 7}')
    assert (req.action, req.source, req.transaction, req.problem) == ("reconnect", "feed", 7, None)
    assert read("wb/bridge/request/reconnect", b"feed").source == "feed"  # a plain name
    assert "needs a source" in str(read("wb/bridge/request/resubscribe", b"{}").problem)
    assert "unknown action" in str(read("wb/bridge/request/reboot", b"{}").problem)
    topic, payload = response("wb", "reconnect", 7, error="no source 'x'")
    assert topic == "wb/bridge/response/reconnect"
    assert json.loads(payload) == {"status": "error", "error": "no source 'x'", "transaction": 7}


async def test_buttons_reconnect_and_resubscribe_a_source_which_keeps_its_counts(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, ["feed"], controls=True)
    sub = await mqtt_subscriber(broker, "homeassistant/button/#", "ws-bridge/bridge/response/#")
    seen = await mqtt_subscriber(broker, "data/#", "ws-bridge/feed/metrics")
    async with bridge(path, broker) as (_, ha):
        buttons = configs(await sub.wait_for(2))
        press = {json.loads(c)["unique_id"]: json.loads(c) for c in buttons.values()}
        first = (await upstream.wait_connections(1))[0]
        await first.wait_received(1)  # subscribed
        for n in range(3):
            await first.send_json({"n": n})
        await seen.wait_for(3, topic="data/feed")

        button = press["ws-bridge_feed_resubscribe"]  # again on the live connection
        ha.publish(button["command_topic"], button["payload_press"].encode(), qos=1)
        assert [json.loads(f) for f in await first.wait_received(2)] == [{"op": "sub"}] * 2

        button = press["ws-bridge_feed_reconnect"]  # the upstream sees a new connection
        ha.publish(button["command_topic"], button["payload_press"].encode(), qos=1)
        second = (await upstream.wait_connections(2))[1]
        await first.wait_closed()
        await second.wait_received(1)  # subscribed again on it
        # Home Assistant's Reconnects sensor counts it: the source's counts went on
        await seen.wait_for(lambda ms: any(json.loads(m.payload)["reconnects"] == 1 for m in ms),
                            topic="ws-bridge/feed/metrics")

        ha.publish("ws-bridge/bridge/request/health", b'{"transaction": "t1"}', qos=1)
        ha.publish("ws-bridge/bridge/request/reconnect", b'{"source": "nope"}', qos=1)
        answers = await sub.wait_for(2 + 4)
        got: dict[str, list[dict[str, Any]]] = {}
        for m in answers[2:]:
            got.setdefault(m.topic.rsplit("/", 1)[1], []).append(json.loads(m.payload))
        assert got["resubscribe"] == [{"status": "ok", "data": {"source": "feed"}}]
        assert got["reconnect"] == [{"status": "ok", "data": {"source": "feed"}},
                                    {"status": "error", "error": "no source 'nope'"}]
        (health,) = got["health"]
        assert health["transaction"] == "t1" and health["status"] == "ok"
        (feed,) = health["data"]["sources"]
        assert feed["name"] == "feed" and feed["reconnects"] == {"requested": 1}
        assert feed["received"] == 3 and feed["forwarded"] == {"broker": 3}


async def test_a_pool_resubscribes_and_reconnects_every_connection(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, [], controls=True, pooled="pool")
    sub = await mqtt_subscriber(broker, "homeassistant/button/#", "ws-bridge/bridge/response/#")
    async with bridge(path, broker) as (_, ha):
        await sub.wait_for(2)  # its buttons: the bridge listens to the request topics
        first = (await upstream.wait_connections(2))[:2]
        shares = [[json.loads(f)["items"] for f in await c.wait_received(1)] for c in first]
        assert sorted(shares) == [[["a", "b"]], [["c", "d"]]]

        ha.publish("ws-bridge/bridge/request/resubscribe", b'{"source": "pool"}', qos=1)
        for conn, share in zip(first, shares, strict=True):  # each its own share, again
            assert [json.loads(f)["items"] for f in await conn.wait_received(2)] == share * 2

        ha.publish("ws-bridge/bridge/request/reconnect", b'{"source": "pool"}', qos=1)
        fresh = (await upstream.wait_connections(4))[2:]
        for conn in first:
            await conn.wait_closed()
        again = [[json.loads(f)["items"] for f in await c.wait_received(1)] for c in fresh]
        assert sorted(again) == [[["a", "b"]], [["c", "d"]]]

        ha.publish("ws-bridge/bridge/request/health", b"{}", qos=1)
        answers = (await sub.wait_for(2 + 3))[2:]
        assert [json.loads(m.payload)["status"] for m in answers] == ["ok"] * 3
        (pool,) = json.loads(answers[2].payload)["data"]["sources"]
        assert pool["reconnects"] == {"requested": 2}
        assert pool["connection_reconnects"] == {"0": 1, "1": 1}
        assert len(upstream.connections) == 4  # one new connection each, no restart of the pool


async def test_resubscribe_without_subscribe_steps_is_refused_with_the_reason(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    path.write_text(f"""
version: 1
sinks:
  broker: {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", homeassistant: {{controls: true}}}}
sources:
  - name: bare
    url: {upstream.url}
    routes: [{{sink: broker}}]
""")
    sub = await mqtt_subscriber(broker, "homeassistant/button/#", "ws-bridge/bridge/response/#")
    async with bridge(path, broker) as (_, ha):
        await sub.wait_for(2)  # its buttons: the bridge listens to the request topics
        ha.publish("ws-bridge/bridge/request/resubscribe", b'{"source": "bare"}', qos=1)
        answer = (await sub.wait_for(3))[2]
        assert json.loads(answer.payload) == {
            "status": "error",
            "error": "source 'bare' has no subscribe steps to send again; reconnect it instead"}


async def test_reconnect_between_connections_cuts_the_backoff_wait_short(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    await upstream.stop()  # refused: the source waits an hour before trying again
    path = tmp_path / "bridge.yaml"
    path.write_text(f"""
version: 1
sinks:
  broker: {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", homeassistant: {{controls: true}}}}
sources:
  - name: late
    url: {upstream.url}
    reconnect: {{initial_delay: 1h, max_delay: 1h}}
    routes: [{{sink: broker}}]
""")
    sub = await mqtt_subscriber(broker, "ws-bridge/late/state", "ws-bridge/bridge/response/#")
    async with bridge(path, broker) as (_, ha):
        await sub.wait_for(lambda ms: bool(ms) and ms[-1].payload == b"reconnecting",
                           topic="ws-bridge/late/state")
        await upstream.start()
        ha.publish("ws-bridge/bridge/request/reconnect", b'{"source": "late"}', qos=1)
        await upstream.wait_connections(1)
        await sub.wait_for(lambda ms: bool(ms) and ms[-1].payload == b"connected",
                           topic="ws-bridge/late/state")
