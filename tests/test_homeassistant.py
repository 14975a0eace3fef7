"""Home Assistant discovery: the bridge and each source as devices, read by a real subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import gmqtt
import pytest

from bridge.config.load import load_config
from bridge.ha.discovery import bridge_configs, removal, source_configs
from bridge.ha.health import Health
from bridge.ha.ids import Bridge, configuration_url, entity_id
from bridge.ha.requests import read, response
from bridge.sinks.presence_settings import Availability
from bridge.stats.snapshot import SinkSnapshot, Snapshot, SourceSnapshot
from bridge.supervisor import Supervisor
from tests.support.mosquitto import Broker, Received, Subscriber, retained_now
from tests.support.upstream import Upstream, UpstreamConn

pytestmark = pytest.mark.mqtt

BRIDGE = Bridge("ws-bridge", "homeassistant", Availability("ws-bridge/bridge/availability"),
                30.0, "1.2.3", "/etc/ws-bridge.yaml")
REQUIRED = {"name", "unique_id", "object_id", "default_entity_id", "device", "origin"}
# Home Assistant's MQTT discovery as its own schemas state it (homeassistant/components/mqtt,
# read in the 2025.12.5 and 2026.11.0 sources, not run here: it needs Python 3.13): the topic
# (TOPIC_MATCHER), the entity id rule (valid_entity_id), the keys each platform takes (its
# DISCOVERY_SCHEMA drops any other), the device and origin keys, the sensor rules
# (validate_sensor_state_and_device_class_config: options only on an enum sensor, without
# state_class or unit), no config category on a sensor or binary sensor, button device classes.
TOPIC = re.compile(r"(?P<component>\w+)/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config")
ENTITY_ID = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")
COMMON = REQUIRED | {"availability", "availability_mode", "entity_category", "icon",
                     "json_attributes_topic", "json_attributes_template", "qos",
                     "enabled_by_default", "encoding", "entity_picture", "platform"}
KEYS = {
    "sensor": COMMON | {"state_topic", "value_template", "device_class", "state_class",
                        "unit_of_measurement", "suggested_display_precision", "expire_after",
                        "force_update", "options", "last_reset_value_template"},
    "binary_sensor": COMMON | {"state_topic", "value_template", "device_class", "payload_on",
                               "payload_off", "expire_after", "force_update", "off_delay"},
    "button": COMMON | {"command_topic", "command_template", "payload_press", "device_class",
                        "retain"},
}
DEVICE = {"identifiers", "connections", "name", "manufacturer", "model", "model_id",
          "serial_number", "sw_version", "hw_version", "suggested_area", "via_device",
          "configuration_url"}
ORIGIN = {"name", "sw_version", "support_url"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}


def check_config(topic: str, payload: str, prefix: str = "homeassistant") -> dict[str, Any]:
    """One discovery config as Home Assistant reads it: the fields it needs, the keys and
    values it accepts, ids it allows."""
    config = json.loads(payload)
    assert topic.startswith(f"{prefix}/"), topic
    match = TOPIC.fullmatch(topic.removeprefix(f"{prefix}/"))
    assert match is not None, topic
    component = match["component"]
    assert config.keys() <= KEYS[component], (topic, config.keys() - KEYS[component])
    state = "command_topic" if component == "button" else "state_topic"
    assert config.keys() >= REQUIRED | {state}, (topic, config)
    assert topic.split("/")[-2] == config["unique_id"]
    assert ENTITY_ID.fullmatch(config["default_entity_id"]), config["default_entity_id"]
    assert config["default_entity_id"] == f"{component}.{config['object_id']}"
    device, origin = config["device"], config["origin"]
    assert device.keys() <= DEVICE and device["identifiers"] and device["name"]
    assert origin.keys() <= ORIGIN and origin["name"] == "ws-bridge"
    assert str(device.get("configuration_url", "http://")).startswith(("http://", "https://"))
    for link in config.get("availability", []):
        assert link.keys() <= {"topic", "payload_available", "payload_not_available",
                               "value_template"} and link["topic"]
    if component == "sensor":
        assert config.get("entity_category") in (None, "diagnostic")  # never config
        if config.get("device_class") == "enum":
            assert config["options"] and not {"state_class", "unit_of_measurement"} & set(config)
        else:
            assert "options" not in config and config["state_class"] in STATE_CLASSES
    if component == "binary_sensor":
        assert {"payload_on", "payload_off"} <= config.keys()
        assert config.get("entity_category") in (None, "diagnostic")
    if component == "button":
        assert config.get("device_class") in (None, "identify", "restart", "update")
        assert "expire_after" not in config and isinstance(config["payload_press"], str)
    return dict(config)


def test_every_entity_has_ids_a_device_an_origin_and_rates_expire() -> None:
    configs = bridge_configs(BRIDGE) + source_configs(BRIDGE, "feed")
    parsed = {topic: check_config(topic, payload) for topic, payload in configs}
    assert len({c["unique_id"] for c in parsed.values()}) == len(configs) == 4 + 7
    by_id = {c["unique_id"]: c for c in parsed.values()}
    feed_rate = by_id["ws-bridge_feed_messages_per_second"]
    assert feed_rate["expire_after"] == 90 and feed_rate["state_topic"] == "ws-bridge/feed/metrics"
    assert feed_rate["value_template"] == (
        "{{ value_json.messages_per_second if value_json is defined else '' }}")
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
    assert by_id["ws-bridge_feed_state"]["default_entity_id"] == "sensor.ws_bridge_feed_state"
    assert "payload_on" not in by_id["ws-bridge_bridge_uptime"]  # the connectivity's own
    assert "configuration_url" not in bridge_device


def test_ids_and_the_device_link_as_home_assistant_allows_them() -> None:
    assert entity_id("sensor", "ws-bridge_my-feed_state") == "sensor.ws_bridge_my_feed_state"
    assert entity_id("sensor", "A--b__c_") == "sensor.a_b_c"  # no double or edge underscores
    assert configuration_url(None, "box") is None  # no metrics endpoint
    for loopback in ("127.0.0.1:9108", "[::1]:9108", "localhost:9108"):
        assert configuration_url(loopback, "box") is None
    assert configuration_url("0.0.0.0:9108", "box") == "http://box:9108/status"
    assert configuration_url("[::]:9108", "box") == "http://box:9108/status"
    assert configuration_url("192.0.2.5:9108", "box") == "http://192.0.2.5:9108/status"
    assert configuration_url("[fd00::5]:9108", "box") == "http://[fd00::5]:9108/status"
    linked = dataclasses.replace(BRIDGE, controls=True,
                                 configuration_url="http://box:9108/status")
    configs = bridge_configs(linked) + source_configs(linked, "my-feed")
    parsed = [check_config(topic, payload) for topic, payload in configs]
    assert parsed[0]["device"]["configuration_url"] == "http://box:9108/status"
    ids = {c["unique_id"]: c["default_entity_id"] for c in parsed}
    assert ids["ws-bridge_my-feed_reconnect"] == "button.ws_bridge_my_feed_reconnect"


def test_device_names_read_well_and_tell_two_bridges_apart() -> None:
    """Home Assistant names an entity '<device name> <entity name>' (has_entity_name)."""
    def friendly(b: Bridge) -> set[str]:
        parsed = [json.loads(payload) for _, payload in
                  bridge_configs(b) + source_configs(b, "alpha")]
        return {f"{c['device']['name']} {c['name']}" for c in parsed
                if c["name"] in ("Uptime", "Connectivity")}
    assert friendly(BRIDGE) == {"ws-bridge Uptime", "ws-bridge Connectivity",
                                "alpha Connectivity"}
    other = dataclasses.replace(BRIDGE, prefix="site-b")  # a second bridge on the broker
    assert friendly(other) == {"ws-bridge site-b Uptime", "ws-bridge site-b Connectivity",
                               "site-b alpha Connectivity"}


def test_every_template_tolerates_a_metrics_topic_that_is_no_json() -> None:
    """A removed source's metrics topic is cleared (an empty retained payload) while Home
    Assistant still has its sensors: 2024.3 logged 'Template variable error: value_json is
    undefined' at ERROR for each of them (contrib/ha-verify). Every template tests it first."""
    templates = [json.loads(payload).get("value_template") for _, payload in
                 bridge_configs(BRIDGE) + source_configs(BRIDGE, "feed")]
    guarded = [t for t in templates if t is not None]
    assert len(guarded) == 3 + 5
    for template in guarded:
        field = template.split()[1].removeprefix("value_json.")
        assert template == f"{{{{ value_json.{field} if value_json is defined else '' }}}}"


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


def configs_of(retained: dict[str, bytes]) -> set[str]:
    return {topic for topic in retained if topic.endswith("/config")}


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

        await sub.wait_for(lambda ms: any(m.topic == "ws-bridge/spare/availability"
                                          and m.payload == b"online" for m in ms))
        seen = len(sub.messages)  # a reload removes a source: its entities go, and no ghost
        write_config(path, upstream.url, broker.port, ["feed"])  # stays connected: its state
        assert await supervisor.reload() is True  # and availability are deleted
        spare = {t for t in first if "_spare_" in t}
        presence = {"ws-bridge/spare/state", "ws-bridge/spare/availability"}
        gone = await sub.wait_for(lambda ms: {m.topic for m in ms[seen:] if not m.payload}
                                  >= spare | presence)
        assert not any(m.payload == b"" for m in gone[seen:] if "feed" in m.topic)
        kept = await retained_now(broker, ha, "homeassistant/#", "ws-bridge/+/state",
                                  "ws-bridge/+/availability", subscribe=mqtt_subscriber)
        assert set(configs_of(kept)) == set(first) - spare
        assert {t: p for t, p in kept.items() if not t.endswith("/config")} == {
            "ws-bridge/feed/state": b"connected", "ws-bridge/feed/availability": b"online",
            "ws-bridge/bridge/availability": b"online"}

        seen = len(sub.messages)  # added again: it starts from its own state, not a ghost's
        write_config(path, upstream.url, broker.port, ["feed", "spare"])
        assert await supervisor.reload() is True
        await sub.wait_for(lambda ms: [(m.topic, m.payload) for m in ms[seen:]][-1:] == [
            ("ws-bridge/spare/availability", b"online")])
    stopped = await retained_now(broker, None, "ws-bridge/+/state", "ws-bridge/+/availability",
                                 subscribe=mqtt_subscriber)  # a plain stop: its final values
    assert stopped == {"ws-bridge/bridge/availability": b"offline"} | {
        f"ws-bridge/{name}/{topic}": value for name in ("feed", "spare")
        for topic, value in (("state", b"stopped"), ("availability", b"offline"))}


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
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]], caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, ["feed"], controls=True)
    caplog.set_level(logging.INFO, logger="bridge.upstream")
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
        # an operator's action, logged as such: no warning
        said = [(r.levelname, r.getMessage()) for r in caplog.records
                if r.name.startswith("bridge.upstream") and "reconnecting" in r.getMessage()]
        assert [level for level, _ in said] == ["INFO"]
        assert said[0][1].startswith("source feed: reconnecting on request in ")


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
        await reconnect_pressed(sub, ha, upstream, "late", while_in=b"reconnecting")


async def reconnect_pressed(sub: Subscriber, ha: gmqtt.Client, upstream: Upstream, source: str,
                            *, while_in: bytes) -> None:
    """Once ``source``'s state topic says ``while_in``, the upstream comes up and a reconnect
    request is published; returns when the upstream has its connection and the state topic
    says ``connected``."""
    topic = f"ws-bridge/{source}/state"
    await sub.wait_for(lambda ms: bool(ms) and ms[-1].payload == while_in, topic=topic)
    await upstream.start()
    ha.publish("ws-bridge/bridge/request/reconnect", json.dumps({"source": source}).encode(),
               qos=1)
    await upstream.wait_connections(1)
    await sub.wait_for(lambda ms: bool(ms) and ms[-1].payload == b"connected", topic=topic)


async def test_a_reload_that_moves_or_ends_discovery_leaves_no_ghost_entities(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, ["feed"])
    watched = ("homeassistant/#", "ha2/#", "+/+/metrics")
    sub = await mqtt_subscriber(broker, *watched)
    async with bridge(path, broker) as (supervisor, ha):
        first = configs(await sub.wait_for(lambda ms: len(configs(ms)) == 4 + 7))
        await sub.wait_for(1, topic="ws-bridge/feed/metrics")

        # another discovery_prefix and topic_prefix: every config moves, none stays behind
        write_config(path, upstream.url, broker.port, ["feed"], ha=", discovery_prefix: ha2",
                     prefix="wb2")
        assert await supervisor.reload() is True
        old = set(first) | {"ws-bridge/bridge/metrics", "ws-bridge/feed/metrics"}
        await sub.wait_for(lambda ms: {m.topic for m in ms if not m.payload} >= old)
        moved = configs([m for m in await sub.wait_for(lambda ms: len(configs(
            [m for m in ms if m.topic.startswith("ha2/")])) == 11) if m.topic.startswith("ha2/")])
        for topic, payload in moved.items():
            assert check_config(topic, payload.decode(), "ha2")["state_topic"].startswith("wb2/")
        await sub.wait_for(1, topic="wb2/feed/metrics")
        kept = await retained_now(broker, ha, *watched, subscribe=mqtt_subscriber)
        assert {t for t in kept if t.endswith("/config")} == set(moved)
        assert {t for t in kept if not t.endswith("/config")} == {"wb2/bridge/metrics",
                                                                 "wb2/feed/metrics"}

        # homeassistant: removed: its entities go
        seen = len(sub.messages)
        write_config(path, upstream.url, broker.port, ["feed"], ha="none", prefix="wb2")
        assert await supervisor.reload() is True
        ending = set(moved) | {"wb2/bridge/metrics", "wb2/feed/metrics"}
        await sub.wait_for(lambda ms: {m.topic for m in ms[seen:] if not m.payload} >= ending)
        assert await retained_now(broker, ha, *watched, subscribe=mqtt_subscriber) == {}


async def test_a_reload_that_turns_controls_off_removes_the_buttons(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    """The sink is rebuilt (its settings changed) and a source removed whose route holds a
    batch: flushed into the replaced sink as it closes, the batch has it connect once more
    (taking the shared client id from its successor) and publish what it kept, buttons
    included; the successor, connecting last, deletes them again."""
    async def one_message(conn: UpstreamConn) -> None:
        await conn.send_json({"n": 1})

    upstream.handler = one_message
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"

    def configure(sources: list[str], controls: bool) -> None:
        write_config(path, upstream.url, broker.port, sources, controls=controls)
        path.write_text(path.read_text().replace("client_id: ha-test", (
            "client_id: ha-test\n    reconnect: {initial_delay: 10ms, max_delay: 20ms}")
        ).replace("topic: data/spare", "topic: data/spare\n        batch: {max: 9, within: 1h}"))
    configure(["feed", "spare"], controls=True)
    sub = await mqtt_subscriber(broker, "homeassistant/#", "ws-bridge/bridge/#", "data/#")
    async with bridge(path, broker) as (supervisor, ha):
        announced = configs(await sub.wait_for(lambda ms: len(configs(ms)) == 4 + 2 * (7 + 2)))
        buttons = {topic for topic in announced if topic.startswith("homeassistant/button/")}
        gone = buttons | {topic for topic in announced if "_spare_" in topic}
        assert len(buttons) == 4 and len(gone) == 11
        await sub.wait_for(1, topic="data/feed")
        configure(["feed"], controls=False)
        assert await supervisor.reload() is True  # the replaced sink has closed
        await sub.wait_for(1, topic="data/spare")  # the batch, sent by the replaced sink

        def settled(ms: list[Received]) -> bool:
            """Since the last connect (what the broker keeps is what that connection said):
            online, then every one of ``gone`` emptied."""
            ups = [i for i, m in enumerate(ms) if m.topic == "ws-bridge/bridge/availability"]
            since = ms[ups[-1]:] if ups else []
            return bool(since) and since[0].payload == b"online" and \
                {m.topic for m in since if not m.payload} >= gone
        await sub.wait_for(settled)
        kept = await retained_now(broker, ha, "homeassistant/#", subscribe=mqtt_subscriber)
        assert configs_of(kept) == set(announced) - gone

        seen = len(sub.messages)  # nothing answers a button now, and none comes back
        ha.publish("ws-bridge/bridge/request/reconnect", b'{"source": "feed"}', qos=1)
        ha.publish("homeassistant/status", b"online", qos=1)
        again = await sub.wait_for(lambda ms: len(configs(ms[seen:])) == 4 + 7)
        assert not [m.topic for m in again[seen:] if "/response/" in m.topic or (
            m.topic in buttons and m.payload)]


async def test_a_reload_onto_another_broker_empties_the_first_one(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    first, second = mosquitto(), mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, first.port, ["feed"])
    sub = await mqtt_subscriber(first, "homeassistant/#", "+/+/metrics")
    there = await mqtt_subscriber(second, "homeassistant/#")
    async with bridge(path, first) as (supervisor, ha):
        announced = configs(await sub.wait_for(lambda ms: len(configs(ms)) == 11))
        await sub.wait_for(1, topic="ws-bridge/feed/metrics")
        write_config(path, upstream.url, second.port, ["feed"])
        assert await supervisor.reload() is True
        assert set(configs(await there.wait_for(lambda ms: len(configs(ms)) == 11))) == \
            set(announced)  # the same entities, from the other broker
        gone = set(announced) | {"ws-bridge/bridge/metrics", "ws-bridge/feed/metrics"}
        await sub.wait_for(lambda ms: {m.topic for m in ms if not m.payload} >= gone)
        assert await retained_now(first, ha, "homeassistant/#", "+/+/metrics",
                                  subscribe=mqtt_subscriber) == {}


async def test_reconnect_starts_a_source_that_gave_up_anew(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    broker = mosquitto()
    await upstream.stop()  # refused: the source gives up after one attempt
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, [], controls=True)
    path.write_text(path.read_text() + f"""
  - name: once
    url: {upstream.url}
    reconnect: {{max_attempts: 1}}
    routes: [{{sink: broker}}]
  - {{name: other, url: "ws://127.0.0.1:{broker.port}/never", routes: [{{sink: broker}}]}}
""")
    sub = await mqtt_subscriber(broker, "ws-bridge/once/state", "ws-bridge/bridge/response/#")
    async with bridge(path, broker) as (_, ha):
        await reconnect_pressed(sub, ha, upstream, "once", while_in=b"failed")
        (answer,) = sub.on("ws-bridge/bridge/response/reconnect")
        assert json.loads(answer.payload) == {"status": "ok", "data": {"source": "once"}}
