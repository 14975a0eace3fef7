"""Network faults for real: latency, loss and a partition on the link to the upstream or the broker.

The upstream or the broker runs in a network namespace (tests/support/netns.py) and the real
daemon reaches it over a link the test degrades (a tun relay that delays each packet, nftables
that drops a share of them) or cuts for 30 s (nftables drops SYNs and data both ways: the
half-open case). The oracle is a real MQTT subscriber on a link the faults never touch:
every number the upstream sent arrives, first seen in order, and the per-source state topic and
the broker's Last Will show when the bridge noticed, within bounds derived from the configured
ping and keepalive timeouts.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from tests.support.daemon import Daemon
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.netns import NetNs
from tests.support.upstream import Upstream, UpstreamConn

N = 100  # numbers in the stream
EVERY = 0.01  # seconds between two numbers: the stream lasts ~1 s
PARTITION = 30.0  # seconds the link stays cut: long past every timeout and backoff cap
# Timeouts the bridge is configured with; detection bounds are derived from them.
PING_INTERVAL, PING_TIMEOUT = 0.5, 1.0  # WebSocket ping, for a partition of the upstream link
KEEPALIVE = 1  # MQTT keepalive in seconds, for a partition of the broker link
STATE, STATUS = "ws-bridge/feed/state", "ws-bridge/status"

Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]
MakeUpstream = Callable[..., Awaitable[Upstream]]


class NumberedStream:
    """An exchange-like upstream: numbers ``{"n": 1}`` .. ``{"n": N}``; every new connection gets
    the whole history first (a replay, as exchanges offer), then each number as it is made."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self._more = asyncio.Condition()

    async def handler(self, conn: UpstreamConn) -> None:
        """Runs until the connection closes (the upstream cancels it then)."""
        cursor = 0
        while True:
            while cursor < len(self.sent):
                await conn.send_json({"n": self.sent[cursor]})
                cursor += 1
            async with self._more:
                await self._more.wait_for(functools.partial(self.more_than, cursor))

    def more_than(self, count: int) -> bool:
        return len(self.sent) > count

    async def produce(self) -> None:
        for n in range(1, N + 1):
            async with self._more:
                self.sent.append(n)
                self._more.notify_all()
            await asyncio.sleep(EVERY)  # the upstream's own pace, not a wait for an event


@dataclass
class Rig:
    """One fault test's world: the namespace, the stream, the bridge and the oracle."""

    ns: NetNs
    stream: NumberedStream
    upstream: Upstream
    broker: Broker
    sub: Subscriber
    daemon: Daemon

    async def delivered(self) -> list[int]:
        """Waits until every number reached the subscriber; returns them first seen, in order."""
        want = set(range(1, N + 1))
        got = await self.sub.wait_for(lambda ms: set(numbers(ms)) >= want, timeout=20)
        return list(dict.fromkeys(numbers(got)))

    async def stream_started(self, seen: int) -> asyncio.Task[None]:
        """Starts the stream; returns once ``seen`` numbers arrived (the fault comes mid-flight)."""
        producing = asyncio.create_task(self.stream.produce())
        await self.sub.wait_for(lambda ms: len(numbers(ms)) >= seen, timeout=10)
        return producing


async def since(start: float, event: Awaitable[Any]) -> float:
    """Seconds from ``start`` (loop time) until ``event`` happened."""
    await event
    return asyncio.get_running_loop().time() - start


def numbers(got: list[Received]) -> list[int]:
    return [json.loads(m.payload)["n"] for m in got if m.topic == "feeds/seq"]


def last_is(payload: bytes) -> Callable[[list[Received]], bool]:
    return lambda ms: bool(ms) and ms[-1].payload == payload


def changed_from(payload: bytes) -> Callable[[list[Received]], bool]:
    return lambda ms: bool(ms) and ms[-1].payload != payload


def config(home: Path, upstream: Upstream, broker_url: str, *, ping_timeout: float,
           keepalive: int) -> Path:
    cfg: dict[str, Any] = {
        "version": 1,
        "sinks": {"broker": {
            "type": "mqtt", "url": broker_url, "qos": 1, "client_id": "bridge-netfaults",
            "keepalive": f"{keepalive}s", "availability": {"topic": STATUS},
            "reconnect": {"initial_delay": "50ms", "max_delay": "300ms"},
            "queue": {"path": str(home / "outbox")}}},
        "defaults": {"connect_timeout": "5s",
                     "ping": {"interval": f"{PING_INTERVAL}s", "timeout": f"{ping_timeout}s"},
                     "reconnect": {"initial_delay": "50ms", "max_delay": "300ms"}},
        "sources": [{"name": "feed", "url": upstream.url,
                     "dedup": {"key": "{msg.n}", "window": 10 * N},
                     "routes": [{"sink": "broker", "topic": "feeds/seq"}]}],
    }
    home.mkdir()
    path = home / "bridge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest_asyncio.fixture
async def rig(netns: Callable[[], NetNs], mosquitto: Make, mqtt_subscriber: Subscribe,
              upstream_factory: MakeUpstream,
              tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """``await rig(link, quiet, slow=False)``: the upstream (``link="upstream"``) or the broker
    (``"broker"``) in a namespace, the bridge running and its source connected, the stream not
    yet started. ``quiet``: long ping and keepalive timeouts, for faults the bridge must ride
    out without reconnecting; otherwise the short ones detection is measured against.
    ``slow``: the bridge reaches the namespace over a link with 300 ms +- 50 ms each way."""
    made: list[Rig] = []

    async def make(link: str, quiet: bool, slow: bool = False) -> Rig:
        ns, stream = netns(), NumberedStream()
        far = ns.delay(300, 50) if slow else ns.fault_addr  # where the bridge reaches the namespace
        if link == "upstream":
            upstream = await upstream_factory(host=far, listen=ns.listen)
            broker = mosquitto()
            broker_url = f"mqtt://{broker.host}:{broker.port}"
        else:
            upstream = await upstream_factory()
            broker = mosquitto(netns=ns.name, host=ns.clean_addr)
            broker_url = f"mqtt://{far}:{broker.port}"
        upstream.handler = stream.handler
        sub = await mqtt_subscriber(broker, "feeds/#", "ws-bridge/#")
        path = config(tmp_path / link, upstream, broker_url,
                      ping_timeout=5.0 if quiet else PING_TIMEOUT,
                      keepalive=5 if quiet else KEEPALIVE)
        made.append(Rig(ns, stream, upstream, broker, sub, await Daemon.spawn("run", str(path))))
        await sub.wait_for(last_is(b"connected"), timeout=10, topic=STATE)
        return made[-1]

    yield make
    for one in made:
        await one.daemon.kill()


@pytest.mark.parametrize("link", ["upstream", "broker"])
async def test_latency_of_300ms_each_way_delivers_every_number_in_order_without_reconnecting(
    rig: Callable[..., Awaitable[Rig]], link: str
) -> None:
    r = await rig(link, quiet=True, slow=True)
    await (await r.stream_started(seen=1))
    assert await r.delivered() == r.stream.sent == list(range(1, N + 1))
    assert r.ns.carried > 0  # the bridge's traffic crossed the slow link
    assert len(r.upstream.connections) == 1
    assert "lost the connection" not in r.daemon.log_text
    assert r.sub.payloads(STATE)[-1] == b"connected"


@pytest.mark.parametrize("link", ["upstream", "broker"])
async def test_loss_of_5_percent_delivers_every_number_in_order_without_reconnecting(
    rig: Callable[..., Awaitable[Rig]], link: str
) -> None:
    r = await rig(link, quiet=True)
    r.ns.loss(5)
    await (await r.stream_started(seen=1))
    assert await r.delivered() == r.stream.sent == list(range(1, N + 1))
    assert r.ns.dropped() > 0  # packets were lost, and TCP sent them again
    assert len(r.upstream.connections) == 1
    assert "lost the connection" not in r.daemon.log_text
    assert r.sub.payloads(STATE)[-1] == b"connected"


@pytest.mark.timeout(150)
async def test_a_30s_partition_of_either_link_is_detected_in_time_and_nothing_is_lost(
    rig: Callable[..., Awaitable[Rig]]
) -> None:
    """Both partitions at once, each in its own namespace with its own broker and bridge: the
    suite pays the 30 s once."""
    upstream_link = await rig("upstream", quiet=False)
    broker_link = await rig("broker", quiet=False)
    await asyncio.gather(partitioned_upstream_link(upstream_link),
                         partitioned_broker_link(broker_link))


async def partitioned_upstream_link(r: Rig) -> None:
    """The half-open upstream is detected by ping; the upstream's replay fills the gap."""
    producing = await r.stream_started(seen=20)
    loop = asyncio.get_running_loop()
    cut_at = loop.time()
    r.ns.partition()  # SYNs and data dropped both ways: the open connection goes half-open
    bound = 3 * (PING_INTERVAL + PING_TIMEOUT)  # a ping is due within the interval, then times out
    await r.sub.wait_for(changed_from(b"connected"), timeout=bound + 5, topic=STATE)
    detected = loop.time() - cut_at
    await asyncio.sleep(PARTITION)  # the fault's length: reconnects meanwhile find no route
    assert len(r.upstream.connections) == 1  # no SYN got through
    assert r.ns.dropped() > 0
    r.ns.heal()
    await producing
    assert await r.delivered() == r.stream.sent == list(range(1, N + 1))
    await r.sub.wait_for(last_is(b"connected"), timeout=10, topic=STATE)
    assert len(r.upstream.connections) >= 2
    assert detected <= bound, f"half-open upstream noticed after {detected:.2f}s"
    assert "reconnecting in" in r.daemon.log_text


async def partitioned_broker_link(r: Rig) -> None:
    """The silent broker is detected by keepalive; the outbox holds the stream meanwhile."""
    producing = await r.stream_started(seen=20)
    loop = asyncio.get_running_loop()
    cut_at = loop.time()
    r.ns.partition()
    # The bridge's client gives up after 2 x keepalive without data in (checked every keepalive
    # / 2); the broker drops the silent client after 1.5 x keepalive and publishes its Last Will.
    bound = 4 * KEEPALIVE + 5
    lost = r.daemon.wait_log("lost the connection to the broker", timeout=bound)
    will = r.sub.wait_for(last_is(b"offline"), timeout=bound, topic=STATUS)
    lost_after, will_after = await asyncio.gather(since(cut_at, lost), since(cut_at, will))
    await asyncio.sleep(PARTITION)  # the fault's length: the outbox holds what arrives meanwhile
    r.ns.heal()
    await producing
    assert await r.delivered() == r.stream.sent == list(range(1, N + 1))
    await r.sub.wait_for(last_is(b"online"), timeout=10, topic=STATUS)
    assert lost_after <= 3 * KEEPALIVE + 1, f"the bridge noticed after {lost_after:.2f}s"
    # Mosquitto sweeps its clients' keepalives on its own loop, seconds apart (measured: ~3.5 s).
    assert will_after <= 3 * KEEPALIVE + 3, f"the broker's will came {will_after:.2f}s after"
    assert len(r.upstream.connections) == 1  # the upstream side never noticed anything
