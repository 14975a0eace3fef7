"""A reload that changes a sink rebuilds it without losing what was queued in it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from bridge.config.load import load_config
from bridge.supervisor import Supervisor
from bridge.upstream.state import ConnState
from tests.support.daemon import eventually
from tests.support.mosquitto import Broker, Subscriber
from tests.support.upstream import Upstream, UpstreamConn

COUNT = 20


def write_config(path: Path, url: str, port: int, qos: int) -> None:
    path.write_text(
        f"""
version: 1
sinks:
  broker:
    type: mqtt
    url: mqtt://127.0.0.1:{port}
    client_id: reload-test
    qos: {qos}
    reconnect: {{initial_delay: 50ms, max_delay: 200ms}}
sources:
  - name: feed
    url: {url}
    reconnect: {{initial_delay: 50ms}}
    routes:
      - sink: broker
        topic: reload/feed
"""
    )


async def test_a_changed_sink_is_rebuilt_and_keeps_its_queued_messages(
    upstream: Upstream,
    tmp_path: Path,
    mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        for n in range(COUNT):
            await conn.send_json({"n": n})

    upstream.handler = handler
    broker = mosquitto()
    # A persistent subscriber session, saved by a clean broker stop: whatever is published once
    # the broker is back is kept for it, however soon the bridge reconnects.
    subscriber = await mqtt_subscriber(broker, "reload/#", persistent=True)
    broker.stop()  # down: every message now waits in the sink's queue
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, qos=0)
    supervisor = Supervisor(load_config(path))
    running = asyncio.create_task(supervisor.run())
    try:
        old = await eventually(
            lambda: _queued(supervisor, COUNT), what=f"{COUNT} messages queued in the sink"
        )
        write_config(path, upstream.url, broker.port, qos=1)
        assert await supervisor.reload() is True

        new = supervisor.sinks["broker"]
        assert new is not old
        assert len(new.queue) == COUNT and len(old.queue) == 0  # handed over, not dropped
        assert supervisor.sources["feed"].client.state is ConnState.CONNECTED
        assert len(upstream.connections) == 1  # the source was not touched

        broker.start()
        await subscriber.reconnect()
        received = await subscriber.wait_for(COUNT, timeout=10.0)
        assert [json.loads(m.payload)["n"] for m in received] == list(range(COUNT))
        assert {m.qos for m in received} == {1}  # published by the rebuilt sink
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(running, 20) == 0


async def _queued(supervisor: Supervisor, count: int) -> object | None:
    sink = supervisor.sinks.get("broker")
    return sink if sink is not None and len(sink.queue) >= count else None
