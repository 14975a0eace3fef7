"""A reload that changes a sink rebuilds it without losing what was queued in it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bridge.supervisor import Supervisor
from bridge.upstream.state import ConnState
from tests.support.daemon import eventually
from tests.support.mosquitto import Broker, Subscriber, retained_now
from tests.support.supervising import running
from tests.support.upstream import Upstream, UpstreamConn

COUNT = 20


def write_config(path: Path, url: str, port: int, qos: int, keepalive: int = 60,
                 ping: int = 20) -> None:
    path.write_text(
        f"""
version: 1
sinks:
  broker:
    type: mqtt
    url: mqtt://127.0.0.1:{port}
    client_id: reload-test
    qos: {qos}
    keepalive: {keepalive}s
    reconnect: {{initial_delay: 50ms, max_delay: 200ms}}
sources:
  - name: feed
    url: {url}
    reconnect: {{initial_delay: 50ms}}
    ping: {{interval: {ping}s}}
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
    async with running(path) as supervisor:
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


async def _queued(supervisor: Supervisor, count: int) -> object | None:
    sink = supervisor.sinks.get("broker")
    return sink if sink is not None and len(sink.queue) >= count else None


async def test_a_rebuilt_sink_connects_once_its_predecessor_has_left_the_broker(
    upstream: Upstream,
    tmp_path: Path,
    mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    # A reload that rebuilds the sink and restarts a source that is slow to stop (its upstream
    # reads nothing more, so the close handshake takes its whole grace). The old sink is
    # closed at once and the new one connects after it has left: the broker never sees the
    # two with the same client id at once (before, they knocked each other off, each
    # reconnecting, until the source had stopped).
    async def handler(conn: UpstreamConn) -> None:
        first = len(upstream.connections) == 1
        for n in range(COUNT) if first else range(COUNT, 2 * COUNT):
            await conn.send_json({"n": n})
        if first:
            conn.ws.transport.pause_reading()  # the bridge's close frame is never read
        await conn.wait_closed()

    upstream.handler = handler
    broker = mosquitto()
    subscriber = await mqtt_subscriber(broker, "reload/#")
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, qos=1)
    async with running(path) as supervisor:
        await subscriber.wait_for(COUNT, timeout=10.0)
        write_config(path, upstream.url, broker.port, qos=1, keepalive=7, ping=7)
        assert await supervisor.reload() is True
        received = await subscriber.wait_for(2 * COUNT, timeout=10.0)
        assert [json.loads(m.payload)["n"] for m in received] == list(range(2 * COUNT))
        log = broker.log_file.read_text()
        assert "already connected, closing old connection" not in log, log


async def test_a_reload_that_changes_the_topic_prefix_leaves_no_ghost_state(
    upstream: Upstream,
    tmp_path: Path,
    mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    # The sink is rebuilt under another prefix: the source's state and availability are
    # published under the new one at once (the source did not reconnect), and the old
    # prefix's retained state and availability, and the sink's old availability, are deleted.
    async def handler(conn: UpstreamConn) -> None:
        await conn.wait_closed()

    upstream.handler = handler
    broker = mosquitto()
    path = tmp_path / "bridge.yaml"
    write_config(path, upstream.url, broker.port, qos=1)
    path.write_text(path.read_text().replace(
        "qos: 1", "qos: 1\n    topic_prefix: old-prefix\n    availability: {topic: old-prefix/up}"))
    async with running(path) as supervisor:
        watch = await mqtt_subscriber(broker, "old-prefix/#", "new-prefix/#")
        await watch.wait_for(lambda ms: b"connected" in {m.payload for m in ms},
                             topic="old-prefix/feed/state")
        path.write_text(path.read_text().replace("old-prefix", "new-prefix"))
        assert await supervisor.reload() is True
        await watch.wait_for(1, topic="new-prefix/feed/state")
        retained = await retained_now(broker, None, "old-prefix/#", "new-prefix/#",
                                      subscribe=mqtt_subscriber)
        assert retained == {"new-prefix/feed/state": b"connected",
                            "new-prefix/feed/availability": b"online", "new-prefix/up": b"online"}
        assert len(upstream.connections) == 1  # the source was not touched


async def test_coalesced_turns_deliver_every_source_in_order_and_a_reload_changes_the_hold(
    upstream: Upstream,
    tmp_path: Path,
    mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Three sources at a steady rate, each message alone on its connection: the loop's turns
    # are held (coalesce) while they flow. A reload turns the hold off, then to 5ms, mid-stream.
    per_source = 300
    go = asyncio.Event()

    async def handler(conn: UpstreamConn) -> None:
        await go.wait()
        for n in range(per_source):
            await conn.send_json({"n": n})
            await asyncio.sleep(0.001)

    upstream.handler = handler
    broker = mosquitto()
    subscriber = await mqtt_subscriber(broker, "steady/#")
    path = tmp_path / "bridge.yaml"

    def write(coalesce: str) -> None:
        sources = "".join(f"""
  - name: s{i}
    url: {upstream.url}
    routes: [{{sink: broker, topic: steady/s{i}}}]""" for i in range(3))
        path.write_text(f"""
version: 1
coalesce: {coalesce}
sinks:
  broker: {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", qos: 1}}
sources:{sources}
""")

    write("0.4ms")
    caplog.set_level(logging.INFO, logger="bridge.supervisor")
    async with running(path) as supervisor:
        await upstream.wait_connections(3)
        go.set()
        await subscriber.wait_for(per_source, timeout=30.0)  # a third of the way
        write("0")
        assert await supervisor.reload() is True
        write("5ms")
        assert await supervisor.reload() is True
        received = await subscriber.wait_for(3 * per_source, timeout=30.0)
    by_source: dict[str, list[int]] = {}
    for m in received:
        by_source.setdefault(m.topic, []).append(json.loads(m.payload)["n"])
    assert by_source == {f"steady/s{i}": list(range(per_source)) for i in range(3)}
    said = [r.getMessage() for r in caplog.records if "coalesce" in r.getMessage()]
    assert said == ["reload: coalesce 0ms", "reload: coalesce 5ms"]
