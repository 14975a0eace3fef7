"""MQTT -> WebSocket under faults: commands and RPC on sources with an auth step and a subscribe
whose ack the upstream holds back, through an upstream outage and a broker restart.

The real daemon, a real Mosquitto and the scriptable upstream. The oracle is the upstream's own
log of the frames each connection received, in order, and the answers a real MQTT 5 requester
gets on its response topics; never the bridge's counters.

Knowing that the bridge has read a request (the MQTT messages of one publisher reach the bridge
in order, and it queues each as it reads it): an RPC to a third source, ``side``, on an upstream
that stays up, answered. Knowing that the bridge wrote nothing more: a WebSocket ping the bridge
answered (a frame written before the pong arrives before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import gmqtt
import yaml

from tests.support.daemon import Spawn
from tests.support.mosquitto import Broker, Subscriber
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_crashes import STARTUP, Make, Subscribe

WAIT = 10.0  # a cap on one step on a loaded host, not an expected time
_NEVER = -2  # gmqtt's reconnect off: the requester reconnects explicitly after the restart


class Gates:
    """What the upstream holds back on a source's next connection: its auth answer, its
    subscribe ack. Open unless the test closes them."""

    def __init__(self) -> None:
        self.auth, self.subscribe = asyncio.Event(), asyncio.Event()
        self.auth.set()
        self.subscribe.set()


async def answer_rpcs(conn: UpstreamConn) -> None:
    """Answers every ``rpc`` frame with an ``rpc_result`` carrying its id and data, but the
    request ``held``, which it never answers."""
    while True:
        frame = json.loads(await conn.recv(timeout=3600))  # cancelled when the connection ends
        if frame.get("type") == "rpc" and frame["data"] != {"k": "held"}:
            await conn.send_json({"type": "rpc_result", "id": frame["id"], "data": frame["data"]})


def serve(gates: dict[str, Gates]) -> Callable[[UpstreamConn], Awaitable[None]]:
    """An upstream with an auth step and a subscribe with an ack, each answered once the
    source's gate opens, then the RPC answers."""
    async def handler(conn: UpstreamConn) -> None:
        gate = gates[conn.query["src"]]
        assert (await conn.recv_json())["type"] == "auth"
        await gate.auth.wait()
        await conn.send_json({"type": "auth_ok"})
        subscribe = await conn.recv_json()
        assert subscribe["type"] == "subscribe"
        await gate.subscribe.wait()
        await conn.send_json({"type": "result", "id": subscribe["id"], "success": True})
        await answer_rpcs(conn)
    return handler


def source(name: str, url: str, rpc_timeout: str, *, steps: bool = True) -> dict[str, Any]:
    src: dict[str, Any] = {
        "name": name, "url": f"{url}?src={name}",
        "publish": [{"from": {"sink": "broker", "topic": f"ws-bridge/{name}/command/+"},
                     "send": {"id": "{seq}", "type": "command", "name": "{mqtt.topic[3]}",
                              "data": "{mqtt.payload}"}}],
        "rpc": {"sink": "broker", "send": {"id": "{seq}", "type": "rpc", "data": "{mqtt.payload}"},
                "match": {"type": "rpc_result"}, "timeout": rpc_timeout},
        "outbox": {"max_messages": 100, "max_age": "5m"},
    }
    if steps:
        src["auth"] = {"send": {"type": "auth", "access_token": f"tok-{name}-4e1f9"},
                       "expect": {"type": "auth_ok"}, "timeout": "60s"}
        src["subscribe"] = [{"send": {"id": "{seq}", "type": "subscribe"},
                             "expect": {"type": "result", "success": True}, "timeout": "60s"}]
    return src


class Requester:
    """One MQTT 5 client publishing every command and request, so the broker keeps their order:
    requests ask for their answer on ``replies/<key>`` with correlation data ``<key>``."""

    def __init__(self, broker: Broker) -> None:
        self.broker, self._client, self._ids = broker, None, itertools.count()
        self.sent: dict[str, list[str]] = {}  # per source, in publish order

    async def connect(self) -> None:
        client = gmqtt.Client(f"test-requester-{next(self._ids)}")
        client.reconnect_retries = _NEVER
        await client.connect(self.broker.host, self.broker.port, version=5)
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)

    def command(self, src: str, name: str) -> None:
        self.sent.setdefault(src, []).append(name)
        self._publish(f"ws-bridge/{src}/command/{name}", {"n": name})

    def request(self, src: str, key: str) -> None:
        self.sent.setdefault(src, []).append(key)
        self._publish(f"ws-bridge/{src}/rpc", {"k": key},
                      response_topic=f"replies/{key}", correlation_data=key.encode())

    def send(self, src: str, *names: str) -> None:
        """Each of ``names`` in turn: a request when it starts with ``r``, else a command."""
        for name in names:
            (self.request if name.startswith("r") else self.command)(src, name)

    def _publish(self, topic: str, body: Any, **props: Any) -> None:
        assert self._client is not None
        self._client.publish(topic, json.dumps(body), qos=1, **props)


def reply(sub: Subscriber, key: str) -> tuple[Any, list[Any]] | None:
    """The answer to request ``key`` and its correlation data, once it came."""
    got = sub.on(f"replies/{key}")
    return (json.loads(got[0].payload), got[0].properties.get("correlation_data")) if got else None


async def answered(sub: Subscriber, *keys: str) -> dict[str, Any]:
    await sub.wait_for(lambda _: all(reply(sub, k) for k in keys), timeout=WAIT)
    return {k: reply(sub, k) for k in keys}


async def barrier(req: Requester, sub: Subscriber, key: str, tries: int = 1) -> None:
    """An RPC to ``side`` answered: the bridge has read everything published before it. With
    ``tries``, asked again (a new key each time) until one is answered: the bridge's
    subscriptions may not be in place yet."""
    for attempt in range(tries):
        asked = f"{key}-{attempt}"
        req.request("side", asked)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT if attempt == tries - 1 else 0.5):
                await sub.wait_for(lambda _, a=asked: reply(sub, a) is not None, timeout=3600)
            return
    raise AssertionError(f"no answer to {key} after {tries} tries")


async def wrote_nothing_more(conn: UpstreamConn) -> int:
    """A ping the bridge answered: what it wrote before has arrived; how many frames that is."""
    pong = await conn.ws.ping()
    await asyncio.wait_for(pong, WAIT)
    return len(conn.received)


def labels(conn: UpstreamConn) -> list[str]:
    """The commands and requests one connection received, by name, in arrival order."""
    frames = [json.loads(f) for f in conn.received]
    ids = [f["id"] for f in frames if "id" in f]
    assert ids == sorted(set(ids)), ids  # {seq}: rendered on this connection, increasing
    return [f["name"] if f["type"] == "command" else f["data"]["k"] for f in frames
            if f["type"] in ("command", "rpc")]


def states(sub: Subscriber, src: str) -> list[bytes]:
    return sub.payloads(f"ws-bridge/{src}/state")


async def test_commands_and_rpc_wait_for_the_subscribe_ack_keep_order_and_survive_a_broker_restart(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream,
    upstream_factory: Callable[..., Awaitable[Upstream]], spawn: Spawn,
    tmp_path: Path,
) -> None:
    """``home`` and ``brief`` authenticate and subscribe (ack awaited); ``home`` is rate
    limited too (3 per 100 ms, its auth and subscribe included); ``side`` answers the barrier
    RPCs from an upstream of its own that stays up.

    1. The upstream goes down: the request it had not answered gets the disconnect error.
       Commands and requests for ``home`` are published; a request for ``brief`` (timeout
       300 ms) is answered with the timeout error, then a command for it follows.
    2. The upstream comes back, holding ``home``'s auth answer, then its subscribe ack, while
       more are published: nothing reaches the upstream before the ack; then all of them, in
       the order published; every request is answered, correlation data kept. ``brief``'s
       timed-out request is never sent, the command after it is.
    3. Mosquitto stops and starts on the same port: the bridge subscribes again, and commands
       and requests published after it still reach the same upstream connection, answered."""
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "replies/#", "ws-bridge/+/state")
    gates = {"home": Gates(), "brief": Gates()}
    upstream.handler = serve(gates)
    side = await upstream_factory()
    side.handler = answer_rpcs
    rate_limit = {"rate_limit": {"messages": 3, "per": "100ms"}}  # auth and subscribe count too
    cfg = {
        "version": 1,
        "sinks": {"broker": {"type": "mqtt", "url": f"mqtt://{broker.host}:{broker.port}",
                             "topic_prefix": "ws-bridge", "client_id": "bridge-commands",
                             "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}}},
        "defaults": {"connect_timeout": "5s", "ping": {"interval": 0},
                     "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}},
        "sources": [source("home", upstream.url, "60s") | rate_limit,
                    source("brief", upstream.url, "300ms"),
                    source("side", side.url, "60s", steps=False)],
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    daemon = await spawn("run", path)
    req = Requester(broker)
    await req.connect()
    try:
        await barrier(req, sub, "start", tries=int(STARTUP / 0.5))
        await sub.wait_for(lambda _: all(states(sub, s)[-1:] == [b"connected"]
                                         for s in ("home", "brief")), timeout=STARTUP)
        req.send("home", "c0", "r0")  # the first connection, as a baseline
        req.request("home", "held")
        await answered(sub, "r0")
        first, = [c for c in upstream.connections if c.query["src"] == "home"]
        await first.wait_received(5, timeout=WAIT)
        assert labels(first) == ["c0", "r0", "held"]

        # 1. The upstream down, noticed by the bridge (the state topics show it); the request
        # it had not answered gets the disconnect error.
        marks = {s: len(states(sub, s)) for s in gates}
        await upstream.stop()
        await sub.wait_for(lambda _: all(b"reconnecting" in states(sub, s)[marks[s]:]
                                         for s in gates), timeout=WAIT)
        assert (await answered(sub, "held"))["held"] == (
            {"error": "upstream disconnected before replying"}, [b"held"])
        req.request("brief", "late")
        (late, late_corr), = (await answered(sub, "late")).values()
        assert (late, late_corr) == ({"error": "no reply within 0.3s"}, [b"late"])
        req.command("brief", "b1")
        req.send("home", "c1", "r1", "c2", "c3", "r2")
        await barrier(req, sub, "down")

        # 2. Back, with home's auth answer and then its subscribe ack held.
        gates["home"].auth.clear()
        gates["home"].subscribe.clear()
        known = len(upstream.connections)
        await upstream.start()

        async def new(src: str) -> UpstreamConn:
            await upstream.wait_connections(known + 2, timeout=WAIT)
            conns = [c for c in upstream.connections[known:] if c.query["src"] == src]
            assert len(conns) == 1, [c.query for c in upstream.connections[known:]]
            return conns[0]

        home, brief = await new("home"), await new("brief")
        await home.wait_received(1, timeout=WAIT)  # auth: its answer held
        req.send("home", "c4", "r3", "c5")
        await barrier(req, sub, "auth")
        assert await wrote_nothing_more(home) == 1, home.received
        gates["home"].auth.set()
        await home.wait_received(2, timeout=WAIT)  # subscribe: its ack held
        req.send("home", "c6", "r4", "c7")
        await barrier(req, sub, "subscribe")
        assert await wrote_nothing_more(home) == 2, home.received
        assert [json.loads(f)["type"] for f in home.received] == ["auth", "subscribe"]
        gates["home"].subscribe.set()

        outage = ["c1", "r1", "c2", "c3", "r2", "c4", "r3", "c5", "c6", "r4", "c7"]
        await home.wait_received(2 + len(outage), timeout=WAIT)
        assert labels(home) == outage
        replies = await answered(sub, "r1", "r2", "r3", "r4")
        assert replies == {k: ({"type": "rpc_result", "id": replies[k][0]["id"], "data": {"k": k}},
                               [k.encode()]) for k in ("r1", "r2", "r3", "r4")}
        await brief.wait_received(3, timeout=WAIT)
        assert await wrote_nothing_more(brief) == 3
        assert [json.loads(f)["type"] for f in brief.received] == ["auth", "subscribe", "command"]
        assert labels(brief) == ["b1"]  # the timed-out request never went

        # 3. The broker stopped and started on the same port.
        broker.stop()
        broker.start()
        await sub.reconnect()
        await req.close()
        await req.connect()
        await barrier(req, sub, "restart", tries=int(STARTUP / 0.5))
        req.send("home", "c8", "r5", "c9")
        assert (await answered(sub, "r5"))["r5"][0]["data"] == {"k": "r5"}
        await home.wait_received(2 + len(outage) + 3, timeout=WAIT)
        assert labels(home) == [*outage, "c8", "r5", "c9"]
        assert [c.query["src"] for c in upstream.connections].count("home") == 2  # no reconnect
        assert req.sent["home"] == [*labels(first), *labels(home)]  # all of them, each once
    finally:
        await req.close()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0, daemon.log_text

