"""Crashes at the worst moment: the real daemon killed or stopped while messages are in flight.

The oracle is a real MQTT subscriber on a real Mosquitto (and, for what the bridge had accepted
when it was killed, the outbox file on disk), never the bridge's own counters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
import yaml

from tests.support.daemon import Daemon, NotifySocket, eventually
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.upstream import Upstream, UpstreamConn

Spawn = Callable[..., Awaitable[Daemon]]
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]
STARTUP = 20.0  # a cap on a cold start of the daemon on a loaded host, not an expected time


@pytest_asyncio.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Starts daemons; every one still alive at teardown is killed."""
    started: list[Daemon] = []

    async def make(*args: str | Path, **kwargs: Any) -> Daemon:
        started.append(await Daemon.spawn(*map(str, args), **kwargs))
        return started[-1]

    yield make
    for daemon in started:
        await daemon.kill()


def mqtt_config(tmp_path: Path, broker: Broker, upstream: Upstream, names: list[str],
                **sink: Any) -> Path:
    """One QoS 1 MQTT sink (``sink`` overrides its settings); each source names itself in the
    upstream URL's query and publishes to ``feeds/<source>``."""
    cfg = {
        "version": 1,
        "sinks": {"broker": {
            "type": "mqtt", "url": f"mqtt://{broker.host}:{broker.port}", "qos": 1,
            "client_id": "bridge-crash",
            "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}} | sink},
        "defaults": {"connect_timeout": "2s", "ping": {"interval": 0},
                     "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}},
        "sources": [{"name": name, "url": f"{upstream.url}?src={name}",
                     "routes": [{"sink": "broker", "topic": f"feeds/{name}"}]}
                    for name in names],
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def msg_id(m: Received) -> str:
    return str(dict(m.properties.get("user_property", [])).get("msg_id", ""))


def number(payload: bytes) -> int:
    """A message's number: the payload itself, or its ``n`` when it is a JSON object."""
    value = json.loads(payload)
    return int(value["n"] if isinstance(value, dict) else value)


def numbers(got: list[Received], topic: str) -> list[int]:
    return [number(m.payload) for m in got if m.topic == topic]


def first_seen_in_order(got: list[Received], topic: str) -> list[int]:
    """The first copies of ``topic``'s messages, checked: each is numbered above the one before,
    and a repeat carries the msg_id of its first copy (no two messages share one)."""
    ids: dict[bytes, str] = {}
    for m in (m for m in got if m.topic == topic):
        assert ids.setdefault(m.payload, msg_id(m)) == msg_id(m) != "", m
    assert len(set(ids.values())) == len(ids)
    first = [number(p) for p in ids]
    assert first == sorted(first), f"{topic}: first-seen order broken"
    return first


def stored(outbox: Path) -> dict[str, set[int]]:
    """What the outbox file holds, per topic: the messages accepted but not yet acknowledged."""
    db = sqlite3.connect(outbox / "outbox.sqlite3")
    try:
        rows = db.execute("SELECT topic, payload FROM outbox").fetchall()
    finally:
        db.close()
    held: dict[str, set[int]] = {}
    for topic, payload in rows:
        held.setdefault(topic, set()).add(int(payload))
    return held


# -- SIGKILL mid-ingest and mid-drain ----------------------------------------------------------


async def test_sigkill_mid_ingest_and_mid_drain_then_restart_delivers_all_accepted_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    """Two sources stream numbered messages without pause. The broker starts down, so a backlog
    builds in the outbox; once it is up and the subscriber has seen part of the backlog (the
    drain under way, the upstream still sending), the bridge is SIGKILLed. Everything it had
    accepted (delivered before the kill, or on disk in the outbox) arrives after the restart,
    first-seen in order per source, with no hole; repeats carry the first copy's msg_id."""
    names = ["a", "b"]
    counters = {name: itertools.count() for name in names}
    sent: dict[str, list[int]] = {name: [] for name in names}

    async def stream(conn: UpstreamConn) -> None:
        name = conn.query["src"]
        for n in counters[name]:  # each connection goes on where the last one stopped
            await conn.send(str(n))
            sent[name].append(n)
            if n % 20 == 0:
                await asyncio.sleep(0.002)  # the feed's pace (~10k/s), not a wait for an event

    upstream.handler = stream
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)  # keeps what it misses
    await sub.close()
    broker.stop()
    outbox = tmp_path / "ob"
    cfg = mqtt_config(tmp_path, broker, upstream, names,
                      queue={"path": str(outbox), "max_messages": 1_000_000})
    first = await spawn("run", cfg)

    async def backlog() -> bool | None:
        held = stored(outbox) if (outbox / "outbox.sqlite3").exists() else {}
        return True if all(len(held.get(f"feeds/{n}", ())) >= 500 for n in names) else None

    await eventually(backlog, STARTUP, "a backlog of 500 rows per source in the outbox")
    broker.start()
    await sub.reconnect()
    await sub.wait_for(lambda ms: all(len(numbers(ms, f"feeds/{n}")) >= 300 for n in names),
                       timeout=10)
    first.signal(signal.SIGKILL)
    assert await first.wait_exit() == -signal.SIGKILL
    before = list(sub.messages)
    on_disk = stored(outbox)
    accepted = {n: set(numbers(before, f"feeds/{n}")) | on_disk.get(f"feeds/{n}", set())
                for n in names}
    for name in names:
        top = max(accepted[name])
        assert accepted[name] == set(range(top + 1)), f"{name}: a hole in what was accepted"
        assert top + 1 > 500 and len(sent[name]) > top + 1  # the upstream was still sending

    await spawn("run", cfg)
    got = await sub.wait_for(
        lambda ms: all(accepted[n] <= set(numbers(ms, f"feeds/{n}")) for n in names), timeout=20)
    for name in names:
        first_seen = first_seen_in_order(got, f"feeds/{name}")
        assert first_seen[:len(accepted[name])] == sorted(accepted[name])


# -- SIGTERM with queued messages ---------------------------------------------------------------


async def test_sigterm_publishes_the_queue_then_offline_last_with_real_state_transitions(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    """The first connection is dropped after its subscribe (a real outage: the state topic
    shows it). On the second, 500 messages go out and then a probe the bridge must answer:
    its answer proves it read all 500. The broker is frozen (SIGSTOP) meanwhile, so they wait
    in the sink's queue; SIGTERM, then the broker thaws: all 500 are published, in order,
    before the retained ``offline``, and the daemon exits 0."""
    total = 500
    read_all: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def feed(conn: UpstreamConn) -> None:
        assert await conn.recv_json() == {"op": "sub"}
        if len(upstream.connections) == 1:
            conn.kill()
            return
        await frozen.wait()
        for n in range(total):
            await conn.send_json({"n": n})
        await conn.send_json({"probe": 1})
        assert await conn.recv_json() == {"pong": 1}
        read_all.set_result(None)

    upstream.handler = feed
    frozen = asyncio.Event()
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "#")
    cfg = mqtt_config(tmp_path, broker, upstream, ["feed"],
                      availability={"topic": "ws-bridge/status"})
    doc = yaml.safe_load(cfg.read_text())
    doc["sources"][0] |= {"subscribe": [{"send": {"op": "sub"}}],
                          "replies": [{"when": {"probe": 1}, "send": {"pong": 1}}]}
    doc["sources"][0]["routes"][0]["when"] = {"probe": {"$exists": False}}
    cfg.write_text(yaml.safe_dump(doc))
    daemon = await spawn("run", cfg)
    await sub.wait_for(lambda ms: [m.payload for m in ms if m.topic == "ws-bridge/feed/state"]
                       .count(b"connected") == 2, timeout=STARTUP)
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        frozen.set()
        await asyncio.wait_for(read_all, 10)  # every message is in the bridge now
        daemon.signal(signal.SIGTERM)
        await daemon.wait_log("stopping")
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    assert await daemon.wait_exit() == 0, daemon.log_text
    got = await sub.wait_for(lambda ms: b"offline" in [m.payload for m in ms], timeout=10)
    assert numbers(got, "feeds/feed") == list(range(total))
    assert (got[-1].topic, got[-1].payload) == ("ws-bridge/status", b"offline")
    assert [m.payload for m in got if m.topic == "ws-bridge/status"] == [b"online", b"offline"]
    states = [m.payload.decode() for m in got if m.topic == "ws-bridge/feed/state"]
    assert states == ["connecting", "subscribing", "connected", "reconnecting",
                      "connecting", "subscribing", "connected", "stopped"], states




# -- SIGHUP with an unchanged MQTT sink ---------------------------------------------------------


async def test_an_unchanged_mqtt_sink_keeps_its_broker_connection_across_sighup(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    """A reload that adds a source and leaves the sink as it was: the broker sees one connect
    of the bridge's client id in all (its own log), the subscriber no offline and one online,
    and the added source's messages come through that same connection."""
    async def feed(conn: UpstreamConn) -> None:
        for n in range(3):
            await conn.send(str(n))
        await conn.wait_closed(timeout=60)

    upstream.handler = feed
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "#")
    sink = {"availability": {"topic": "ws-bridge/status"}}
    cfg = mqtt_config(tmp_path, broker, upstream, ["a"], **sink)
    notify = NotifySocket()
    try:
        daemon = await spawn("run", cfg, env={"NOTIFY_SOCKET": notify.path})
        await sub.wait_for(3, topic="feeds/a", timeout=STARTUP)
        mqtt_config(tmp_path, broker, upstream, ["a", "b"], **sink)
        start = len(notify.messages)
        daemon.signal(signal.SIGHUP)
        began = await notify.wait_for(lambda m: "RELOADING=1" in m, start=start)
        await notify.wait_for(lambda m: "READY=1" in m, start=began + 1)
        await sub.wait_for(3, topic="feeds/b")
        await daemon.wait_log("reload: source b added")
    finally:
        await notify.close()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0, daemon.log_text
    await sub.wait_for(lambda ms: b"offline" in [m.payload for m in ms])
    connects = [line for line in broker.log().splitlines()
                if "New client connected" in line and "bridge-crash" in line]
    assert len(connects) == 1, connects
    assert sub.payloads("ws-bridge/status") == [b"online", b"offline"]  # offline: the SIGTERM
    assert "reload: sink" not in daemon.log_text
