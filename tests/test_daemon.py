"""End to end: the real ``python -m bridge`` daemon as a subprocess, against the loopback upstream.

What a user of the service sees: systemd notifications, a clean SIGTERM, live reloads that keep
connections, metrics that match the traffic, config errors, secrets kept out of the output, and
sharding. Every wait is bounded and wakes on an event (a datagram, a connection, a log line, an
HTTP answer, a line in a file).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import socket
import struct
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import (
    REPO,
    Daemon,
    NotifySocket,
    Spawn,
    assignments,
    eventually,
    seen,
)
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_config import EXAMPLE_ENV

# Caps on event waits, not expected durations: a cold start of the daemon (imports included) on
# a loaded 2-core host can take seconds, and a cap costs nothing when the event comes sooner.
STARTUP = 20.0


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest_asyncio.fixture
async def notify() -> AsyncIterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    await sock.close()


# Linux's SO_TIMESTAMPNS, which Python 3.11's socket module does not name.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class StampedNotify(NotifySocket):
    """A notify socket that also keeps the kernel's timestamp of each datagram (``sent``): when
    the daemon sent it, however late this test process, on a loaded machine, gets to read it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self.sock, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                while True:
                    try:
                        data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
                    except BlockingIOError:
                        break
                    seconds, nanoseconds = struct.unpack("qq", ancillary[0][2])
                    self.sent.append(seconds + nanoseconds / 1e9)
                    self.times.append(loop.time())
                    self.messages.append(data.decode())
                    self._changed.notify()
        finally:
            loop.remove_reader(self.sock)


def source(name: str, upstream: Upstream, **extra: Any) -> dict[str, Any]:
    """A source of the upstream that names itself in the query, routed to the ``out`` sink."""
    return {"name": name, "url": f"{upstream.url}?src={name}", "routes": [{"sink": "out"}],
            **extra}


def file_sink(tmp_path: Path, folder: str = "out") -> dict[str, Any]:
    return {"type": "file", "path": str(tmp_path / folder / "{source}.txt"), "format": "raw"}


def config(tmp_path: Path, sources: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "sinks": top.pop("sinks", None) or {"out": file_sink(tmp_path)},
        "defaults": {"connect_timeout": "2s", "ping": {"interval": 0},
                     "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}},
        "sources": sources,
        **top,
    }


def write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def conns(upstream: Upstream, name: str) -> list[UpstreamConn]:
    return [c for c in upstream.connections if c.query.get("src") == name]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def file_has(path: Path, n: int, timeout: float = 15.0) -> list[str]:
    async def enough() -> list[str] | None:
        got = lines(path)
        return got if len(got) >= n else None

    return await eventually(enough, timeout, f"{n} lines in {path}")


async def received_json(conn: UpstreamConn, n: int) -> list[Any]:
    return [json.loads(m) for m in await conn.wait_received(n)]


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def is_ready(message: str) -> bool:
    return assignments(message).get("READY") == "1"


async def reload(daemon: Daemon, notify: NotifySocket) -> None:
    """SIGHUP, then wait for systemd's view of it: RELOADING=1, then READY=1."""
    start = len(notify.messages)
    daemon.signal(signal.SIGHUP)
    began = await notify.wait_for(lambda m: "RELOADING=1" in m, start=start, what="RELOADING=1")
    await notify.wait_for(is_ready, start=began + 1, what="READY=1 after the reload")


async def run_ready(spawn: Spawn, cfg: Path, notify: NotifySocket, *args: str) -> Daemon:
    daemon = await spawn("run", cfg, *args, env={"NOTIFY_SOCKET": notify.path})
    await notify.wait_for(is_ready, timeout=STARTUP, what="READY=1 at startup")
    return daemon


async def stop(daemon: Daemon) -> None:
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0, daemon.log_text


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, seen(answer.read().decode())
    except urllib.error.HTTPError as error:
        return error.code, seen(error.read().decode())


async def get(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, url)


async def metrics_port(daemon: Daemon) -> int:
    line = await daemon.wait_log("metrics: serving on http://", timeout=STARTUP)
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    return int(match.group(1))


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition, or None when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


# -- systemd notify -----------------------------------------------------------------------------


async def test_tells_systemd_ready_status_watchdog_reload_and_stopping(
    spawn: Spawn, upstream: Upstream, tmp_path: Path
) -> None:
    notify = StampedNotify()
    try:
        await _notifies_systemd(spawn, notify, upstream, tmp_path)
    finally:
        await notify.close()


async def _notifies_systemd(
    spawn: Spawn, notify: StampedNotify, upstream: Upstream, tmp_path: Path
) -> None:
    cfg = write(tmp_path / "bridge.yaml", config(tmp_path, [source("feed", upstream)]))
    daemon = await spawn("run", cfg, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})

    ready = await notify.wait_for(is_ready, timeout=STARTUP, what="READY=1")
    # READY=1 comes once the source exists: the status line already counts it.
    assert assignments(notify.messages[ready])["STATUS"].endswith("/1 sources connected")
    await upstream.wait_connections(1)
    await notify.wait_for(lambda m: assignments(m).get("STATUS") == "1/1 sources connected",
                          what="STATUS=1/1 sources connected")

    # WatchdogSec=200ms: a ping every 100ms (half of it), from the event loop. The gaps are
    # measured between the kernel's send timestamps, so this process being late to read them
    # changes nothing; only the daemon's own timing does.
    interval, count = 0.1, 10

    def pings(start: int = 0) -> list[float]:
        sent = zip(notify.messages[start:], notify.sent[start:], strict=True)
        return [stamp for message, stamp in sent if message == "WATCHDOG=1"]

    await notify.wait_for(lambda _: len(pings()) >= count, timeout=10 * count * interval,
                          what=f"{count} WATCHDOG=1 pings")
    gaps = [b - a for a, b in itertools.pairwise(pings()[:count])]
    # Never faster than the cadence: a sleep does not end early, however loaded the machine.
    assert min(gaps) >= 0.8 * interval, gaps
    # As often as the cadence asks: the mean gap stays under WatchdogSec, the deadline systemd
    # enforces, which is twice the cadence (a daemon pinging once per WatchdogSec fails here).
    assert sum(gaps) / len(gaps) < 2 * interval, gaps

    start, before = len(notify.messages), monotonic_usec()
    daemon.signal(signal.SIGHUP)
    began = await notify.wait_for(lambda m: "RELOADING=1" in m, start=start, what="RELOADING=1")
    reloading = assignments(notify.messages[began])
    assert before <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
    after = await notify.wait_for(is_ready, start=began + 1, what="READY=1 after RELOADING=1")
    # The pings go on after the reload.
    await notify.wait_for(lambda _: len(pings(after)) >= 3, timeout=30 * interval,
                          what="WATCHDOG=1 pings after the reload")

    daemon.signal(signal.SIGTERM)
    await notify.wait_for(lambda m: "STOPPING=1" in m, start=after + 1, what="STOPPING=1")
    assert await daemon.wait_exit() == 0, daemon.log_text


# -- SIGTERM ------------------------------------------------------------------------------------


async def test_sigterm_unsubscribes_closes_cleanly_and_keeps_every_message(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    n = 50

    async def feed(conn: UpstreamConn) -> None:
        await conn.recv()  # the subscribe message
        for i in range(n):
            await conn.send_json({"n": i})

    upstream.handler = feed
    src = source("trades", upstream,
                 subscribe=[{"send": {"op": "subscribe", "channel": "trades"}}],
                 unsubscribe=[{"send": {"op": "unsubscribe", "channel": "trades"}}])
    cfg = write(tmp_path / "bridge.yaml", config(tmp_path, [src]))
    daemon = await run_ready(spawn, cfg, notify)
    (conn,) = await upstream.wait_connections(1)
    out = tmp_path / "out" / "trades.txt"
    await file_has(out, n)

    daemon.signal(signal.SIGTERM)
    assert await conn.wait_closed() == 1000
    assert await daemon.wait_exit(timeout=10.0) == 0, daemon.log_text
    assert [json.loads(m) for m in conn.received] == [
        {"op": "subscribe", "channel": "trades"},
        {"op": "unsubscribe", "channel": "trades"},
    ]
    assert [json.loads(line)["n"] for line in lines(out)] == list(range(n))


# -- live reload --------------------------------------------------------------------------------


async def test_reload_keeps_unchanged_source_connected_and_reconnects_changed_one(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    cfg = config(tmp_path, [source("keep", upstream), source("change", upstream)])
    path = write(tmp_path / "bridge.yaml", cfg)
    daemon = await run_ready(spawn, path, notify)
    await upstream.wait_connections(2)

    cfg["sources"][1]["connect_timeout"] = "3s"  # a connection setting
    write(path, cfg)
    await reload(daemon, notify)
    await upstream.wait_connections(3)

    (kept,) = conns(upstream, "keep")
    assert not kept.closed
    old, new = conns(upstream, "change")
    assert await old.wait_closed() == 1000
    assert not new.closed
    await daemon.wait_log("reload: source change reconnects (changed: connect_timeout)")
    await kept.send_json({"still": "flowing"})
    assert await file_has(tmp_path / "out" / "keep.txt", 1) == ['{"still":"flowing"}']
    assert len(conns(upstream, "keep")) == 1
    await stop(daemon)


async def test_reload_of_subscriptions_only_resubscribes_on_the_live_socket(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    def feed(channel: str) -> dict[str, Any]:
        return source("feed", upstream,
                      subscribe=[{"send": {"op": "sub", "ch": channel}}],
                      unsubscribe=[{"send": {"op": "unsub", "ch": channel}}])

    path = write(tmp_path / "bridge.yaml", config(tmp_path, [feed("a")]))
    daemon = await run_ready(spawn, path, notify)
    (conn,) = await upstream.wait_connections(1)
    assert await received_json(conn, 1) == [{"op": "sub", "ch": "a"}]

    write(path, config(tmp_path, [feed("b")]))
    await reload(daemon, notify)

    assert await received_json(conn, 3) == [
        {"op": "sub", "ch": "a"}, {"op": "unsub", "ch": "a"}, {"op": "sub", "ch": "b"},
    ]
    await conn.send_json({"ch": "b"})
    assert await file_has(tmp_path / "out" / "feed.txt", 1) == ['{"ch":"b"}']
    assert len(upstream.connections) == 1
    assert not conn.closed
    await stop(daemon)
    # The shutdown unsubscribes what the reload subscribed.
    assert json.loads(conn.received[-1]) == {"op": "unsub", "ch": "b"}


async def test_reload_rejects_invalid_config_and_keeps_forwarding(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    cfg = config(tmp_path, [source("feed", upstream)])
    path = write(tmp_path / "bridge.yaml", cfg)
    daemon = await run_ready(spawn, path, notify)
    (conn,) = await upstream.wait_connections(1)
    out = tmp_path / "out" / "feed.txt"

    cfg["sources"][0]["connect_timeout"] = "banana"  # a type error
    write(path, cfg)
    text = path.read_text().splitlines()
    row = next(i for i, line in enumerate(text) if "connect_timeout: banana" in line)
    col = text[row].index("connect_timeout")
    start = len(daemon.stderr)
    daemon.signal(signal.SIGHUP)
    error = await daemon.wait_log(f"{path}:{row + 1}:{col + 1}: ", start=start)
    assert "sources[0].connect_timeout" in error
    await daemon.wait_log("reload rejected: keeping the running config", start=start)

    await conn.send_json({"n": 1})
    assert await file_has(out, 1) == ['{"n":1}']

    path.write_text("version: 1\nsinks: [\n")  # not even YAML
    start = len(daemon.stderr)
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log(f"{path}:3:1: ", start=start)
    await daemon.wait_log("reload rejected: keeping the running config", start=start)

    await conn.send_json({"n": 2})
    assert await file_has(out, 2) == ['{"n":1}', '{"n":2}']
    assert daemon.returncode is None
    assert len(upstream.connections) == 1
    assert not conn.closed
    await stop(daemon)


async def test_reload_starts_added_source_and_unsubscribes_removed_one(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    gone = source("gone", upstream, unsubscribe=[{"send": {"op": "bye"}}])
    path = write(tmp_path / "bridge.yaml", config(tmp_path, [source("stay", upstream), gone]))
    daemon = await run_ready(spawn, path, notify)
    await upstream.wait_connections(2)
    (old,) = conns(upstream, "gone")

    write(path, config(tmp_path, [source("stay", upstream), source("new", upstream)]))
    await reload(daemon, notify)

    assert await old.wait_closed() == 1000
    assert [json.loads(m) for m in old.received] == [{"op": "bye"}]
    await upstream.wait_connections(3)
    (added,) = conns(upstream, "new")
    await added.send_json({"from": "new"})
    assert await file_has(tmp_path / "out" / "new.txt", 1) == ['{"from":"new"}']
    (stay,) = conns(upstream, "stay")
    assert not stay.closed
    assert len(conns(upstream, "gone")) == 1  # not reconnected after its removal
    await stop(daemon)


async def test_reload_of_routes_only_takes_effect_without_reconnecting(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    cfg = config(tmp_path, [source("feed", upstream)])
    path = write(tmp_path / "bridge.yaml", cfg)
    daemon = await run_ready(spawn, path, notify)
    (conn,) = await upstream.wait_connections(1)
    await conn.send_json({"n": 1})
    await file_has(tmp_path / "out" / "feed.txt", 1)

    cfg["sinks"]["extra"] = file_sink(tmp_path, "extra")
    cfg["sources"][0]["routes"].append({"sink": "extra"})
    write(path, cfg)
    await reload(daemon, notify)

    await conn.send_json({"n": 2})
    assert await file_has(tmp_path / "extra" / "feed.txt", 1) == ['{"n":2}']
    assert await file_has(tmp_path / "out" / "feed.txt", 2) == ['{"n":1}', '{"n":2}']
    assert len(upstream.connections) == 1
    assert not conn.closed
    await stop(daemon)


# -- health and metrics -------------------------------------------------------------------------


async def test_metrics_match_the_traffic_and_status_prints_the_sources(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    n = 20
    frames = [json.dumps({"n": i}) for i in range(n)]

    async def feed(conn: UpstreamConn) -> None:
        for frame in frames:
            await conn.send(frame)

    upstream.handler = feed
    cfg = config(tmp_path, [source("ticker", upstream)], metrics={"listen": "127.0.0.1:0"})
    daemon = await run_ready(spawn, write(tmp_path / "bridge.yaml", cfg), notify)
    base = f"http://127.0.0.1:{await metrics_port(daemon)}"
    await file_has(tmp_path / "out" / "ticker.txt", n)

    async def scraped() -> str | None:
        code, text = await get(f"{base}/metrics")
        assert code == 200
        published = sample(text, "ws_bridge_sink_messages_published_total", sink="out")
        return text if published == n else None

    text = await eventually(scraped, what=f"{n} messages published in the metrics")
    assert sample(text, "ws_bridge_source_messages_received_total", source="ticker") == n
    assert sample(text, "ws_bridge_source_messages_forwarded_total",
                  source="ticker", sink="out") == n
    assert sample(text, "ws_bridge_source_bytes_received_total",
                  source="ticker") == sum(map(len, frames))
    assert sample(text, "ws_bridge_source_state", source="ticker", state="connected") == 1
    assert sample(text, "ws_bridge_source_state", source="ticker", state="reconnecting") == 0
    assert sample(text, "ws_bridge_sink_queue_depth", sink="out") == 0
    assert await get(f"{base}/healthz") == (200, "ok\n")
    assert await get(f"{base}/readyz") == (200, "ready\n")

    status = await spawn("status", "--url", base, "--interval", "0.2")
    assert await status.wait_exit() == 0, status.log_text
    row = next(line.split() for line in status.stdout if line.startswith("ticker"))
    assert row[:2] == ["ticker", "connected"]
    assert any(line.split()[:2] == ["out", "file"] for line in status.stdout)
    await stop(daemon)


GRACE = 1.5  # metrics.ready_grace, short to keep the test short


async def test_readyz_fails_with_a_reason_once_a_lost_source_outlives_its_grace(
    spawn: Spawn, upstream: Upstream, tmp_path: Path
) -> None:
    cfg = config(tmp_path, [source("ticker", upstream)],
                 metrics={"listen": "127.0.0.1:0", "ready_grace": f"{GRACE}s"})
    daemon = await spawn("run", write(tmp_path / "bridge.yaml", cfg))
    base = f"http://127.0.0.1:{await metrics_port(daemon)}"
    await upstream.wait_connections(1)
    assert await eventually(
        lambda: _ready_now(base), what="/readyz 200 while connected") == (200, "ready\n")

    # Taken before the stop, the daemon's own loss (same CLOCK_MONOTONIC) cannot precede it.
    lost = time.monotonic()
    await upstream.stop()  # connects are refused from now on; the daemon keeps retrying
    _, body = await eventually(lambda: _not_ready(base), timeout=GRACE + 10.0,
                                  what="/readyz 503 after the grace period")
    assert time.monotonic() - lost >= GRACE, "503 only once the grace period is over"
    assert "source ticker: " in body
    assert "grace period over" in body
    assert (await get(f"{base}/healthz"))[0] == 200  # alive, only not ready
    await stop(daemon)


async def _ready_now(base: str) -> tuple[int, str] | None:
    answer = await get(f"{base}/readyz")
    return answer if answer[0] == 200 else None


async def _not_ready(base: str) -> tuple[int, str] | None:
    answer = await get(f"{base}/readyz")
    return answer if answer[0] == 503 else None


# -- config errors and secrets ------------------------------------------------------------------


async def test_invalid_config_exits_78_before_connecting_with_file_line_col(
    spawn: Spawn, upstream: Upstream, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "sinks:\n"
        f"  out: {{type: file, path: {tmp_path}/out.txt}}\n"
        "sources:\n"
        "  - name: feed\n"
        f"    url: {upstream.url}\n"
        "    reconect: {initial_delay: 50ms}\n"
        "    routes: [{sink: nowhere}]\n"
    )
    daemon = await spawn("run", bad)
    assert await daemon.wait_exit(timeout=STARTUP) == 78
    located = [line for line in daemon.stderr if line.startswith(f"{bad}:7:5: ")]
    assert located and "did you mean 'reconnect'" in located[0], daemon.log_text
    assert any(re.match(rf"{re.escape(str(bad))}:8:\d+: .*nowhere", line)
               for line in daemon.stderr), daemon.log_text
    assert upstream.handshakes == []


async def test_check_accepts_every_shipped_config(spawn: Spawn) -> None:
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert paths
    # Two at a time (two cores): each check's time cap covers its own cold start, not a share
    # of eighteen starting at once on a loaded machine.
    checks, codes = [], []
    for first in range(0, len(paths), 2):
        pair = [await spawn("check", path, env=EXAMPLE_ENV.get(path.name))
                for path in paths[first:first + 2]]
        codes += await asyncio.gather(*(c.wait_exit(timeout=STARTUP) for c in pair))
        checks += pair
    assert codes == [0] * len(paths), [c.log_text for c in checks]
    for path, check in zip(paths, checks, strict=True):
        assert check.stdout[0].startswith(f"{path}: OK")


async def test_secrets_from_env_never_reach_check_output_or_daemon_logs(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    ref = "${env:WSB_TEST_TOKEN}"

    async def auth(conn: UpstreamConn) -> None:
        assert (await conn.recv_json())["token"] == token
        await conn.send_json({"type": "auth_ok"})
        await conn.send_json({"type": "event"})

    upstream.handler = auth
    upstream.reject_next(401)  # the rejection path is logged too
    src = source("private", upstream, headers={"Authorization": f"Bearer {ref}"},
                 auth={"send": {"type": "auth", "token": ref}, "expect": {"type": "auth_ok"}})
    src["url"] += f"&token={ref}"
    path = write(tmp_path / "bridge.yaml", config(tmp_path, [src]))
    env = {"WSB_TEST_TOKEN": token, "NOTIFY_SOCKET": notify.path}

    check = await spawn("check", path, env=env)
    assert await check.wait_exit() == 0, check.log_text
    daemon = await spawn("--log-level", "debug", "run", path, env=env)
    await file_has(tmp_path / "out" / "private.txt", 1)
    (conn,) = await upstream.wait_connections(1)
    assert conn.query["token"] == token  # the secret was used where the config put it
    assert conn.headers["Authorization"] == f"Bearer {token}"
    await stop(daemon)

    assert "401" in daemon.log_text  # the rejection was logged, without the token
    for output in (check.stdout, check.stderr, daemon.stdout, daemon.stderr):
        assert not [line for line in output if token in line]
    assert not [m for m in notify.messages if token in m]


async def test_env_values_that_are_config_are_shown_as_they_are_and_secrets_are_not(
    spawn: Spawn, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every connect is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = f"tok-{uuid.uuid4().hex}"
    src = {"name": "closed", "url": "ws://127.0.0.1:${env:WSB_PORT}/ws?token=${env:WSB_TOKEN}",
           "routes": [{"sink": "out"}]}
    cfg = config(tmp_path, [src])
    cfg["sinks"]["out"]["path"] = str(tmp_path / "out" / "${env:WSB_ONE}.txt")
    path = write(tmp_path / "bridge.yaml", cfg)
    env = {"WSB_PORT": str(port), "WSB_TOKEN": token, "WSB_ONE": "1"}

    check = await spawn("check", path, env=env)
    assert await check.wait_exit() == 0, check.log_text
    summary = "\n".join(check.stdout)
    assert "OK (1 sources, 1 sinks)" in summary  # a variable set to 1 masks no count
    assert f"ws://127.0.0.1:{port}/ws" in summary  # nor the host, nor the port
    assert token not in summary
    daemon = await spawn("run", path, env=env)
    # The connect error names the URL, and asyncio's loop (not uvloop's) the address too.
    line = await daemon.wait_log(f"network error: ws://127.0.0.1:{port}/ws", timeout=STARTUP)
    assert "***" not in line.partition("network error:")[2], line
    assert "Connect call failed" not in line or f"('127.0.0.1', {port})" in line, line
    await stop(daemon)
    assert token not in daemon.log_text


# -- sharding -----------------------------------------------------------------------------------


async def test_shard_runs_exactly_the_sources_it_owns(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    names = [f"feed-{i}" for i in range(10)]
    # What shard 0 of 3 owns, pinned rather than computed with bridge.shard.owner: rendezvous
    # hashing by name must not move sources between releases (shard 1 owns feed-0 and feed-2,
    # shard 2 feed-1, feed-3, feed-8 and feed-9; tests/test_crashes.py pins --workers 3).
    mine = ["feed-4", "feed-5", "feed-6", "feed-7"]

    path = write(tmp_path / "bridge.yaml", config(tmp_path, [source(n, upstream) for n in names]))
    daemon = await run_ready(spawn, path, notify, "--shard", "0/3")
    await daemon.wait_log(f"started {len(mine)} sources")
    await upstream.wait_connections(len(mine))
    for name in mine:
        await daemon.wait_log(f"source {name}: connected")
    assert sorted(c.query["src"] for c in upstream.connections) == mine
    await stop(daemon)


async def test_workers_run_every_source_exactly_once_and_stop_together(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    names = [f"feed-{i}" for i in range(6)]
    path = write(tmp_path / "bridge.yaml", config(tmp_path, [source(n, upstream) for n in names]))
    daemon = await run_ready(spawn, path, notify, "--workers", "2")
    await upstream.wait_connections(len(names))
    for name in names:
        await daemon.wait_log(f"source {name}: connected")
    assert sorted(c.query["src"] for c in upstream.connections) == names  # each exactly once
    assert "2/2 workers running" in notify.messages[-1]
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0, daemon.log_text
    for conn in upstream.connections:  # every worker closed its sources cleanly
        assert await conn.wait_closed() == 1000


async def test_a_sink_that_cannot_start_stops_the_daemon_with_a_clear_error(
    spawn: Spawn, upstream: Upstream, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broker = {"type": "mqtt", "url": "mqtt://127.0.0.1:1",
              "queue": {"path": str(blocker / "outbox")}}  # under a file: nobody can create it
    cfg = config(tmp_path, [source("feed", upstream)], sinks={"out": broker})
    daemon = await spawn("run", write(tmp_path / "bridge.yaml", cfg))
    assert await daemon.wait_exit(timeout=STARTUP) == 1
    assert "sink 'out'" in daemon.log_text and "not starting" in daemon.log_text
    assert "Traceback" not in daemon.log_text
    assert upstream.handshakes == []  # nothing connected


async def test_a_sink_that_gives_up_stops_alone_and_the_others_go_on(
    spawn: Spawn, upstream: Upstream, tmp_path: Path
) -> None:
    async def feed(conn: UpstreamConn) -> None:
        for n in range(5):
            await conn.send_json({"n": n})

    upstream.handler = feed
    broker = {"type": "mqtt", "url": "mqtt://127.0.0.1:1",  # nothing listens there
              "reconnect": {"initial_delay": "10ms", "max_delay": "10ms", "max_attempts": 2}}
    feed_source = source("feed", upstream)
    feed_source["routes"] = [{"sink": "out"}, {"sink": "broker"}]
    cfg = config(tmp_path, [feed_source], sinks={"out": file_sink(tmp_path), "broker": broker})
    daemon = await spawn("run", write(tmp_path / "bridge.yaml", cfg))
    await daemon.wait_log("the sink has stopped", timeout=STARTUP)
    out = tmp_path / "out" / "feed.txt"
    await eventually(lambda: _lines_at_least(out, 5), what="5 lines in the file sink")
    await stop(daemon)
    assert "Traceback" not in daemon.log_text


async def _lines_at_least(path: Path, count: int) -> list[str] | None:
    found = lines(path)
    return found if len(found) >= count else None


async def test_sighup_reopens_files_after_an_external_logrotate(
    spawn: Spawn, notify: NotifySocket, upstream: Upstream, tmp_path: Path
) -> None:
    sent = asyncio.Event()

    async def feed(conn: UpstreamConn) -> None:
        await conn.send_json({"n": 0})
        await sent.wait()
        await conn.send_json({"n": 1})

    upstream.handler = feed
    path = write(tmp_path / "bridge.yaml", config(tmp_path, [source("feed", upstream)]))
    daemon = await run_ready(spawn, path, notify)
    out = tmp_path / "out" / "feed.txt"
    await eventually(lambda: _lines_at_least(out, 1), what="the first line")
    out.rename(out.with_suffix(".txt.1"))  # what logrotate does before it signals
    await reload(daemon, notify)
    sent.set()
    assert await eventually(lambda: _lines_at_least(out, 1), what="a line in a new file") == [
        '{"n":1}'
    ]
    assert lines(out.with_suffix(".txt.1")) == ['{"n":0}']
    await stop(daemon)
