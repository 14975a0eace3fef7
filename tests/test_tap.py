"""``ws-bridge tap`` and the daemon's /tap: live envelope lines, filtered by source, behind a
token, secrets redacted; a slow reader is cut off while a real MQTT subscriber keeps receiving
everything. The real daemon, the loopback upstream, a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config.load import load_config
from bridge.errors import ConfigError
from tests.support.daemon import NotifySocket
from tests.support.mosquitto import Broker, free_port
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_daemon import (
    Spawn,
    config,
    notify,  # noqa: F401 - the fixture
    source,
    stop,
    write,
)
from tests.test_outbox import Subscribe

TOKEN = "tap-token-0123456789"
SECRET = "s3cret-query-token"  # a credential in the source's URL: redacted everywhere


def tap_config(tmp_path: Path, upstream: Upstream, broker: Broker, port: int,
               **tap: Any) -> Path:
    cfg = config(tmp_path, [source("a", upstream), source("b", upstream)],
                 sinks={"out": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}"}},
                 metrics={"listen": f"127.0.0.1:{port}", "tap": True,
                          "tap_token": "${env:TAP_TOKEN}", **tap})
    for src in cfg["sources"]:
        src["url"] += f"&token={SECRET}"
        src["routes"] = [{"sink": "out", "topic": "feeds/{source}"}]
    return write(tmp_path / "tap.yaml", cfg)


def sender(go: asyncio.Event, count: int, size: int = 0) -> Callable[[UpstreamConn], Any]:
    """Each connection sends ``count`` messages once ``go`` is set, naming its source."""
    async def handler(conn: UpstreamConn) -> None:
        await go.wait()
        name = conn.query["src"]
        for n in range(count):
            await conn.send_json({"src": name, "n": n, "echo": SECRET, "pad": "x" * size})
        await conn.recv(timeout=60)
    return handler


def test_a_tap_without_a_token_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"version": 1, "sinks": {"out": {"type": "stdout"}},
                                       "metrics": {"listen": "127.0.0.1:9108", "tap": True},
                                       "sources": [{"name": "a", "url": "ws://127.0.0.1:1/",
                                                    "routes": [{"sink": "out"}]}]})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(issue) for issue in caught.value.issues] == \
        [f"{path}:5:1: metrics: missing required key 'tap_token'"]
    short = {"listen": "127.0.0.1:9108", "tap": True, "tap_token": "short"}
    with pytest.raises(ConfigError, match="tap_token"):
        load_config(write(path, {**yaml.safe_load(path.read_text()), "metrics": short}))


async def test_tap_streams_a_sources_messages_redacted_behind_its_token(
    mosquitto: Callable[..., Broker], mqtt_subscriber: Subscribe, upstream: Upstream,
    spawn: Spawn, notify: NotifySocket, tmp_path: Path,  # noqa: F811
) -> None:
    go = asyncio.Event()
    upstream.handler = sender(go, 5)
    broker, port = mosquitto(), free_port()
    sub = await mqtt_subscriber(broker, "feeds/#")
    daemon = await spawn("run", tap_config(tmp_path, upstream, broker, port),
                         env={"NOTIFY_SOCKET": notify.path, "TAP_TOKEN": TOKEN})
    await notify.wait_for(lambda m: "READY=1" in m, timeout=20, what="READY=1")
    url = f"http://127.0.0.1:{port}"
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "tap", "--url", url, "--token", "wrong-token-000000",
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(refused.communicate(), 20)
    assert refused.returncode == 69 and "the token was refused" in err.decode()
    tap = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "tap", "--url", url, "a",
        env={**os.environ, "WS_BRIDGE_TAP_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await daemon.wait_log("tap: a reader connected (a)", timeout=20)
    go.set()
    assert tap.stdout is not None
    got = [json.loads(await asyncio.wait_for(tap.stdout.readline(), 20)) for _ in range(5)]
    assert [(e["source"], e["payload"]["src"], e["payload"]["n"]) for e in got] == \
        [("a", "a", n) for n in range(5)]
    assert all(e["payload"]["echo"] == "***" and "received_at" in e for e in got)
    await sub.wait_for(10)  # both sources delivered as ever
    await stop(daemon)  # the tap's stream ends with the daemon
    rest, err = await asyncio.wait_for(tap.communicate(), 20)
    assert tap.returncode == 0, err
    assert SECRET not in rest.decode() + err.decode() + daemon.log_text
    assert b'"source":"b"' not in rest


async def test_a_slow_reader_is_cut_off_and_the_bridge_keeps_delivering(
    mosquitto: Callable[..., Broker], mqtt_subscriber: Subscribe, upstream: Upstream,
    spawn: Spawn, notify: NotifySocket, tmp_path: Path,  # noqa: F811
) -> None:
    count = 5000
    go = asyncio.Event()
    upstream.handler = sender(go, count, size=200)
    broker, port = mosquitto(), free_port()
    sub = await mqtt_subscriber(broker, "feeds/a")
    daemon = await spawn("run", tap_config(tmp_path, upstream, broker, port, tap_buffer=20),
                         env={"NOTIFY_SOCKET": notify.path, "TAP_TOKEN": TOKEN})
    await notify.wait_for(lambda m: "READY=1" in m, timeout=20, what="READY=1")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    slow.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(slow, ("127.0.0.1", port))
    await loop.sock_sendall(slow, f"GET /tap?token={TOKEN} HTTP/1.0\r\n\r\n".encode())
    await daemon.wait_log("tap: a reader connected (all)", timeout=20)
    go.set()
    await sub.wait_for(count, timeout=60)  # every message reached the real subscriber
    await daemon.wait_log("tap: a reader fell more than 20 lines behind; cut off", timeout=20)
    received = b""
    while chunk := await asyncio.wait_for(loop.sock_recv(slow, 65536), 20):  # then EOF
        received += chunk
    slow.close()
    assert 0 < received.count(b"\n") < count  # it had some, then its stream was shut
    assert [int(m.payload and json.loads(m.payload)["n"]) for m in sub.messages] == \
        list(range(count))
    await stop(daemon)
