"""The metrics endpoint over real loopback HTTP: Prometheus counters, health, readiness, status."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import MetricsServer
from bridge.metrics_client import fetch_status
from bridge.stats.snapshot import SinkSnapshot, Snapshot, SourceSnapshot
from bridge.status_table import format_status_table

STATES = ("connecting", "authenticating", "subscribing", "connected", "reconnecting", "stopped",
          "failed")


def source(name: str, **changes: Any) -> SourceSnapshot:
    fields: dict[str, Any] = {
        "name": name, "state": "connected", "connected_since": 100.0, "received": 0, "bytes": 0,
        "invalid": 0, "forwarded": {}, "dropped": {}, "reconnects": {},
        "last_message_age": None, "handshake_seconds": None, "grace_until": None,
    }
    return SourceSnapshot(**{**fields, **changes})


def sink(name: str, **changes: Any) -> SinkSnapshot:
    fields: dict[str, Any] = {
        "name": name, "type": "mqtt", "up": True, "queue_depth": 0, "published": 0, "errors": 0,
        "dropped": {}, "publish_latency": None,
    }
    return SinkSnapshot(**{**fields, **changes})


class Bridge:
    """Plays the supervisor: hands out whatever snapshot the test set, counting the requests."""

    def __init__(self) -> None:
        self.current = Snapshot((source("ticker"),), (sink("broker"),), taken_at=time.monotonic())
        self.taken = 0

    async def snapshot(self) -> Snapshot:
        self.taken += 1
        return self.current


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


async def fetch(server: MetricsServer, path: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}{path}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def bridge() -> Bridge:
    return Bridge()


@pytest.fixture
async def server(bridge: Bridge) -> AsyncIterator[MetricsServer]:
    metrics = MetricsServer(bridge.snapshot, "127.0.0.1:0", health_timeout=0.2,
                            snapshot_timeout=0.3)
    await metrics.start()
    yield metrics
    await metrics.close()


async def test_scrape_reports_each_sources_counters_with_labels(
    server: MetricsServer, bridge: Bridge
) -> None:
    bridge.current = Snapshot(
        (source("ticker", received=1200, bytes=96000, invalid=3,
                forwarded={"broker": 1150, "archive": 1197}, dropped={"queue_full": 47},
                reconnects={"network": 2, "auth_rejected": 1}, last_message_age=0.4,
                handshake_seconds=0.031),
         source("trades", state="reconnecting")),
        (sink("broker", queue_depth=12, published=1150, errors=2, dropped={"queue_full": 47},
              publish_latency=0.004),
         sink("archive", type="file", up=False)),
        taken_at=time.monotonic(),
    )
    status, kind, text = await fetch(server, "/metrics")
    assert status == 200
    assert kind.startswith("text/plain")
    got = samples(text)

    def value(name: str, **labels: str) -> float:
        return got[(f"ws_bridge_{name}", frozenset(labels.items()))]

    assert value("source_messages_received_total", source="ticker") == 1200
    assert value("source_bytes_received_total", source="ticker") == 96000
    assert value("source_messages_invalid_total", source="ticker") == 3
    assert value("source_messages_forwarded_total", source="ticker", sink="broker") == 1150
    assert value("source_messages_forwarded_total", source="ticker", sink="archive") == 1197
    assert value("source_messages_dropped_total", source="ticker", reason="queue_full") == 47
    assert value("source_reconnects_total", source="ticker", reason="network") == 2
    assert value("source_reconnects_total", source="ticker", reason="auth_rejected") == 1
    assert value("source_last_message_age_seconds", source="ticker") == 0.4
    assert value("source_handshake_seconds", source="ticker") == 0.031
    assert value("source_messages_received_total", source="trades") == 0
    assert {s: value("source_state", source="trades", state=s) for s in STATES} == {
        s: float(s == "reconnecting") for s in STATES
    }
    assert value("sink_queue_depth", sink="broker") == 12
    assert value("sink_messages_published_total", sink="broker") == 1150
    assert value("sink_errors_total", sink="broker") == 2
    assert value("sink_messages_dropped_total", sink="broker", reason="queue_full") == 47
    assert value("sink_publish_latency_seconds", sink="broker") == 0.004
    assert value("sink_up", sink="broker") == 1
    assert value("sink_up", sink="archive") == 0


async def test_scrape_reports_recovery_events_and_what_went_upstream(
    server: MetricsServer, bridge: Bridge
) -> None:
    bridge.current = Snapshot(
        (source("ticker", recovery={"duplicate": 9, "no_key": 1, "no_seq": 2, "gap": 3,
                                    "resubscribe": 4},
                sent=57, outgoing_dropped={"expired": 5, "overflow": 6, "render_error": 7}),
         source("quiet")),
        (), taken_at=time.monotonic(),
    )
    _, _, text = await fetch(server, "/metrics")
    got = {(name, labels): v for (name, labels), v in samples(text).items()
           if name in ("ws_bridge_source_recovery_total", "ws_bridge_source_messages_sent_total",
                       "ws_bridge_source_outgoing_dropped_total")}

    def key(name: str, src: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return f"ws_bridge_source_{name}_total", frozenset({"source": src, **labels}.items())

    assert got == {
        key("recovery", "ticker", event="duplicate"): 9,
        key("recovery", "ticker", event="no_key"): 1,
        key("recovery", "ticker", event="no_seq"): 2,
        key("recovery", "ticker", event="gap"): 3,
        key("recovery", "ticker", event="resubscribe"): 4,
        key("messages_sent", "ticker"): 57,
        key("messages_sent", "quiet"): 0,
        key("outgoing_dropped", "ticker", reason="expired"): 5,
        key("outgoing_dropped", "ticker", reason="overflow"): 6,
        key("outgoing_dropped", "ticker", reason="render_error"): 7,
    }
    kinds = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert kinds["ws_bridge_source_recovery"] == "counter"
    assert kinds["ws_bridge_source_messages_sent"] == "counter"
    assert kinds["ws_bridge_source_outgoing_dropped"] == "counter"


async def test_unknown_ages_and_latencies_are_absent_rather_than_zero(
    server: MetricsServer,
) -> None:
    _, _, text = await fetch(server, "/metrics")
    names = {name for name, _ in samples(text)}
    assert "ws_bridge_source_messages_received_total" in names
    assert "ws_bridge_source_last_message_age_seconds" not in names
    assert "ws_bridge_source_handshake_seconds" not in names
    assert "ws_bridge_sink_publish_latency_seconds" not in names


async def test_scrape_includes_process_metrics(server: MetricsServer) -> None:
    _, _, text = await fetch(server, "/metrics")
    names = {name for name, _ in samples(text)}
    assert {"process_resident_memory_bytes", "python_info"} <= names


async def test_each_scrape_takes_one_fresh_snapshot(server: MetricsServer, bridge: Bridge) -> None:
    key = ("ws_bridge_source_messages_received_total", frozenset({("source", "ticker")}))
    for received in (10, 25):
        bridge.current = Snapshot((source("ticker", received=received),), (), time.monotonic())
        _, _, text = await fetch(server, "/metrics")
        assert samples(text)[key] == received
    assert bridge.taken == 2


async def test_scrape_fails_fast_when_the_bridge_cannot_answer(bridge: Bridge) -> None:
    never = asyncio.Event()

    async def stuck() -> Snapshot:
        await never.wait()
        return bridge.current

    metrics = MetricsServer(stuck, "127.0.0.1:0", snapshot_timeout=0.2)
    await metrics.start()
    try:
        started = time.monotonic()
        status, _, _ = await fetch(metrics, "/metrics")
        assert status == 503
        assert time.monotonic() - started < 2
    finally:
        await metrics.close()


async def test_healthz_is_ok_while_the_loop_answers(server: MetricsServer) -> None:
    assert await fetch(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


async def test_healthz_fails_while_the_loop_is_blocked(server: MetricsServer) -> None:
    answers: list[tuple[int, str, str]] = []
    asking = threading.Event()

    def ask() -> None:
        asking.set()
        answers.append(get(f"http://127.0.0.1:{server.port}/healthz"))

    probe = threading.Thread(target=ask)
    probe.start()
    # The stuck loop under test: blocking calls, so nothing else can run on the loop meanwhile.
    asking.wait(timeout=5)
    time.sleep(1.0)
    probe.join(timeout=5)
    assert answers and answers[0][0] == 503
    assert (await fetch(server, "/healthz"))[0] == 200


async def test_readyz_is_ok_when_everything_is_connected_and_up(server: MetricsServer) -> None:
    assert await fetch(server, "/readyz") == (200, "text/plain; charset=utf-8", "ready\n")


async def test_readyz_tolerates_a_reconnect_within_its_grace_period(
    server: MetricsServer, bridge: Bridge
) -> None:
    now = time.monotonic()
    bridge.current = Snapshot((source("ticker", state="reconnecting", grace_until=now + 30),),
                              (sink("broker"),), taken_at=now)
    assert (await fetch(server, "/readyz"))[0] == 200


async def test_readyz_names_what_is_not_ready(server: MetricsServer, bridge: Bridge) -> None:
    now = time.monotonic()
    bridge.current = Snapshot(
        (source("ticker", state="reconnecting", grace_until=now - 1), source("trades")),
        (sink("broker", up=False), sink("archive", type="file")),
        taken_at=now,
    )
    status, _, body = await fetch(server, "/readyz")
    assert status == 503
    assert body.splitlines() == [
        "source ticker: reconnecting, grace period over",
        "sink broker: down",
    ]


async def test_status_round_trips_to_the_cli(server: MetricsServer, bridge: Bridge) -> None:
    bridge.current = Snapshot(
        (source("ticker", received=5, forwarded={"broker": 5}, reconnects={"closed": 1},
                last_message_age=1.5, grace_until=12.0),),
        (sink("broker", dropped={"queue_full": 1}, publish_latency=0.01),),
        taken_at=77.0,
    )
    assert await fetch_status(f"http://127.0.0.1:{server.port}") == bridge.current
    assert await fetch_status(f"127.0.0.1:{server.port}/status") == bridge.current


async def test_status_command_shows_msgs_per_second(server: MetricsServer, bridge: Bridge) -> None:
    url = f"http://127.0.0.1:{server.port}/"
    bridge.current = Snapshot((source("ticker", received=100),), (sink("broker"),), taken_at=10.0)
    first = await fetch_status(url)
    bridge.current = replace(bridge.current, taken_at=12.0,
                             sources=(source("ticker", received=300, last_message_age=0.3),))
    table = format_status_table(first, await fetch_status(url))
    assert table.splitlines()[1].split() == ["ticker", "connected", "100.0", "0.3s", "0", "0"]


async def test_fetch_status_from_a_daemon_that_is_not_running_raises_oserror() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError, match="refused"):
        await fetch_status(f"http://127.0.0.1:{port}")


async def test_unknown_path_is_not_found(server: MetricsServer) -> None:
    assert (await fetch(server, "/"))[0] == 404


async def test_a_taken_port_is_refused_at_start(server: MetricsServer, bridge: Bridge) -> None:
    second = MetricsServer(bridge.snapshot, f"127.0.0.1:{server.port}")
    with pytest.raises(OSError):
        await second.start()
    await second.close()


async def test_close_frees_the_port_and_stops_the_thread(bridge: Bridge) -> None:
    metrics = MetricsServer(bridge.snapshot, "127.0.0.1:0")
    await metrics.start()
    port = metrics.port
    assert (await fetch(metrics, "/healthz"))[0] == 200
    await metrics.close()
    assert not any(t.name == "metrics-http" for t in threading.enumerate())
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
    again = MetricsServer(bridge.snapshot, f"127.0.0.1:{port}")
    await again.start()
    await again.close()


async def test_a_pool_has_a_connection_label_on_its_state_and_reconnects_only(
    server: MetricsServer, bridge: Bridge
) -> None:
    pool = source("binance", connections_up={"0": 1, "1": 0},
                  connection_reconnects={"0": 0, "1": 3}, items=2000, items_up=1000)
    bridge.current = Snapshot((pool, source("plain")), (), taken_at=time.monotonic())
    _, _, text = await fetch(server, "/metrics")
    got = samples(text)
    up = "ws_bridge_source_connection_up"
    assert got[(up, frozenset({("source", "binance"), ("connection", "1")}))] == 0
    again = "ws_bridge_source_connection_reconnects_total"
    assert got[(again, frozenset({("source", "binance"), ("connection", "1")}))] == 3
    assert got[("ws_bridge_source_items_up", frozenset({("source", "binance")}))] == 1000
    labelled = {name for name, labels in got if "connection" in dict(labels)}
    assert labelled == {up, again}  # nothing else per connection, and nothing per item
    assert not any(dict(labels).get("source") == "plain" for name, labels in got
                   if name.startswith("ws_bridge_source_item"))
