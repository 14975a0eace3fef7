"""``overflow: block`` makes the sources wait, whatever the sink's queue is: in memory or the
durable outbox, through the router (the awaitable it hands back), with a real MQTT subscriber
as the judge of what arrived. The daemon reproduction is in test_outbox.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bridge.config.model import RouteSpec, SourceConfig
from bridge.messages import Message
from bridge.routing.router import Router
from bridge.routing.template import Template
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.settings import MqttSinkConfig, QueueConfig
from bridge.upstream.backoff import BackoffPolicy
from tests.support.mosquitto import Broker, Subscriber

pytestmark = pytest.mark.mqtt
FAST = BackoffPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0)
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]


async def persistent_subscriber(make: Make, subscribe: Subscribe) -> tuple[Broker, Subscriber]:
    """A stopped broker that keeps a QoS 1 subscriber's session: what is published while the
    subscriber is away waits for it, so it sees every message from the broker's first start."""
    broker = make()
    sub = await subscribe(broker, "feeds/#", persistent=True)
    await sub.close()
    broker.stop()
    return broker, sub


# -- through the router -------------------------------------------------------------------------


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "outbox"])
async def test_the_router_makes_a_source_wait_on_a_full_block_queue_of_either_kind(
    mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path, durable: bool
) -> None:
    broker, sub = await persistent_subscriber(mosquitto, mqtt_subscriber)
    queue = QueueConfig(max_messages=10, overflow="block",
                        path=str(tmp_path / "ob") if durable else None)
    sink = MqttSink(MqttSinkConfig(name="broker", host=broker.host, port=broker.port,
                                   reconnect=FAST, client_id="bridge-block", qos=1, queue=queue))
    router = Router(SourceConfig(name="feed", url="ws://127.0.0.1:1/",
                                 routes=(RouteSpec("broker", topic=Template("feeds/seq")),)),
                    {"broker": sink})
    task = asyncio.create_task(sink.run())
    try:
        waits = [router.route(Message("feed", str(i), time.time())) for i in range(10)]
        assert waits[:9] == [None] * 9  # room left: the source reads on
        assert waits[9] is not None  # full, broker down: the source must wait
        waiting = asyncio.ensure_future(waits[9])
        await asyncio.sleep(0)
        assert not waiting.done()
        broker.start()
        await asyncio.wait_for(waiting, 10)  # the broker's acks made room
        for i in range(10, 300):
            if (wait := router.route(Message("feed", str(i), time.time()))) is not None:
                await asyncio.wait_for(wait, 10)
        await sub.reconnect()
        await sub.wait_for(300, timeout=10)
    finally:
        sink.close()
        await asyncio.wait_for(task, 10)
    assert [int(m.payload) for m in sub.messages] == list(range(300))
