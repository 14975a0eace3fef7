"""Both directions through a real Mosquitto: MQTT publishes reach the upstream, RPC round trips."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gmqtt

from bridge.config.load import load_config
from bridge.supervisor import Supervisor
from tests.support.mosquitto import Broker
from tests.support.upstream import Upstream
from tests.test_publish import Up
from tests.test_rpc import rpc_server


async def requester(broker: Broker) -> tuple[Any, list[tuple[str, bytes, dict[str, Any]]]]:
    got: list[tuple[str, bytes, dict[str, Any]]] = []
    client = gmqtt.Client("test-requester")
    client.reconnect_retries = -2
    client.on_message = lambda c, t, p, q, props: got.append((t, p, props)) or 0
    await client.connect(broker.host, broker.port, version=5)
    client.subscribe(gmqtt.Subscription("replies/#", qos=1))
    return client, got


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_mqtt_publishes_and_rpc_round_trip_through_mosquitto(
    tmp_path: Path, upstream: Upstream, mosquitto: Callable[..., Broker],
) -> None:
    broker = mosquitto()
    up = Up(upstream)
    config = tmp_path / "both.yaml"
    config.write_text(f"""
version: 1
sinks: {{broker: {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", topic_prefix: ws-bridge}}}}
sources:
  - name: home
    url: {upstream.url}
    reconnect: {{initial_delay: 50ms}}
    publish:
      - from: {{sink: broker, topic: ws-bridge/home/command/+}}
        send:
          id: "{{seq}}"
          type: call_service
          service: "{{mqtt.topic[3]}}"
          data: "{{mqtt.payload}}"
    rpc: {{sink: broker, send: {{type: rpc, id: "{{seq}}", data: "{{mqtt.payload}}"}},
           match: {{type: rpc_result}}, error: {{type: rpc_error}}, timeout: 1s}}
""")
    supervisor = Supervisor(load_config(config))
    run = asyncio.create_task(supervisor.run())
    client, got = await requester(broker)
    try:
        await until(lambda: supervisor.sinks["broker"].up
                    and supervisor.sources["home"].client.state.value == "connected")
        # SUBACK is not visible from here: a probe, repeated until one arrives upstream, shows
        # that the sink's subscription is live.
        async with asyncio.timeout(5):
            while not up.frames:
                client.publish("ws-bridge/home/command/probe", b"{}", qos=1)
                up.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(up.changed.wait(), 0.1)
        client.publish("ws-bridge/home/command/turn_on", b'{"entity": "light.x"}', qos=1)
        async with asyncio.timeout(5):
            while not any(f.get("service") == "turn_on" for _, f in up.frames):
                up.changed.clear()
                await up.changed.wait()
        frames = [f for _, f in up.frames]
        turn_on = [f for f in frames if f.get("service") == "turn_on"]
        assert turn_on == [{"id": turn_on[0]["id"], "type": "call_service", "service": "turn_on",
                            "data": {"entity": "light.x"}}]
        assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)  # {seq} increases
        upstream.handler = rpc_server
        await upstream.restart()
        await until(lambda: supervisor.sources["home"].client.state.value == "connected")
        for n, method in enumerate(("echo", "fail", "ignore")):
            client.publish("ws-bridge/home/rpc", json.dumps({"method": method}), qos=1,
                           response_topic=f"replies/{n}", correlation_data=f"c{n}".encode())
        await until(lambda: len(got) == 3)
        by_topic = {t: (json.loads(p), props) for t, p, props in got}
        assert by_topic["replies/0"][0]["type"] == "rpc_result"
        assert by_topic["replies/0"][1]["correlation_data"] == [b"c0"]
        assert by_topic["replies/1"][0]["error"] == "upstream error"
        assert by_topic["replies/2"][0] == {"error": "no reply within 1s"}
        assert by_topic["replies/2"][1]["correlation_data"] == [b"c2"]
    finally:
        await client.disconnect()
        supervisor.request_stop()
        await run
