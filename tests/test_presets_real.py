"""The protocol presets against the real servers (python-socketio, strawberry-graphql,
nats-server, RabbitMQ web-stomp): bridged into a real Mosquitto and judged at a real
subscriber, through a server restart and a clean stop (the server sees the unsubscribe), and
given a wrong credential (the log shows the server's reason; rejections, with growing backoff)."""

from __future__ import annotations

import json
import logging
import re
import signal
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge.config.load import load_config
from bridge.config.model import SourceConfig
from tests.support.daemon import Daemon
from tests.support.mosquitto import Broker
from tests.support.real_upstreams import (
    AppServer,
    NatsServer,
    RabbitStomp,
    nats_burst,
    nats_publish,
    nats_ws_frames,
    publishing,
    stomp_publish,
)
from tests.test_client import Running, waits

TOKEN = "s3cret-token-42"
WRONG = "wrong-token-17"
STARTUP = 20.0  # a cap on the daemon's cold start on a loaded host, not an expected duration
# Fast backoff for the wrong-credential runs: the delays the log must show, in order
BACKOFF = "reconnect: {initial_delay: 50ms, max_delay: 400ms, multiplier: 2, jitter: 0}"
GROWING = ["0.05", "0.10", "0.20", "0.40"]


def source_yaml(url: str, protocol: str, subscribe: str, route: str = "") -> str:
    return textwrap.dedent(f"""\
        - name: src
          url: "{url}"
          protocol: {protocol}
          subscribe: [{subscribe}]
          {BACKOFF}
        """) + textwrap.indent(route, "  ")


def write_config(tmp_path: Path, broker: Broker | None, source: str) -> Path:
    sink = f'{{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", qos: 1}}' if broker \
        else "{type: stdout}"
    path = tmp_path / "bridge.yaml"
    path.write_text(f"version: 1\nsinks:\n  out: {sink}\nsources:\n"
                    + textwrap.indent(source, "  "))
    return path


def one_source(tmp_path: Path, source: str) -> SourceConfig:
    return load_config(write_config(tmp_path, None, source), env={}).sources[0]


@pytest_asyncio.fixture
async def daemon() -> AsyncIterator[Callable[[Path], Awaitable[Daemon]]]:
    started: list[Daemon] = []

    async def spawn(config: Path) -> Daemon:
        started.append(await Daemon.spawn("run", str(config)))
        return started[-1]

    yield spawn
    for d in started:
        await d.kill()


async def rejected(cfg: SourceConfig, caplog: pytest.LogCaptureFixture, reason: str) -> Running:
    """Runs ``cfg`` until four rejections; the log must show ``reason`` and growing delays."""
    with caplog.at_level(logging.INFO, logger="bridge"):
        async with Running(cfg) as run:
            await run.until(lambda: len(waits(caplog)) >= 4, timeout=10)
    assert waits(caplog)[:4] == GROWING
    assert run.client.stats.rejected >= 4  # counted as rejections (metric source_rejections)
    assert reason in caplog.text
    assert not run.messages
    assert WRONG not in caplog.text  # the credential itself is never shown
    return run


def values(received: list[Any]) -> list[Any]:
    return [json.loads(m.payload) for m in received]


# --- Socket.IO --------------------------------------------------------------------------------

SIO = "{type: socketio, namespace: /, auth: {token: %s}}"
SIO_ROUTE = 'routes: [{when: {event: tick}, sink: out, topic: "sio/{msg.data.symbol}", ' \
            'payload: "{msg.data}"}]\n'


async def test_socketio_preset_bridges_through_a_restart_and_leaves_on_stop(
    tmp_path: Path, socketio_server: Callable[..., AppServer], mosquitto: Callable[..., Broker],
    mqtt_subscriber: Any, daemon: Callable[[Path], Awaitable[Daemon]],
) -> None:
    server, broker = socketio_server(TOKEN), mosquitto()
    sub = await mqtt_subscriber(broker, "sio/#")
    src = source_yaml(server.url, SIO % TOKEN, "{emit: join, data: room1}", SIO_ROUTE)
    bridge = await daemon(write_config(tmp_path, broker, src))
    got = await sub.wait_for(lambda m: len(m) >= 3, timeout=STARTUP)
    assert {m.topic for m in got} == {"sio/room1"}
    assert set(values(got)[0]) == {"symbol", "n"}  # the event's data, unwrapped
    server.stop()
    server.start()
    await server.wait_log("join", count=2)  # joined again after the restart
    before = len(sub.messages)
    await sub.wait_for(before + 3)
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit() == 0
    await server.wait_log("client disconnect")  # our 41 on a clean stop, not "transport close"


async def test_socketio_refusal_is_a_rejection_with_the_servers_reason(
    tmp_path: Path, socketio_server: Callable[..., AppServer], caplog: pytest.LogCaptureFixture,
) -> None:
    server = socketio_server(TOKEN)
    cfg = one_source(tmp_path, source_yaml(server.url, SIO % WRONG, "{emit: join, data: x}"))
    run = await rejected(cfg, caplog, 'auth rejected by the server: 44{"message":"bad token"}')
    assert set(run.client.stats.reconnects) == {"auth_rejected"}
    assert "join" not in server.log()


# --- GraphQL ----------------------------------------------------------------------------------

GQL = "{type: graphql-ws, init: {token: %s}}"
GQL_ROUTE = 'routes: [{when: {id: "1"}, sink: out, topic: gql/count, ' \
            'payload: "{msg.data.count}"}]\n'


async def test_graphql_preset_bridges_through_a_restart_and_completes_on_stop(
    tmp_path: Path, graphql_server: Callable[..., AppServer], mosquitto: Callable[..., Broker],
    mqtt_subscriber: Any, daemon: Callable[[Path], Awaitable[Daemon]],
) -> None:
    server, broker = graphql_server(TOKEN), mosquitto()
    sub = await mqtt_subscriber(broker, "gql/#")
    src = source_yaml(server.url, GQL % TOKEN, '{query: "subscription { count }"}', GQL_ROUTE)
    bridge = await daemon(write_config(tmp_path, broker, src))
    got = await sub.wait_for(3, timeout=STARTUP)
    assert values(got)[:3] == [1, 2, 3]  # the first event is data, not swallowed
    server.stop()
    server.start()
    await server.wait_log("subscribed", count=2)
    await sub.wait_for(lambda m: values(m)[-1:] == [3] and len(m) > 3)  # counting afresh
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit() == 0
    await server.wait_log("complete 1")  # sent on a clean stop


async def test_graphql_refusing_close_is_a_rejection_with_its_reason(
    tmp_path: Path, graphql_server: Callable[..., AppServer], caplog: pytest.LogCaptureFixture,
) -> None:
    server = graphql_server(TOKEN)
    cfg = one_source(tmp_path, source_yaml(server.url, GQL % WRONG,
                                           '{query: "subscription { count }"}'))
    run = await rejected(cfg, caplog, "rejected by the server with close code 4403: Forbidden")
    assert set(run.client.stats.reconnects) == {"auth_rejected"}


async def test_graphql_error_message_is_a_rejection_with_its_reason(
    tmp_path: Path, graphql_server: Callable[..., AppServer], caplog: pytest.LogCaptureFixture,
) -> None:
    server = graphql_server(TOKEN)
    cfg = one_source(tmp_path, source_yaml(server.url, GQL % TOKEN,
                                           '{query: "subscription { nosuchfield }"}'))
    with caplog.at_level(logging.INFO, logger="bridge"):
        async with Running(cfg) as run:
            await run.until(lambda: run.client.stats.reconnects["rejected"] >= 2)
    assert "rejected by the server" in caplog.text
    assert "nosuchfield" in caplog.text  # strawberry's own words
    assert re.findall(r"reconnecting in ([0-9.]+)s", caplog.text)[:2] == GROWING[:2]


# --- NATS -------------------------------------------------------------------------------------

NATS = "{type: nats, token: %s}"
NATS_ROUTE = 'routes: [{sink: out, topic: "nats/{msg.subject}", payload: "{msg.data}"}]\n'


async def test_nats_preset_bridges_through_a_restart_and_unsubscribes_on_stop(
    tmp_path: Path, nats_server: Callable[..., NatsServer], mosquitto: Callable[..., Broker],
    mqtt_subscriber: Any, daemon: Callable[[Path], Awaitable[Daemon]],
) -> None:
    server, broker = nats_server(TOKEN), mosquitto()
    sub = await mqtt_subscriber(broker, "nats/#")
    src = source_yaml(server.url, NATS % TOKEN, "{subject: ticks.>}", NATS_ROUTE)
    bridge = await daemon(write_config(tmp_path, broker, src))
    await bridge.wait_log("connected", timeout=STARTUP)
    async with publishing(lambda: nats_publish(server, "ticks.a")):
        got = await sub.wait_for(3)
        assert {m.topic for m in got} == {"nats/ticks.a"}
        assert set(values(got)[0]) == {"n"}  # the payload, JSON-decoded
        server.stop()
        server.start()
        before = len(sub.messages)
        await sub.wait_for(before + 3)
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit() == 0
    await server.wait_log("UNSUB 1")  # sent on a clean stop


# nats-server frames what it sends a browser in WebSocket messages of 4 KiB, whatever the
# operations (its websocket.go, wsFrameSizeForBrowsers): a bridge sending a browser's
# User-Agent (a `headers:` entry some gateways ask for) gets operations split across frames.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) ws-bridge-test"


async def test_nats_messages_split_across_frames_all_arrive_whole_and_in_order(
    tmp_path: Path, nats_server: Callable[..., NatsServer], mosquitto: Callable[..., Broker],
    mqtt_subscriber: Any, daemon: Callable[[Path], Awaitable[Daemon]],
) -> None:
    server, broker = nats_server(TOKEN), mosquitto()
    big = [json.dumps({"n": n, "pad": "x" * 100_000}).encode() for n in range(4)]
    frames = await nats_ws_frames(server, BROWSER, "probe", big[0])
    assert len(frames) > 20 and max(map(len, frames)) <= 4096  # the server does split them
    sub = await mqtt_subscriber(broker, "nats/#")
    src = source_yaml(server.url, NATS % TOKEN, "{subject: ticks.>}", NATS_ROUTE) + \
        f'  headers: {{User-Agent: "{BROWSER}"}}\n'
    bridge = await daemon(write_config(tmp_path, broker, src))
    await bridge.wait_log("connected", timeout=STARTUP)
    burst = [("ticks.small", json.dumps({"n": n}).encode()) for n in range(5000)]
    sent = [("ticks.big", b) for b in big[:3]] + burst + [("ticks.big", big[3])]
    await nats_burst(server, sent)
    got = await sub.wait_for(len(sent), timeout=30)
    assert [(m.topic, json.loads(m.payload)) for m in got] == \
        [(f"nats/{s}", json.loads(p)) for s, p in sent]  # every one, whole, in order
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit() == 0


async def test_nats_wrong_token_is_a_rejection_with_growing_backoff(
    tmp_path: Path, nats_server: Callable[..., NatsServer], caplog: pytest.LogCaptureFixture,
) -> None:
    server = nats_server(TOKEN)
    cfg = one_source(tmp_path, source_yaml(server.url, NATS % WRONG, "{subject: ticks.>}"))
    run = await rejected(cfg, caplog, "auth rejected by the server: -ERR 'Authorization Violation'")
    assert set(run.client.stats.reconnects) == {"auth_rejected"}  # INFO never resets the backoff


# --- STOMP ------------------------------------------------------------------------------------

STOMP = "{type: stomp, login: guest, passcode: %s, host: /, heartbeat: 2s}"
STOMP_ROUTE = 'routes: [{sink: out, topic: "stomp/ticks", payload: "{msg.body}"}]\n'


async def test_stomp_preset_bridges_through_a_restart(
    tmp_path: Path, rabbitmq_stomp: RabbitStomp, mosquitto: Callable[..., Broker],
    mqtt_subscriber: Any, daemon: Callable[[Path], Awaitable[Daemon]],
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "stomp/#")
    dest = f"/topic/ticks-{tmp_path.name}"
    src = source_yaml(rabbitmq_stomp.url, STOMP % "guest", f"{{destination: {dest}}}",
                      STOMP_ROUTE)
    bridge = await daemon(write_config(tmp_path, broker, src))
    await bridge.wait_log("connected", timeout=STARTUP)
    async with publishing(lambda: stomp_publish(rabbitmq_stomp, dest)):
        got = await sub.wait_for(3)
        assert set(values(got)[0]) == {"n"}  # the body, JSON-decoded
        rabbitmq_stomp.restart_web_stomp()
        mark = len(bridge.stderr)
        await bridge.wait_log("connected", start=mark, timeout=10)
        before = len(sub.messages)
        await sub.wait_for(before + 3)
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit() == 0


async def test_stomp_wrong_passcode_is_a_rejection_with_the_error_frame(
    tmp_path: Path, rabbitmq_stomp: RabbitStomp, caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = one_source(tmp_path, source_yaml(rabbitmq_stomp.url, STOMP % WRONG,
                                           "{destination: /topic/none}"))
    run = await rejected(cfg, caplog, "Access refused for user 'guest'")
    assert set(run.client.stats.reconnects) == {"auth_rejected"}
