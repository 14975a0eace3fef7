"""Connection pools against a loopback exchange that enforces limits the way real ones do: every
item delivers, a killed connection resubscribes only its share, a reload touches only the
connections whose items changed, a reconnect storm keeps to connect_every, and an upstream
that closes for too many subscriptions says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config.load import load_config
from bridge.status_table import format_status_table
from bridge.supervisor import Supervisor
from bridge.upstream.state import ConnState
from tests.support.daemon import eventually
from tests.support.exchange import Exchange
from tests.support.mosquitto import Broker, Subscriber
from tests.support.supervising import running
from tests.support.upstream import Upstream

ITEMS = [f"s{i:03d}usdt@trade" for i in range(300)]  # 6 connections of 50


def pool_yaml(url: str, items: list[str], *, sink: str, per: int = 50, every: str = "50ms",
              batch: int = 10, rate: int = 5, extra: str = "") -> str:
    listed = ", ".join(items)
    return f"""
version: 1
sinks: {{{sink}}}
sources:
  - name: binance
    url: {url}
    reconnect: {{initial_delay: 10ms, max_delay: 50ms}}
    subscribe:
      - each: [{listed}]
        batch: {batch}
        send: {{method: SUBSCRIBE, params: "{{items}}", id: "{{seq}}"}}
        expect: {{result: null}}
        reject: {{error: {{}}}}
    unsubscribe:
      - each: subscribe
        send: {{method: UNSUBSCRIBE, params: "{{items}}", id: "{{seq}}"}}
    pool: {{per_connection: {per}, max_connections: 20, connect_every: {every}}}
    rate_limit: {{messages: {rate}, per: 1s}}
    routes: [{{sink: out, topic: "binance/{{msg.s}}", qos: 0}}]
{extra}"""


FILE_SINK = 'out: {type: file, path: "/dev/null", format: raw}'


def exchange_and_config(upstream: Upstream, tmp_path: Path, items: list[str] = ITEMS,
                        **yaml: Any) -> tuple[Exchange, Path]:
    """An exchange with its default limits, and a pool config of ``items`` into a file sink."""
    exchange, path = Exchange(upstream), tmp_path / "bridge.yaml"
    path.write_text(pool_yaml(upstream.url, items, sink=FILE_SINK, **yaml))
    return exchange, path


async def all_connected(supervisor: Supervisor, connections: int) -> None:
    async def check() -> bool | None:
        if "binance" not in supervisor.sources:
            return None  # not started yet
        client = supervisor.sources["binance"].client
        snap = await supervisor.snapshot()
        up = sum(snap.sources[0].connections_up.values())
        return True if client.state is ConnState.CONNECTED and up == connections else None

    await eventually(check, timeout=15.0, what=f"{connections} pooled connections up")


async def test_every_item_delivers_through_the_exchanges_limits(
    upstream: Upstream, tmp_path: Path, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Callable[..., Awaitable[Subscriber]],
) -> None:
    exchange = Exchange(upstream, max_streams=50, max_rate=10, max_opens=10)
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "binance/#")
    path = tmp_path / "bridge.yaml"
    sink = f'out: {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", qos: 0}}'
    path.write_text(pool_yaml(upstream.url, ITEMS, sink=sink))
    async with running(path) as supervisor:
        await all_connected(supervisor, 6)
        assert await exchange.publish() == len(ITEMS)
        await sub.wait_for(len(ITEMS), timeout=15.0)
        snap = (await supervisor.snapshot()).sources[0]
        sent = [len(log) for log in exchange.log.values()]
    assert {r.topic for r in sub.messages} == {f"binance/{item}" for item in ITEMS}
    assert len(upstream.connections) == 6 and sent == [5] * 6  # 5 batches of 10 each
    assert snap.items == snap.items_up == 300 and sum(snap.reconnects.values()) == 0


async def test_an_item_the_exchange_refuses_is_logged_once_and_counted_not_fatal(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    delisted = ITEMS[3]
    exchange = Exchange(upstream, max_rate=10, delisted={delisted})
    path = tmp_path / "bridge.yaml"
    path.write_text(pool_yaml(upstream.url, ITEMS[:20], sink=FILE_SINK, per=10, batch=1,
                              rate=8))
    caplog.set_level(logging.INFO)
    async with running(path) as supervisor:
        await all_connected(supervisor, 2)
        first = upstream.connections[0]
        first.kill()  # it subscribes its share again, the delisted item included
        await upstream.wait_connections(3, timeout=10.0)
        await all_connected(supervisor, 2)
        snap = (await supervisor.snapshot()).sources[0]
        carried = set(exchange.streams[upstream.connections[2]])
    assert carried == set(ITEMS[:10]) - {delisted}
    assert snap.items == 20 and snap.items_up == 19 and snap.recovery["item_error"] == 1
    refusals = [r.getMessage() for r in caplog.records if "subscribe refused" in r.getMessage()]
    assert len(refusals) == 1 and delisted in refusals[0] and ITEMS[4] not in refusals[0]
    assert sum(snap.reconnects.values()) == 1  # the kill, nothing for the refusal


async def test_killing_one_connection_resubscribes_only_its_share(
    upstream: Upstream, tmp_path: Path
) -> None:
    exchange, path = exchange_and_config(upstream, tmp_path)
    async with running(path) as supervisor:
        await all_connected(supervisor, 6)
        victim = upstream.connections[2]
        carried = set(exchange.streams[victim])
        before = {conn: len(log) for conn, log in exchange.log.items()}
        victim.kill()
        await upstream.wait_connections(7, timeout=10.0)
        await all_connected(supervisor, 6)
        after = {conn: len(log) for conn, log in exchange.log.items()}
        successor = upstream.connections[6]
        assert exchange.streams[successor] == carried and len(carried) == 50
    assert all(after[conn] == count for conn, count in before.items() if conn is not victim)


async def test_a_reload_adding_and_removing_items_touches_only_the_connections_concerned(
    upstream: Upstream, tmp_path: Path
) -> None:
    exchange, path = exchange_and_config(upstream, tmp_path)
    added = [f"new{i:02d}usdt@trade" for i in range(60)]
    async with running(path) as supervisor:
        await all_connected(supervisor, 6)
        first = list(upstream.connections)
        before = {conn: len(log) for conn, log in exchange.log.items()}
        removed = ITEMS[:5]  # from the first connection: room for 5 of the new ones there
        path.write_text(pool_yaml(upstream.url, ITEMS[5:] + added, sink=FILE_SINK))
        assert await supervisor.reload()
        await upstream.wait_connections(8, timeout=10.0)
        await all_connected(supervisor, 8)

        async def settled() -> bool | None:
            return True if exchange.streams[first[0]] == set(ITEMS[5:50]) | set(added[:5]) \
                else None
        await eventually(settled, timeout=10.0, what="the first connection's new share")
        news = upstream.connections[6:]
        assert exchange.streams[news[0]] == set(added[5:55])
        assert exchange.streams[news[1]] == set(added[55:])
        assert exchange.log[first[0]][before[first[0]]:] == [
            ("UNSUBSCRIBE", removed), ("SUBSCRIBE", added[:5])]
        for conn in first[1:]:  # the other connections: same socket, nothing sent
            assert len(exchange.log[conn]) == before[conn] and not conn.closed
        assert len(upstream.connections) == 8  # none of the first six was replaced


async def test_a_reconnect_storm_opens_connections_connect_every_apart(
    upstream: Upstream, tmp_path: Path
) -> None:
    _, path = exchange_and_config(upstream, tmp_path, every="150ms")
    async with running(path) as supervisor:
        await all_connected(supervisor, 6)
        start = len(upstream.handshakes)
        await upstream.kill()  # a network blip: every connection drops at once
        await upstream.wait_handshakes(start + 6, timeout=10.0)
        await all_connected(supervisor, 6)
    opened = [h.at for h in upstream.handshakes]
    # By the upstream's own clock. A connection never opens before its slot, but on a busy
    # host a handshake may be seen late (a slot or more), and one on time then seems early:
    # each is judged from the first with two slots to spare, the six over at least three.
    for storm in (opened[:6], opened[start:start + 6]):  # the first start, then the storm
        after = [at - storm[0] for at in storm]
        assert all(gap >= (k - 2) * 0.15 for k, gap in enumerate(after)), after
        assert after[-1] >= 0.45, after  # without spacing they come back within ~50 ms


async def test_a_429_on_the_upgrade_lengthens_the_spacing(
    upstream: Upstream, tmp_path: Path
) -> None:
    Exchange(upstream, max_opens=1)  # one new connection a second; connect_every says 50ms
    path = tmp_path / "bridge.yaml"
    items = ITEMS[:150]
    path.write_text(pool_yaml(upstream.url, items, sink=FILE_SINK, every="50ms"))
    async with running(path) as supervisor:
        await all_connected(supervisor, 3)
    statuses = [h.status for h in upstream.handshakes]
    assert statuses.count(101) == 3 and 429 in statuses
    refused = len([s for s in statuses if s == 429])
    # Without lengthening, 50 ms apart over the 2 s or more the exchange needs, there would
    # have been about 40 refusals; doubling after each keeps it to a handful.
    assert refused <= 12, statuses


@pytest.mark.parametrize(("limits", "config", "reason"), [
    ({"max_streams": 40}, {}, "too many subscriptions"),  # the config believes 50
    ({"max_rate": 3}, {"batch": 1, "rate": 8}, "too many messages"),
], ids=["subscriptions", "messages"])
async def test_a_close_for_too_many_shows_its_reason_in_log_and_status(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    limits: dict[str, int], config: dict[str, Any], reason: str,
) -> None:
    Exchange(upstream, **limits)
    path = tmp_path / "bridge.yaml"
    path.write_text(pool_yaml(upstream.url, ITEMS[:100], sink=FILE_SINK, **config))
    caplog.set_level(logging.INFO)
    async with running(path) as supervisor:
        async def closed() -> str | None:
            snaps = (await supervisor.snapshot()).sources
            why = snaps[0].last_error if snaps else None
            return why if why and "too many" in why else None
        why = await eventually(closed, timeout=10.0, what="the close reason in the status")
        table = format_status_table(None, await supervisor.snapshot())
    assert f"code 1008, {reason}" in why and f"code 1008, {reason}" in table
    assert any(reason in r.getMessage() and "connection closed" in r.getMessage()
               for r in caplog.records if r.levelno >= logging.WARNING)


async def test_items_in_the_url_combined_streams(upstream: Upstream, tmp_path: Path) -> None:
    exchange = Exchange(upstream)
    config = tmp_path / "bridge.yaml"
    items = ITEMS[:30]
    config.write_text(f"""
version: 1
sinks: {{out: {{type: file, path: "{tmp_path / 'out.jsonl'}", format: raw}}}}
sources:
  - name: combined
    url: "{upstream.url}?streams={{items}}"
    pool: {{per_connection: 20, each: [{", ".join(items)}], url_join: "/"}}
    routes: [{{sink: out}}]
""")
    async with running(config) as supervisor:
        await upstream.wait_connections(2, timeout=10.0)

        async def written() -> int | None:
            await exchange.publish()
            lines = (tmp_path / "out.jsonl").read_text().splitlines() \
                if (tmp_path / "out.jsonl").exists() else []
            return len({line for line in lines}) if len(set(lines)) >= 30 else None
        await eventually(written, timeout=10.0, what="every stream written", interval=0.2)
        first, second = upstream.connections[:2]
        assert [exchange.streams[c] for c in (first, second)] == [
            set(items[:20]), set(items[20:])]
        config.write_text(config.read_text().replace(items[-1], f"{items[-1]}, extra@trade"))
        assert await supervisor.reload()  # the second connection's URL changes: a new one
        third = (await upstream.wait_connections(3, timeout=10.0))[2]
        assert third.query["streams"].split("/") == [*items[20:], "extra@trade"]
        assert await second.wait_closed(timeout=10.0) is not None
        assert not first.closed


async def test_two_shards_carry_each_item_of_a_pool_exactly_once(
    upstream: Upstream, tmp_path: Path
) -> None:
    exchange, path = exchange_and_config(upstream, tmp_path, items=ITEMS[:120])
    shards = [Supervisor(load_config(path), shard=(k, 2)) for k in range(2)]
    tasks = [asyncio.create_task(s.run()) for s in shards]
    try:
        async def carried() -> list[str] | None:
            streams = [s for conn, mine in list(exchange.streams.items()) if not conn.closed
                       for s in mine]
            return streams if len(streams) >= 120 else None
        streams = await eventually(carried, timeout=15.0, what="every item subscribed")
        parts = [set(s.config.sources[0].pool.items) for s in shards]  # type: ignore[union-attr]
    finally:
        for s in shards:
            s.request_stop()
        assert [await asyncio.wait_for(t, 20) for t in tasks] == [0, 0]
    assert sorted(streams) == sorted(ITEMS[:120])  # each once, across both processes' pools
    assert parts[0] and parts[1] and not parts[0] & parts[1]


async def test_a_reload_changing_the_subscribe_message_resubscribes_every_connection_live(
    upstream: Upstream, tmp_path: Path
) -> None:
    exchange, path = exchange_and_config(upstream, tmp_path, items=ITEMS[:100], batch=25)
    async with running(path) as supervisor:
        await all_connected(supervisor, 2)
        first = list(upstream.connections)
        before = {conn: len(exchange.log[conn]) for conn in first}
        path.write_text(path.read_text().replace('id: "{seq}"}', 'id: "{seq}", v: 2}', 1))
        assert await supervisor.reload()

        async def resent() -> bool | None:
            return True if all(len(exchange.log[c]) >= before[c] + 4 for c in first) \
                else None
        await eventually(resent, timeout=10.0, what="every connection subscribing again")
        for conn in first:  # its old batches unsubscribed, the new ones subscribed, same socket
            methods = [method for method, _ in exchange.log[conn][before[conn]:]]
            assert methods == ["UNSUBSCRIBE"] * 2 + ["SUBSCRIBE"] * 2 and not conn.closed
            assert exchange.streams[conn] == set(ITEMS[:50] if conn is first[0] else ITEMS[50:100])
        assert len(upstream.connections) == 2


async def test_six_subscribe_messages_keep_to_the_exchanges_five_a_second(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The exchange counts 5 messages in any second; the 6th batch waits for the first's second
    to pass (a bucket refilling during the burst sent it after 0.2 s: closed, too many)."""
    exchange, path = Exchange(upstream, max_streams=300, max_rate=5), tmp_path / "bridge.yaml"
    path.write_text(pool_yaml(upstream.url, ITEMS, sink=FILE_SINK, per=300, batch=50, rate=5))
    async with running(path) as supervisor:
        await all_connected(supervisor, 1)
        conn = upstream.connections[0]
        assert [(m, len(p)) for m, p in exchange.log[conn]] == [("SUBSCRIBE", 50)] * 6
        assert exchange.streams[conn] == set(ITEMS) and not conn.closed
    assert len(upstream.connections) == 1
