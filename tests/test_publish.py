"""MQTT -> WebSocket: templates read the MQTT message, sends are paced, queued while down."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.config.model import SourceConfig
from bridge.config.outbound import OutboxSpec, RateLimitSpec
from bridge.messages import Message
from bridge.routing.context import mqtt_value
from bridge.routing.template import Context, Template
from bridge.upstream.client import SourceClient
from bridge.upstream.outgoing import Outgoing, OutgoingQueue
from bridge.upstream.ratelimit import SLACK, SendWindow
from bridge.upstream.state import ConnState
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_client import FAST

SEND = Template({"id": "{seq}", "service": "{mqtt.topic[3]}", "data": "{mqtt.payload}",
                 "from": "{mqtt.topic}"})


def test_templates_read_the_mqtt_topic_its_levels_and_the_decoded_payload() -> None:
    ctx = Context("home", mqtt=mqtt_value("ws-bridge/home/command/turn_on", b'{"x": 1}'))
    assert SEND.render(ctx) == {"id": 0, "service": "turn_on", "data": {"x": 1},
                                "from": "ws-bridge/home/command/turn_on"}
    text = Context("home", mqtt=mqtt_value("a/b/c/d", b"not json"))
    assert Template("{mqtt.payload}").render(text) == "not json"


def test_the_rate_limit_never_lets_more_than_its_messages_into_one_window() -> None:
    """5 a second, as an exchange counts them: a burst of 5, then the 6th only once the first
    is a second (and the slack) old; a bucket refilling while it bursts sent it after 0.2 s,
    and the exchange closed the connection for too many messages."""
    window = SendWindow(5, 1.0)
    assert [window.delay(100.0) for _ in range(5)] == [0.0] * 5  # the burst
    assert window.delay(100.2) == pytest.approx(0.85)  # reserved: the first's window ends at 101.05
    assert window.delay(100.2) == pytest.approx(0.85)  # the second's, at the same time
    assert [window.delay(101.5) for _ in range(3)] == [0.0] * 3  # the first 3 windows past
    assert window.delay(101.5) == pytest.approx(0.6)  # the 4th's ends at 102.1 (101.05 + 1.05)
    assert SendWindow(2, 0.0).delay(5.0) == 0.0 and SLACK == 0.05


def test_outgoing_queue_drops_expired_and_overflowing_messages_and_counts_them() -> None:
    q = OutgoingQueue(max_messages=3, max_age=10.0)
    items = [Outgoing(SEND, i, queued_at=float(i)) for i in range(4)]
    for item in items:
        q.put(item)
    assert q.dropped["overflow"] == 1  # the oldest made room
    taken = q.take(now=12.5)  # items 1 and 2 are older than 10 s
    assert taken == (items[3], items[1:3])
    assert q.dropped["expired"] == 2 and len(q) == 0


class Up:
    """A loopback upstream that records each frame with its arrival time."""

    def __init__(self, upstream: Upstream, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or asyncio.get_running_loop().time
        self.frames: list[tuple[float, Any]] = []
        self.changed = asyncio.Event()
        upstream.handler = self.handle

    async def handle(self, conn: UpstreamConn) -> None:
        while True:
            data = await conn.recv(timeout=30)
            self.frames.append((self.clock(), json.loads(data)))
            self.changed.set()

    async def wait(self, n: int) -> list[Any]:
        async with asyncio.timeout(5):
            while len(self.frames) < n:
                self.changed.clear()
                await self.changed.wait()
        return [f for _, f in self.frames]


async def start(client: SourceClient) -> asyncio.Task[None]:
    task = asyncio.create_task(client.run())
    async with asyncio.timeout(5):
        while client.state is not ConnState.CONNECTED:
            await asyncio.sleep(0.01)
    return task


def cfg(url: str, **kw: Any) -> SourceConfig:
    return SourceConfig(name="src", url=url, reconnect=FAST, **kw)


def _ignore(_: Message) -> None:
    return None


async def test_published_messages_reach_the_upstream_rendered_and_in_order_after_a_reconnect(
    upstream: Upstream,
) -> None:
    up = Up(upstream)
    client = SourceClient(cfg(upstream.url), _ignore)
    task = await start(client)
    client.publish(SEND, mqtt_value("ws-bridge/home/command/on", b"1"))
    assert await up.wait(1) == [{"id": 1, "service": "on", "data": 1,
                                 "from": "ws-bridge/home/command/on"}]
    await upstream.stop()  # down: what is published now waits
    async with asyncio.timeout(5):
        while client.state is ConnState.CONNECTED:
            await asyncio.sleep(0.01)
    for n in range(3):
        client.publish(SEND, mqtt_value(f"ws-bridge/home/command/c{n}", str(n).encode()))
    await upstream.start()
    frames = await up.wait(4)
    assert [f["service"] for f in frames[1:]] == ["c0", "c1", "c2"]
    assert [f["id"] for f in frames[1:]] == [1, 2, 3]  # {seq} of the new connection
    client.stop()
    await task


async def test_outgoing_messages_older_than_max_age_are_counted_and_dropped(
    upstream: Upstream,
) -> None:
    up = Up(upstream)
    await upstream.stop()
    skew = [0.0]  # the client's clock runs ahead of the real one by this much

    def clock() -> float:
        return time.monotonic() + skew[0]

    client = SourceClient(cfg(upstream.url, outbox=OutboxSpec(10, 0.2)), _ignore, clock=clock)
    task = asyncio.create_task(client.run())
    client.publish(SEND, mqtt_value("a/b/c/old", b"1"))
    skew[0] += 1.0  # a second later on the client's clock: the first is too old now
    client.publish(SEND, mqtt_value("a/b/c/new", b"2"))
    await upstream.start()
    assert [f["service"] for f in await up.wait(1)] == ["new"]
    assert client.stats.outgoing["expired"] == 1
    client.stop()
    await task


async def test_rate_limit_paces_everything_sent_upstream(upstream: Upstream) -> None:
    """The client's clock stands still unless the test moves it: each send past the burst
    arrives only once its turn has come on that clock, whatever the machine's load."""
    now = [1000.0]
    up = Up(upstream, clock=lambda: now[0])
    limit = RateLimitSpec(messages=2, per=0.2)  # 2 in any 0.21 s (the window and its slack)
    client = SourceClient(cfg(upstream.url, rate_limit=limit), _ignore, clock=lambda: now[0])
    task = await start(client)
    for n in range(6):
        client.publish(SEND, mqtt_value(f"a/b/c/{n}", b"0"))
    await up.wait(2)  # the burst
    for n in (4, 6):
        now[0] += 0.2 * (1 + SLACK)  # the next window (0.21 s, as the limit reckons it)
        await up.wait(n)
    assert [f["service"] for _, f in up.frames] == [str(n) for n in range(6)]
    assert [round(t - 1000.0, 6) for t, _ in up.frames] == [0.0, 0.0, 0.21, 0.21, 0.42, 0.42]
    client.stop()
    await task
