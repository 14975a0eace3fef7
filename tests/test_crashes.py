"""Crashes at the worst moment: the real daemon killed or stopped while messages are in flight.

The oracle is a real MQTT subscriber on a real Mosquitto (and, for what the bridge had accepted
when it was killed, the outbox file on disk), never the bridge's own counters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import NotifySocket, Spawn, eventually
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.upstream import Upstream, UpstreamConn

Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]
STARTUP = 20.0  # a cap on a cold start of the daemon on a loaded host, not an expected time


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
    db = sqlite3.connect(f"file:{outbox / 'outbox.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT topic, payload FROM outbox").fetchall()
    except sqlite3.OperationalError:  # the daemon has just created the file, not yet its table
        rows = []
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
        # The upstream streams until its connection drops, so the kill is mid-ingest by
        # construction; the bridge may have taken every frame written by then (it reads each in
        # websockets' data callback as it comes), so accepted can equal sent, never exceed it.
        assert top + 1 > 500 and len(sent[name]) >= top + 1

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
    real = ["connecting", "subscribing", "connected", "reconnecting",
            "connecting", "subscribing", "connected", "stopped"]
    # A state reached before the sink's broker connection is up is not published then: the
    # connect publishes the latest one (retained). So the first connection's early states may
    # be folded into the one the connect carries; from then on every transition is seen.
    assert len(states) >= 6 and states == real[len(real) - len(states):], states




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


# -- workers ------------------------------------------------------------------------------------

# The shard of each source, pinned: rendezvous hashing must not move sources between releases.
SHARDS = {"feed-4": 0, "feed-0": 1, "feed-1": 2}


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on loopback (each shard takes the next)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        taken = []
        try:
            for port in range(first, first + count):
                taken.append(socket.socket())
                taken[-1].bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as answer:
        return str(answer.read().decode())


async def test_a_sigkilled_worker_is_restarted_reconnects_and_sighup_reaches_every_worker(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    """Three workers, one source each. Each shard's client id, availability topic, metrics port
    and outbox are the literal names below. Worker 1 is SIGKILLed: its will says offline, it is
    started again, its source reconnects and delivers; the others are untouched. A SIGHUP that
    adds a subscribe step to every source reaches every worker: each live connection receives
    the subscribe message."""
    async def feed(conn: UpstreamConn) -> None:
        await conn.send(str(len([c for c in upstream.connections
                                 if c.query["src"] == conn.query["src"]])))
        await conn.ws.wait_closed()

    upstream.handler = feed
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "#")
    port = free_ports(3)
    names = list(SHARDS)
    outbox = tmp_path / "ob"
    sink = {"availability": {"topic": "ws-bridge/status"},
            "queue": {"path": str(outbox)}}
    cfg = mqtt_config(tmp_path, broker, upstream, names, **sink)
    doc = yaml.safe_load(cfg.read_text()) | {"metrics": {"listen": f"127.0.0.1:{port}"}}
    cfg.write_text(yaml.safe_dump(doc))
    daemon = await spawn("run", cfg, "--workers", "3")
    for name in names:
        await sub.wait_for(1, topic=f"feeds/{name}", timeout=STARTUP)
    for shard in range(3):
        await sub.wait_for(1, topic=f"ws-bridge/status/shard-{shard}")
    pid = int(re.findall(r"worker 1/3 started \(pid (\d+)\)", daemon.log_text)[0])

    # The naming of each shard, as the broker, the disk and the metrics port show it.
    connects = re.findall(r"New client connected from \S+ as (\S+)", broker.log())
    assert sorted(c for c in connects if c.startswith("bridge-crash")) == [
        "bridge-crash-shard-0", "bridge-crash-shard-1", "bridge-crash-shard-2"]
    for name, shard in SHARDS.items():
        assert (outbox / f"shard-{shard}" / "outbox.sqlite3").is_file()
        assert f'source="{name}"' in metrics_text(port + shard)
        assert [f'source="{n}"' in metrics_text(port + shard) for n in names].count(True) == 1

    os.kill(pid, signal.SIGKILL)
    await daemon.wait_log("worker 1 exited with code -9; restarting it")
    await sub.wait_for(2, topic="feeds/feed-0", timeout=STARTUP)  # the restarted worker's
    assert sub.payloads("feeds/feed-0") == [b"1", b"2"]
    assert sub.payloads("ws-bridge/status/shard-1") == [b"online", b"offline", b"online"]
    for name in ("feed-4", "feed-1"):  # the other workers kept their connections
        assert [c.closed for c in upstream.connections if c.query["src"] == name] == [False]

    doc["sources"] = [s | {"subscribe": [{"send": {"op": "sub"}}]} for s in doc["sources"]]
    cfg.write_text(yaml.safe_dump(doc))
    daemon.signal(signal.SIGHUP)
    live = [c for c in upstream.connections if not c.closed]
    assert sorted(c.query["src"] for c in live) == sorted(names)
    for conn in live:
        assert json.loads((await conn.wait_received(1, timeout=STARTUP))[0]) == {"op": "sub"}
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0, daemon.log_text


async def test_the_workers_daemon_exits_1_once_every_source_has_given_up(
    upstream: Upstream, spawn: Spawn, tmp_path: Path,
) -> None:
    """Every source connects once, then the upstream refuses them all; with max_attempts 2,
    each worker's sources give up, and so does the daemon, with exit code 1."""
    names = list(SHARDS)
    doc = {"version": 1, "sinks": {"out": {"type": "stdout"}},
           "defaults": {"connect_timeout": "2s", "ping": {"interval": 0},
                        "reconnect": {"initial_delay": "20ms", "max_delay": "50ms",
                                      "max_attempts": 2}},
           "sources": [{"name": n, "url": f"{upstream.url}?src={n}", "routes": [{"sink": "out"}]}
                       for n in names]}
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(yaml.safe_dump(doc))

    async def refuse_after_the_first(conn: UpstreamConn) -> None:
        upstream.reject_next(503, times=100)
        conn.kill()

    upstream.handler = refuse_after_the_first
    daemon = await spawn("run", cfg, "--workers", "3")
    assert await daemon.wait_exit(timeout=STARTUP) == 1, daemon.log_text
    assert {c.query["src"] for c in upstream.connections} <= set(names)
    assert daemon.log_text.count("every source has given up") == 3
