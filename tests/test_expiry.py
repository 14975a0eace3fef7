"""MQTT 5 ``message_expiry`` is what is left of it when the message is published: the interval
less the time since the bridge received the message, its wait in the queue or the outbox. One
whose expiry passed while it waited is not published, and the drop is counted and logged.

The clock is injected where the sink runs in the test process; against the real daemon the
outbox holds rows received long ago. The oracle is a real MQTT 5 subscriber's properties."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from bridge.messages import Delivery, Message
from bridge.routing.template import Template
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.mqtt_expiry import Expiry
from bridge.sinks.mqtt_properties import PropertyBuilder
from bridge.sinks.mqtt_property_list import properties
from tests.support.daemon import Spawn, eventually
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.upstream import Upstream
from tests.test_outbox import daemon_config, delivery, depth, logged, outbox, running
from tests.test_sinks_mqtt import config

pytestmark = pytest.mark.mqtt
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]


def expiry(m: Received) -> int:
    return int(m.properties["message_expiry_interval"][0])


def test_the_expiry_left_is_the_interval_less_the_wait_rounded_up_to_seconds() -> None:
    exp, m = Expiry(60.0), Message("src", "x", 1000.0)
    assert [exp.left(m, now) for now in (1000.0, 1000.001, 1010.4, 1059.5, 1060.0, 1100.0)] == [
        60, 60, 50, 1, 0, 0]
    assert exp.left(m, 990.0) == 60  # received "in the future" (the clock stepped back): no more
    assert Expiry(0.4).interval == 1 and Expiry(None).interval == 0


def test_the_property_list_carries_the_seconds_left_and_no_cache_serves_a_stale_one() -> None:
    build = PropertyBuilder(60.0, {}, "h")
    d = Delivery(Message("src", '{"a":1}', 1000.0), '{"a":1}')
    assert build(d, None, 42) == properties({"message_expiry_interval": 42,
                                             "content_type": "application/json"})
    assert build(d, None, 41) == properties({"message_expiry_interval": 41,
                                             "content_type": "application/json"})
    clocked = PropertyBuilder(60.0, {"at": Template("{now_ms}")}, "h")  # cached per ms
    assert clocked(d, None, 42) != clocked(d, None, 41)  # same message, same ms, less left
    assert properties({"message_expiry_interval": 41})[1:] in clocked(d, None, 41)


async def test_a_subscriber_gets_the_expiry_less_the_wait_and_never_an_expired_message(
    mosquitto: Make, mqtt_subscriber: Subscribe, caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "t/#")
    now = time.time()
    sink = MqttSink(config(broker, qos=1, message_expiry=60.0), wall=lambda: now)
    with caplog.at_level(logging.WARNING, "bridge.sinks.mqtt"):
        async with running(sink):
            for text, waited in (("20s", 20.4), ("expired", 61.0), ("fresh", 0.0),
                                 ("30s", 30.2)):
                sink.send(Delivery(Message("src", text, now - waited), text, "t/x"))
            got = await sub.wait_for(3)
            await eventually(logged(caplog, "dropping messages (expired)"), 5, "the drop line")
    assert [m.payload for m in got] == [b"20s", b"fresh", b"30s"]  # in order, expired left out
    # Mosquitto passes on what is left when it forwards: a second may tick over meanwhile.
    assert all(expiry(m) in (left, left - 1) for m, left in zip(got, (40, 60, 30), strict=True))


async def test_the_daemon_publishes_an_outbox_row_with_the_expiry_left_after_its_wait(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    box = outbox(tmp_path)
    now = time.time()  # rows received before a restart, one of them longer ago than the expiry
    for text, waited in (("old", 600.0), ("waited", 30.0)):
        box.put(delivery(text, at=now - waited))
    box.close()
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    path = daemon_config(tmp_path, broker, upstream)
    cfg = yaml.safe_load(path.read_text())
    cfg["sinks"]["broker"]["properties"] = {"message_expiry": "60s"}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    daemon = await spawn("run", str(path))
    (got,) = await sub.wait_for(1, timeout=15)
    await eventually(depth(tmp_path, 0), 10, "the outbox emptied")
    await eventually(in_log(lambda: daemon.log_text, "dropping messages (expired)"), 5,
                     "the drop line")
    assert got.payload == b"waited"
    assert 0 < expiry(got) <= 30  # 60 s less the 30 s it waited in the outbox, and the start
    assert [m.payload for m in sub.messages] == [b"waited"]


def in_log(read: Callable[[], str], text: str) -> Callable[[], Awaitable[bool | None]]:
    async def check() -> bool | None:
        return True if text in read() else None

    return check
