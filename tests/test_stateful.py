"""Sessions that carry state, against real loopback servers: a Discord-style gateway whose
heartbeat comes from captured values, a server asking for a new connection (reconnect_when),
and rollover proved gapless at the file sink against a server that cuts old connections."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.config.load import load_config
from bridge.config.outbound import RateLimitSpec
from bridge.config.specs import Step
from bridge.config.stateful import RenewSpec
from bridge.frames import FramesSpec
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.state import ConnState
from tests.support.daemon import Daemon, NotifySocket
from tests.support.upstream import NumberedFeed, Upstream, UpstreamConn
from tests.test_client import FAST, Running, source
from tests.test_daemon import (  # noqa: F401 - the notify fixture
    config,
    file_has,
    lines,
    metrics_port,
    notify,
    run_ready,
    stop,
    write,
)

REPO = Path(__file__).resolve().parents[1]
ROLLED = "rolled over to a new connection (max_connection_age)"
Spawn = Any


async def gateway(conn: UpstreamConn, rounds: int = 3) -> None:
    """A Discord-style gateway: hello with the heartbeat interval, identify, READY; then in
    lockstep a dispatch and the heartbeat that must carry its sequence number."""
    await conn.send_json({"op": 10, "d": {"heartbeat_interval": 50}})
    identify = await conn.recv_json()
    assert identify["op"] == 2 and identify["d"]["token"] == "bot-token", identify
    seq = 1
    await conn.send_json({"op": 0, "t": "READY", "s": seq, "d": {"session_id": "abc"}})
    for _ in range(rounds):
        beat = await conn.recv_json()
        assert beat == {"op": 1, "d": seq}, f"a heartbeat must carry the last seq {seq}: {beat}"
        await conn.send_json({"op": 11})
        seq += 1
        await conn.send_json({"op": 0, "t": "MESSAGE_CREATE", "s": seq, "d": {"n": seq}})


async def test_a_discord_gateway_heartbeats_at_its_announced_interval_with_the_last_seq(
    upstream: Upstream,
) -> None:
    upstream.handler = gateway
    cfg = load_config(REPO / "configs" / "discord-gateway.yaml",
                      env={"DISCORD_TOKEN": "bot-token"}).sources[0]
    cfg = dataclasses.replace(cfg, name="src", url=upstream.url, reconnect=FAST)
    async with Running(cfg) as run:
        await run.until(lambda: len(run.messages) == 3)  # READY is the auth's: not delivered
    (conn,) = upstream.connections
    beats = [json.loads(m) for m in conn.received if json.loads(m)["op"] == 1]
    assert beats[:3] == [{"op": 1, "d": 1}, {"op": 1, "d": 2}, {"op": 1, "d": 3}]
    assert [m["s"] for m in run.payloads()] == [2, 3, 4]  # the ACKs are the session's own
    assert run.client.stats.reconnects == {}


async def test_a_server_message_asking_for_a_new_connection_reopens_it(
    upstream: Upstream,
) -> None:
    async def user_data(conn: UpstreamConn) -> None:  # Binance's user data stream
        first = len(upstream.connections) == 1
        await conn.send_json({"e": "listenKeyExpired"} if first else {"e": "balance", "n": 2})

    upstream.handler = user_data
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),))
    async with Running(source(upstream.url, renew=renew)) as run:
        await run.until(lambda: len(run.messages) == 2)
    first, _ = upstream.connections
    assert await first.wait_closed() == 1000  # closed by the bridge, cleanly
    assert run.payloads() == [{"e": "listenKeyExpired"}, {"e": "balance", "n": 2}]
    assert run.client.stats.reconnects == {"renewed": 1}
    assert run.states.count(ConnState.CONNECTED) == 2


async def test_rollover_is_gapless_at_the_file_sink_while_the_server_cuts_old_connections(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path,  # noqa: F811
) -> None:
    count, feed = 300, NumberedFeed(ack={"subscribed": True}, max_age=1.0)
    upstream.handler = feed.handler
    src = {"name": "feed", "url": upstream.url, "routes": [{"sink": "out"}],
           "subscribe": [{"send": {"op": "subscribe"}, "expect": {"subscribed": True}}],
           "max_connection_age": "350ms", "rollover": "overlap", "dedup": {"key": "{msg.n}"}}
    cfg = config(tmp_path, [src], metrics={"listen": "127.0.0.1:0"})
    daemon: Daemon = await run_ready(spawn, write(tmp_path / "bridge.yaml", cfg), notify)
    await feed.produce(count, every=0.005)
    got = [json.loads(line)["n"] for line in await file_has(tmp_path / "out" / "feed.txt", count)]
    assert sorted(got) == list(range(1, count + 1))  # every number, each once
    rolled = daemon.log_text.count(ROLLED)
    assert rolled >= 3, daemon.log_text
    assert feed.cut == []  # every old connection was closed by the bridge, before the cut
    base = f"http://127.0.0.1:{await metrics_port(daemon)}"
    status = await spawn("status", "--url", base, "--interval", "0.2")
    assert await status.wait_exit() == 0, status.log_text
    head, row = (line.split() for line in status.stdout[:2])
    assert (head[-1], row[0]) == ("ROLLOVERS", "feed")
    assert int(row[-1]) >= rolled  # it goes on rolling over every 350 ms
    await stop(daemon)
    assert len(lines(tmp_path / "out" / "feed.txt")) == count  # nothing came after
    # each rollover logged once: one line per connection replaced (the last connection may
    # be a successor the stop cut short), and no reconnect
    assert daemon.log_text.count(ROLLED) in (len(upstream.connections) - 1,
                                              len(upstream.connections) - 2)
    assert "reconnecting in" not in daemon.log_text


async def test_without_overlap_the_old_connection_closes_before_the_new_one_opens(
    upstream: Upstream,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            await conn.send_json({"e": "listenKeyExpired"})
        else:  # the first one is already gone when the second one comes
            await conn.send_json({"first_closed": upstream.connections[0].closed})

    upstream.handler = handler
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),))
    async with Running(source(upstream.url, renew=renew)) as run:
        await run.until(lambda: len(run.messages) == 2)
    assert run.payloads()[1] == {"first_closed": True}
    assert run.client.stats.rollovers == 0


async def test_a_successor_that_fails_renews_the_old_connection_the_plain_way(
    upstream: Upstream, caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            upstream.reject_next(503)  # the successor's handshake
            await conn.send_json({"e": "listenKeyExpired"})
        else:
            await conn.send_json({"n": len(upstream.connections)})

    upstream.handler = handler
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),), rollover="overlap")
    async with Running(source(upstream.url, renew=renew)) as run:
        await run.until(lambda: len(run.messages) == 2)
    assert [h.status for h in upstream.handshakes] == [101, 503, 101]
    assert await upstream.connections[0].wait_closed() == 1000
    assert run.client.stats.rollovers == 0
    assert run.client.stats.reconnects == {"renewed": 1}
    assert re.search(r"rollover \(reconnect_when\) failed: .*handshake rejected with HTTP 503",
                     caplog.text)
    assert "after connection renewed: the server asked for a new connection" in caplog.text


async def test_stop_during_a_rollover_closes_both_connections(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.recv()
        await conn.send_json({"subscribed": True})
        if len(upstream.connections) == 2:
            return  # the successor is subscribing: its ack never comes
        await conn.send_json({"e": "listenKeyExpired"})

    upstream.handler = handler
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),), rollover="overlap")
    sub = (Step(Template({"op": "subscribe"}), Pattern({"subscribed": True})),)
    async with Running(source(upstream.url, renew=renew, subscribe=sub)) as run:
        old, successor = await upstream.wait_connections(2)
        await successor.wait_received(1)  # it sent its subscription
        assert run.client.state is ConnState.CONNECTED
    assert await old.wait_closed() == 1000
    assert await successor.wait_closed() == 1000
    assert run.states[-1] is ConnState.STOPPED


async def test_a_successors_subscribe_messages_keep_to_the_rate_limit(upstream: Upstream) -> None:
    import asyncio  # noqa: PLC0415

    seen: list[list[tuple[str, float, bool]]] = []  # per connection: (channel, when, first open)

    async def handler(conn: UpstreamConn) -> None:
        mine: list[tuple[str, float, bool]] = []
        seen.append(mine)
        for _ in range(2):
            channel = (await conn.recv_json())["ch"]
            mine.append((channel, asyncio.get_running_loop().time(),
                         not upstream.connections[0].closed))
        await conn.send_json({"e": "listenKeyExpired"} if len(seen) == 1 else {"e": "done"})

    upstream.handler = handler
    steps = tuple(Step(Template({"op": "sub", "ch": ch})) for ch in ("a", "b"))  # no acks
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),), rollover="overlap")
    cfg = source(upstream.url, renew=renew, subscribe=steps, rate_limit=RateLimitSpec(1, 0.2))
    async with Running(cfg) as run:
        await run.until(lambda: len(run.messages) == 2)
    assert run.payloads() == [{"e": "listenKeyExpired"}, {"e": "done"}]
    for mine in seen:  # the live connection's and the successor's: one per 200 ms
        [(a, at_a, _), (b, at_b, _)] = mine
        assert (a, b) == ("a", "b")
        assert at_b - at_a >= 0.15
    assert seen[1][1][2]  # the old connection still open when the successor's last send came


async def test_a_successor_reads_its_frames_through_the_sources_frames_decoding(
        upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.recv_json()  # the subscribe
        if len(upstream.connections) == 1:  # the ack and the data share a frame: lines
            await conn.send('{"ack": true}\n{"e": "listenKeyExpired"}')
            return
        await conn.send('{"ack": true}\n{"e": "early"}')  # data right after its ack
        await upstream.connections[0].wait_closed()  # taken over
        await conn.send('{"e": "done"}')

    upstream.handler = handler
    steps = (Step(Template({"op": "sub"}), Pattern({"ack": True})),)
    renew = RenewSpec(reconnect_when=(Pattern({"e": "listenKeyExpired"}),), rollover="overlap")
    cfg = source(upstream.url, renew=renew, subscribe=steps, frames=FramesSpec(split="\n"))
    async with Running(cfg) as run:
        await run.until(lambda: len(run.messages) == 3)
    assert run.payloads() == [{"e": "listenKeyExpired"}, {"e": "early"}, {"e": "done"}]
    assert run.client.stats.reconnects == {}  # the successor saw its ack: it took over
    assert run.client.stats.rollovers == 1
