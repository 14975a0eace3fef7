"""The issue's "Done when" for connection pools (issue 16), at its scale: the two configs of the
issue (subscribe messages, and streams in the URL) carry 10,000 items against the
limit-enforcing loopback exchange, through the kill of one connection, a reconnect storm and a
reload. The oracle is what a user sees (the MQTT subscriber, the file on disk) and the
exchange's own record of what each connection sent and carries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from bridge.supervisor import Supervisor
from tests.support.daemon import eventually
from tests.support.exchange import Exchange
from tests.support.mosquitto import Broker, Subscriber
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_pool import all_connected, running

N = 10_000
ITEMS = [f"s{i:05d}usdt@trade" for i in range(N)]
NEW = [f"n{i:05d}usdt@trade" for i in range(700)]


def subscribe_config(url: str, items_file: Path, sink: str) -> str:
    """The issue's first config: 1000 items a connection, 5 subscribe messages of 200 each,
    within the exchange's 5 messages a second and 10 new connections a second."""
    return f"""
version: 1
sinks: {{out: {sink}}}
sources:
  - name: binance
    url: {url}
    reconnect: {{initial_delay: 10ms, max_delay: 50ms}}
    subscribe:
      - each_file: {items_file}
        batch: 200
        send: {{method: SUBSCRIBE, params: "{{items}}", id: "{{seq}}"}}
        expect: {{result: null}}
        reject: {{error: {{}}}}
    unsubscribe:
      - each: subscribe
        send: {{method: UNSUBSCRIBE, params: "{{items}}", id: "{{seq}}"}}
    pool: {{per_connection: 1000, max_connections: 50, connect_every: 100ms}}
    rate_limit: {{messages: 5, per: 1s}}
    routes: [{{sink: out, topic: "binance/{{msg.s}}/trade", qos: 0}}]
"""


def combined_config(url: str, items_file: Path, out: Path) -> str:
    """The issue's second config: the streams in the URL, 200 a connection (50 connections),
    opened 20 ms apart for an exchange that admits 50 new connections a second."""
    return f"""
version: 1
sinks: {{out: {{type: file, path: "{out}", format: raw}}}}
sources:
  - name: binance
    url: "{url}?streams={{items}}"
    reconnect: {{initial_delay: 10ms, max_delay: 50ms}}
    pool: {{per_connection: 200, each_file: {items_file}, url_join: "/", connect_every: 20ms}}
    routes: [{{sink: out}}]
"""


def carrier(exchange: Exchange, item: str) -> UpstreamConn:
    """The open connection that carries ``item``, by the exchange's record."""
    return next(c for c, mine in exchange.streams.items() if not c.closed and item in mine)


async def carried(exchange: Exchange, items: list[str]) -> None:
    """Until the exchange's open connections carry exactly ``items``, each once."""
    async def check() -> bool | None:
        streams = [s for c, mine in list(exchange.streams.items()) if not c.closed for s in mine]
        return True if len(streams) == len(items) and set(streams) == set(items) else None
    await eventually(check, timeout=20.0, what=f"{len(items)} items carried", interval=0.05)


async def storm(upstream: Upstream, exchange: Exchange, supervisor: Supervisor,
                connections: int, every: float) -> None:
    """Every connection dropped at once: they come back ``every`` apart by the exchange's clock,
    a 429 (if the exchange's window still counts the last ones) is followed by a successful
    opening, and every item is carried again."""
    start = len(upstream.handshakes)
    await upstream.kill()
    await carried(exchange, ITEMS)
    await all_connected(supervisor, connections)
    back = upstream.handshakes[start:]
    statuses = [h.status for h in back]  # a 429 refused would be tried again, and must succeed
    assert set(statuses) <= {101, 429} and statuses.count(101) == connections, statuses
    after = [h.at - back[0].at for h in back]
    # A connection never opens before its slot; a handshake seen late makes the next seem
    # early, so each is judged from the first with two slots to spare (as in test_pool.py).
    assert all(gap >= (k - 2) * every for k, gap in enumerate(after)), after
    assert after[-1] >= (connections - 3) * every, after


async def test_ten_thousand_items_in_subscribe_messages_through_kill_storm_and_reload(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    exchange = Exchange(upstream, max_streams=1024, max_rate=5, max_opens=10)
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "binance/#")
    items_file, path = tmp_path / "streams.txt", tmp_path / "bridge.yaml"
    items_file.write_text("\n".join(ITEMS) + "\n")
    sink = f'{{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", qos: 0}}'
    path.write_text(subscribe_config(upstream.url, items_file, sink))

    def delivered() -> Counter[str]:
        return Counter(r.topic.split("/")[1] for r in sub.messages)

    async with running(path) as supervisor:
        # every item delivers: 10 connections, each 5 SUBSCRIBEs of 200 items
        await carried(exchange, ITEMS)
        await all_connected(supervisor, 10)
        assert await exchange.publish(1) == N
        await sub.wait_for(N, timeout=20.0)
        assert delivered() == Counter(ITEMS)
        first = list(upstream.connections)
        assert len(first) == 10 and all(
            [(m, len(p)) for m, p in exchange.log[c]] == [("SUBSCRIBE", 200)] * 5 for c in first)

        # one connection killed: only its 1000 items are subscribed again, on a new one
        victim = carrier(exchange, ITEMS[3000])
        share, before = set(exchange.streams[victim]), {c: len(exchange.log[c]) for c in first}
        victim.kill()
        await upstream.wait_connections(11, timeout=10.0)
        await carried(exchange, ITEMS)
        successor = upstream.connections[10]
        assert len(upstream.handshakes) == 11  # the victim's alone came back
        assert exchange.streams[successor] == share == set(ITEMS[3000:4000])
        assert [(m, len(p)) for m, p in exchange.log[successor]] == [("SUBSCRIBE", 200)] * 5
        assert all(len(exchange.log[c]) == before[c] and not c.closed
                   for c in first if c is not victim)

        # a reconnect storm: 10 connections back 100 ms apart, every item delivers again
        await storm(upstream, exchange, supervisor, 10, 0.1)
        assert await exchange.publish(2) == N
        await sub.wait_for(2 * N, timeout=20.0)
        assert delivered() == Counter(ITEMS * 2)

        # a reload removing 400 + 100 items and adding 700: the two connections with room take
        # 500 of them on their sockets, one new connection the other 200; the rest hear nothing
        live = [c for c in upstream.connections if not c.closed]
        third, seventh = carrier(exchange, ITEMS[3000]), carrier(exchange, ITEMS[7000])
        before = {c: len(exchange.log[c]) for c in live}
        kept = ITEMS[:3000] + ITEMS[3400:7000] + ITEMS[7100:]
        items_file.write_text("\n".join(kept + NEW) + "\n")
        assert await supervisor.reload()
        await carried(exchange, kept + NEW)
        await all_connected(supervisor, 11)
        assert exchange.streams[third] == set(ITEMS[3400:4000] + NEW[:400])
        assert exchange.streams[seventh] == set(ITEMS[7100:8000] + NEW[400:500])
        assert exchange.streams[upstream.connections[-1]] == set(NEW[500:700])
        assert exchange.log[third][before[third]:] == [
            ("UNSUBSCRIBE", ITEMS[3000:3200]), ("UNSUBSCRIBE", ITEMS[3200:3400]),
            ("SUBSCRIBE", NEW[:200]), ("SUBSCRIBE", NEW[200:400])]
        assert exchange.log[seventh][before[seventh]:] == [
            ("UNSUBSCRIBE", ITEMS[7000:7100]), ("SUBSCRIBE", NEW[400:500])]
        assert len(upstream.connections) == len(first) + 1 + 10 + 1
        for conn in live:
            assert not conn.closed
            if conn not in (third, seventh):
                assert len(exchange.log[conn]) == before[conn]
        assert await exchange.publish(3) == N + 700 - 500
        await sub.wait_for(3 * N + 200, timeout=20.0)
    assert delivered() == Counter(ITEMS * 2 + kept + NEW)
    assert not [c for c in upstream.connections if c.close_code == 1008]  # never too many


async def test_ten_thousand_items_in_the_url_through_kill_storm_and_reload(
    upstream: Upstream, tmp_path: Path
) -> None:
    exchange = Exchange(upstream, max_streams=1024, max_rate=5, max_opens=50)
    items_file, path, out = tmp_path / "streams.txt", tmp_path / "bridge.yaml", tmp_path / "out"
    items_file.write_text("\n".join(ITEMS) + "\n")
    path.write_text(combined_config(upstream.url, items_file, out))

    async def written(want: int) -> Counter[str]:
        async def check() -> Counter[str] | None:
            lines = out.read_text().splitlines() if out.exists() else []
            return Counter(json.loads(line)["s"] for line in lines) if len(lines) >= want \
                else None
        return await eventually(check, timeout=20.0, what=f"{want} lines", interval=0.1)

    async with running(path) as supervisor:
        # every item delivers: 50 connections, each with its 200 streams in the URL
        await carried(exchange, ITEMS)
        await all_connected(supervisor, 50)
        first = list(upstream.connections)
        assert len(first) == 50
        assert all(len(c.query["streams"].split("/")) == 200 for c in first)
        assert await exchange.publish(1) == N
        assert await written(N) == Counter(ITEMS)

        # one connection killed: a new one with the same 200 streams, the others untouched
        victim = carrier(exchange, ITEMS[3000])
        victim.kill()
        await upstream.wait_connections(51, timeout=10.0)
        await carried(exchange, ITEMS)
        assert upstream.connections[50].query == victim.query
        assert len(upstream.handshakes) == 51  # the victim's alone came back
        assert all(not c.closed for c in first if c is not victim)

        # a reconnect storm: 50 connections back 20 ms apart, every item delivers again
        await storm(upstream, exchange, supervisor, 50, 0.02)
        assert await exchange.publish(2) == N
        assert await written(2 * N) == Counter(ITEMS * 2)

        # a reload removing 50 items of one connection and adding 250: that connection is
        # replaced (its URL changes) with 50 of them, a new one carries the other 200
        live = [c for c in upstream.connections if not c.closed]
        fifth = carrier(exchange, ITEMS[1000])
        kept = ITEMS[:1000] + ITEMS[1050:]
        items_file.write_text("\n".join(kept + NEW[:250]) + "\n")
        assert await supervisor.reload()
        await carried(exchange, kept + NEW[:250])
        await all_connected(supervisor, 51)
        assert await fifth.wait_closed(timeout=10.0) is not None
        replaced, added = upstream.connections[-2:]
        assert {replaced.query["streams"], added.query["streams"]} == {
            "/".join(ITEMS[1050:1200] + NEW[:50]), "/".join(NEW[50:250])}
        assert all(not c.closed for c in live if c is not fifth)
        assert len(upstream.connections) == len(first) + 1 + 50 + 2
        assert await exchange.publish(3) == N + 200
        assert await written(3 * N + 200) == Counter(ITEMS * 2 + kept + NEW[:250])
