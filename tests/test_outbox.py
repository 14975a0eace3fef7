"""The durable outbox: on its own (order, bounds, expiry, reopening, repair) and under the MQTT
sink against a real Mosquitto: a broker SIGKILLed mid-stream, the real daemon SIGKILLed with a
full outbox, and a 200k-row outbox drained by the daemon with its RSS bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import main
from bridge.config.load import load_config
from bridge.messages import Delivery, Message
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.outbox import Outbox
from bridge.sinks.outbox_file import open_outbox
from bridge.sinks.outbox_report import describe_outbox
from bridge.sinks.outbox_rows import FILE, StoredDelivery
from bridge.sinks.settings import MqttSinkConfig, QueueConfig
from bridge.upstream.backoff import BackoffPolicy
from tests.support.daemon import Spawn, eventually
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.upstream import Upstream, UpstreamConn

pytestmark = pytest.mark.mqtt
FAST = BackoffPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0)
RSS_BOUND_MB = 100  # draining a 200k-row, ~100 MB outbox; measured peak: 38 MB
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]


def delivery(data: str | bytes, topic: str | None = "feeds/seq", at: float | None = None,
             **options: Any) -> Delivery:
    return Delivery(Message("src", data, time.time() if at is None else at), data, topic,
                    **options)


def outbox(tmp_path: Path, **queue: Any) -> Outbox:
    cfg = QueueConfig(**({"max_messages": 1_000_000, "path": str(tmp_path / "ob")} | queue))
    return Outbox(cfg, "broker", open_outbox(str(tmp_path / "ob"), "broker"))


def payloads(items: list[Delivery]) -> list[str | bytes]:
    return [d.payload for d in items]


def drain(box: Outbox) -> list[Delivery]:
    """Take everything, settling each as the broker's ack would."""
    got: list[Delivery] = []
    while batch := box.take(100):
        got += batch
        for d in batch:
            box.settle(d)
    return got


def depth(tmp_path: Path, want: int) -> Callable[[], Awaitable[int | None]]:
    async def check() -> int | None:
        got = describe_outbox(str(tmp_path / "ob"))["depth"]
        return got if got == want else None

    return check


# -- the outbox on its own ----------------------------------------------------------------------


def test_rows_come_back_in_order_exactly_as_put_after_a_reopen(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    sent = [delivery('{"n":0}'), delivery(b"\x00\xff bin", qos=2, retain=True),
            delivery("text é \U0001f600", topic=None, qos=0, retain=False), delivery("")]
    for d in sent:
        assert box.put(d)
    box.close()
    again = outbox(tmp_path)
    got = again.take(10)
    assert [(d.payload, d.topic, d.qos, d.retain, d.message.source) for d in got] == [
        (d.payload, d.topic, d.qos, d.retain, "src") for d in sent]
    assert all(isinstance(d, StoredDelivery) for d in got)
    ids = [d.msg_id for d in got if isinstance(d, StoredDelivery)]
    assert len(set(ids)) == 4 and all(i.startswith(f"{again.tag}-") for i in ids)
    again.close()


def test_a_payload_template_keeps_the_upstream_frame_for_user_properties(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    box.put(Delivery(Message("src", '{"s":"BTC","p":1}', 1.0), '{"price":1}', "t"))
    (d,) = box.take(1)
    assert (d.payload, d.message.data, d.message.received_at) == ('{"price":1}',
                                                                  '{"s":"BTC","p":1}', 1.0)
    box.close()


def test_unsettled_rows_go_again_in_order_after_push_front_and_after_a_restart(
    tmp_path: Path,
) -> None:
    box = outbox(tmp_path)
    for i in range(10):
        box.put(delivery(str(i)))
    first = box.take(6)
    box.settle(first[0])
    box.settle(first[2])  # acks may come out of order (a refusal, a QoS mix)
    assert len(box) == 4
    box.push_front([first[1], *first[3:]])  # the connection died
    assert payloads(box.take(3)) == ["1", "3", "4"]
    box.close()  # "5" was taken but never settled: it must come back after a restart
    again = outbox(tmp_path)
    assert payloads(drain(again)) == ["1", "3", "4", *map(str, range(5, 10))]
    assert len(again) == 0 and describe_outbox(str(tmp_path / "ob"))["depth"] == 0
    again.close()


@pytest.mark.parametrize("overflow", ["drop_newest", "block"])
def test_a_full_outbox_refuses_the_newest_and_counts_it(tmp_path: Path, overflow: Any) -> None:
    box = outbox(tmp_path, max_messages=100, overflow=overflow)
    accepted = [box.put(delivery(str(i))) for i in range(250)]
    assert accepted == [True] * 100 + [False] * 150 and box.full
    assert box.dropped == {"queue_full_newest": 150}
    assert payloads(drain(box)) == [str(i) for i in range(100)]
    box.close()


def test_drop_oldest_deletes_the_oldest_rows_but_never_those_in_flight(tmp_path: Path) -> None:
    box = outbox(tmp_path, max_messages=100, overflow="drop_oldest")
    for i in range(100):
        box.put(delivery(str(i)))
    in_flight = box.take(10)
    for i in range(100, 250):
        box.put(delivery(str(i)))
    assert box.dropped == {"queue_full_oldest": 150}
    assert len(box) == 90  # 100 rows on disk, 10 of them in flight
    box.push_front(in_flight)
    assert payloads(drain(box)) == [str(i) for i in (*range(10), *range(160, 250))]
    box.close()


def test_max_bytes_bounds_the_payload_bytes_by_the_policy(tmp_path: Path) -> None:
    newest = outbox(tmp_path / "n", max_bytes=1000, overflow="drop_newest")
    assert [newest.put(delivery("x" * 100)) for _ in range(12)] == [True] * 10 + [False] * 2
    assert not newest.put(delivery("y" * 2000))  # larger than the bound by itself
    assert newest.dropped == {"queue_full_newest": 3}
    newest.close()
    oldest = outbox(tmp_path / "o", max_bytes=1000, overflow="drop_oldest")
    for i in range(10):
        oldest.put(delivery(f"{i}" * 100))
    assert not oldest.put(delivery("z" * 250))  # makes room by dropping the three oldest
    got = payloads(drain(oldest))
    assert got == [f"{i}" * 100 for i in range(3, 10)] + ["z" * 250]
    assert oldest.dropped == {"queue_full_oldest": 3}
    oldest.close()


def test_expired_rows_are_dropped_on_take_and_counted(tmp_path: Path) -> None:
    box = outbox(tmp_path, max_age=60.0)
    now = time.time()
    for i in range(5):
        box.put(delivery(f"old{i}", at=now - 120))
    box.put(delivery("fresh", at=now))
    assert payloads(drain(box)) == ["fresh"]
    assert box.dropped == {"expired": 5} and box.rows == 0
    box.close()


def test_a_torn_wal_tail_loses_only_the_last_commit(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    for batch in range(3):
        for i in range(10):
            box.put(delivery(f"{batch}-{i}"))
        box.flush()  # one commit each, all in the WAL
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in (FILE, f"{FILE}-wal"):  # the files as kill -9 leaves them
        shutil.copy(tmp_path / "ob" / name, crashed / name)
    box.close()
    wal = crashed / f"{FILE}-wal"
    wal.write_bytes(wal.read_bytes()[:-100])  # the last frame was being written
    again = Outbox(QueueConfig(100, path=str(crashed)), "broker",
                   open_outbox(str(crashed), "broker"))
    assert payloads(drain(again)) == [f"{b}-{i}" for b in range(2) for i in range(10)]
    again.close()


def test_describe_outbox_reports_depth_age_and_bytes_while_it_is_open(tmp_path: Path) -> None:
    assert describe_outbox(str(tmp_path / "none")) == {
        "path": str(tmp_path / "none" / FILE), "exists": False, "depth": 0, "oldest_age": None,
        "bytes": 0, "integrity": "ok"}
    box = outbox(tmp_path)
    box.put(delivery("a" * 10, at=time.time() - 30))
    box.put(delivery(b"b" * 5))
    box.flush()
    state = describe_outbox(str(tmp_path / "ob"))
    assert (state["depth"], state["bytes"], state["integrity"]) == (2, 15, "ok")
    assert 29 < state["oldest_age"] < 60
    box.close()


async def test_puts_on_the_event_loop_are_committed_without_a_take(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    for i in range(3):
        box.put(delivery(str(i)))
    assert describe_outbox(str(tmp_path / "ob"))["depth"] == 0  # batched, not one commit each
    await eventually(depth(tmp_path, 3), 2, "the batch committed")
    box.close()


def test_the_config_builds_the_outbox_settings_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1,
        "sinks": {"broker": {"type": "mqtt", "url": "mqtt://127.0.0.1:1883", "queue": {
            "path": str(tmp_path / "ob"), "max_messages": 500, "max_bytes": "1MiB",
            "max_age": "10m", "overflow": "drop_newest"}}},
        "sources": [{"name": "feed", "url": "ws://127.0.0.1:9/ws", "routes": [{"sink": "broker"}]}],
    }))
    sink = load_config(path, env={}).sinks["broker"]
    assert sink.queue == QueueConfig(500, "drop_newest", str(tmp_path / "ob"), 2**20, 600.0)


# -- under the MQTT sink, against a real broker --------------------------------------------------


def sink_config(broker: Broker, tmp_path: Path, **queue: Any) -> MqttSinkConfig:
    return MqttSinkConfig(name="broker", host=broker.host, port=broker.port, reconnect=FAST,
                          client_id="bridge-outbox", qos=1,
                          queue=QueueConfig(**({"max_messages": 100_000,
                                                "path": str(tmp_path / "ob")} | queue)))


@contextlib.asynccontextmanager
async def running(sink: MqttSink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.run())
    try:
        yield
    finally:
        sink.close()
        await asyncio.wait_for(task, 10)


async def saved_session(make: Make, subscribe: Subscribe) -> tuple[Broker, Subscriber]:
    """A broker that saved a persistent subscriber's session, so it survives a SIGKILL."""
    broker = make()
    sub = await subscribe(broker, "feeds/#", persistent=True)
    broker.stop()
    broker.start()
    await sub.reconnect()
    return broker, sub


def msg_id(m: Received) -> str:
    return dict(m.properties.get("user_property", [])).get("msg_id", "")


def check_stream(got: list[Received], expected: Iterable[int]) -> int:
    """Each expected message arrived, first seen in order; a repeat carries the same msg_id as
    the first copy and no two messages share one. Returns how many repeats there were."""
    ids: dict[bytes, str] = {}
    for m in got:
        assert ids.setdefault(m.payload, msg_id(m)) == msg_id(m) != ""
    assert len(set(ids.values())) == len(ids)
    first = list(dict.fromkeys(int(m.payload) for m in got))
    assert first == sorted(first) and set(expected) <= set(first)
    return len(got) - len(first)


async def test_broker_sigkill_mid_qos1_stream_resends_every_unacked_message_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path
) -> None:
    broker, sub = await saved_session(mosquitto, mqtt_subscriber)
    sink, total = MqttSink(sink_config(broker, tmp_path)), 3000
    async with running(sink):
        for i in range(2000):
            sink.send(delivery(str(i)))
        await sub.wait_for(300)
        broker.kill()  # mid-stream, like a crash: nothing since the last save survives
        for i in range(2000, total):
            sink.send(delivery(str(i)))
        await eventually(down(sink), what="the sink saw the crash")
        acked = sink.stats.published  # PUBACKs come in order: 0..acked-1 were acknowledged
        broker.start()
        await sub.reconnect()
        want = set(range(acked, total))
        got = await sub.wait_for(lambda ms: {int(m.payload) for m in ms} >= want, timeout=20)
        await eventually(depth(tmp_path, 0), 10, "every row settled")
    assert 0 < acked < 2000  # some were still unacknowledged when the broker died
    assert check_stream(got, range(acked, total)) <= 2000 - acked  # repeats: what was in flight
    # Mosquitto acknowledges a publish once it holds it in memory (it saves to disk only now and
    # then), so its crash can lose messages it acknowledged but had not yet passed on to the
    # subscriber: no publisher can resend those. Everything it had not acknowledged arrived.
    lost_by_broker = set(range(acked)) - {int(m.payload) for m in got}
    assert len(lost_by_broker) < 100, sorted(lost_by_broker)


async def test_overflow_is_logged_once_when_it_starts_and_summarised_when_it_ends(
    mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)
    await sub.close()
    broker.stop()
    sink = MqttSink(sink_config(broker, tmp_path, max_messages=100, overflow="drop_oldest"))
    with caplog.at_level(logging.INFO, "bridge.sinks.mqtt"):
        async with running(sink):
            for i in range(250):
                sink.send(delivery(str(i)))
            broker.start()
            await sub.reconnect()
            got = await sub.wait_for(100)
            await eventually(logged(caplog, "stopped dropping"), what="the summary")
    lines = [r.getMessage() for r in caplog.records if "dropping" in r.getMessage()]
    assert lines == ["sink 'broker': dropping messages (queue_full_oldest); a summary follows "
                     "when it stops",
                     lines[1]] and "150 messages dropped" in lines[1]
    assert [int(m.payload) for m in got] == list(range(150, 250))


async def test_block_makes_the_source_wait_for_acks_and_loses_nothing(
    mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    sink = MqttSink(sink_config(broker, tmp_path, max_messages=10, overflow="block"))
    async with running(sink):
        for i in range(300):
            await asyncio.wait_for(sink.drain(), 5)  # the rows in flight count: acks make room
            sink.send(delivery(str(i)))
        await sub.wait_for(300)
    assert [int(m.payload) for m in sub.messages] == list(range(300))
    assert sink.queue.dropped == {}


def down(sink: MqttSink) -> Callable[[], Awaitable[bool | None]]:
    async def check() -> bool | None:
        return None if sink.up else True

    return check


def logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], Awaitable[bool | None]]:
    async def check() -> bool | None:
        return True if text in caplog.text else None

    return check


# -- the real daemon ----------------------------------------------------------------------------


def daemon_config(tmp_path: Path, broker: Broker, upstream: Upstream, **queue: Any) -> Path:
    """The daemon's config: one source into one QoS 1 sink whose outbox is ``tmp_path/ob``."""
    cfg = {
        "version": 1,
        "sinks": {"broker": {
            "type": "mqtt", "url": f"mqtt://{broker.host}:{broker.port}", "qos": 1,
            "client_id": "bridge-daemon", "reconnect": {"initial_delay": "50ms",
                                                        "max_delay": "200ms"},
            "queue": {"path": str(tmp_path / "ob"), "max_messages": 1_000_000} | queue}},
        "defaults": {"connect_timeout": "2s", "ping": {"interval": 0},
                     "reconnect": {"initial_delay": "50ms", "max_delay": "200ms"}},
        "sources": [{"name": "feed", "url": upstream.url,
                     "routes": [{"sink": "broker", "topic": "feeds/seq"}]}],
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


async def test_bridge_sigkill_with_a_full_outbox_then_restart_delivers_all_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    total = 3000

    async def feed(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:  # the restarted bridge gets nothing new
            for i in range(total):
                await conn.send(str(i))

    upstream.handler = feed
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)
    await sub.close()
    broker.stop()
    cfg = daemon_config(tmp_path, broker, upstream)
    first = await spawn("run", str(cfg))
    await eventually(depth(tmp_path, total), 15, f"{total} rows in the outbox")
    first.signal(signal.SIGKILL)
    assert await first.wait_exit() == -signal.SIGKILL
    broker.start()
    await sub.reconnect()
    await spawn("run", str(cfg))
    await sub.wait_for(total, timeout=20)
    await eventually(depth(tmp_path, 0), 10, "the outbox drained")
    assert check_stream(sub.messages, range(total)) == 0  # never published before: exactly once
    assert len(sub.messages) == total


async def test_block_on_an_outbox_delivers_all_500_once_the_broker_comes_up(
    mosquitto: Make, mqtt_subscriber: Subscribe, upstream: Upstream, spawn: Spawn,
    tmp_path: Path,
) -> None:
    """The issue's reproduction: a 100-row outbox under ``block``, the broker down, an upstream
    sending 500 lines at once; the broker starts once the bridge is stuck at 100 rows."""
    total = 500
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def feed(conn: UpstreamConn) -> None:
        for i in range(total):
            await conn.send(str(i))
        sent.set_result(None)

    upstream.handler = feed
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)  # keeps what it misses
    await sub.close()
    broker.stop()
    daemon = await spawn("run", str(daemon_config(tmp_path, broker, upstream,
                                                     max_messages=100, overflow="block")))
    await asyncio.wait_for(sent, 10)  # all 500 are on their way: the socket buffers them
    await eventually(depth(tmp_path, 100), 10, "100 rows in the outbox")
    broker.start()
    await sub.reconnect()
    await sub.wait_for(total, timeout=20)
    assert [int(m.payload) for m in sub.messages] == list(range(total))
    assert "dropped" not in daemon.log_text


async def mosquitto_sub(broker: Broker, out: Path, count: int) -> asyncio.subprocess.Process:
    """``mosquitto_sub`` writing the payloads of ``count`` messages on feeds/# to ``out``, one a
    line, then exiting; returned once subscribed. A C subscriber keeps up with the daemon where
    one in the test process would lag behind the broker's per-client queue (and its CPU)."""
    probe = "ready/probe"
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", probe, "-m", "ready",
        "-r", "-q", "1")
    assert await pub.wait() == 0
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1",
            "-t", probe, "-t", "feeds/#", "-C", str(count + 1), "-F", "%p", stdout=sink)

    async def subscribed() -> bool | None:  # the retained probe comes with the SUBACK
        return True if out.read_bytes().startswith(b"ready\n") else None

    await eventually(subscribed, 10, "mosquitto_sub subscribed")
    return proc


async def test_draining_a_200k_row_outbox_delivers_all_in_order_with_the_daemon_rss_bounded(
    mosquitto: Make, upstream: Upstream, spawn: Spawn, tmp_path: Path
) -> None:
    rows, body = 200_000, "x" * 480  # ~100 MB of payloads: far more than the bound if held
    box = outbox(tmp_path)
    for i in range(rows):
        box.put(delivery(f"{i:08d}{body}"))
    box.close()
    broker = mosquitto()
    received = tmp_path / "received.txt"
    sub = await mosquitto_sub(broker, received, rows)
    daemon = await spawn("run", str(daemon_config(tmp_path, broker, upstream)))
    peak = 0

    async def delivered() -> bool | None:
        nonlocal peak
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        peak = max(peak, int(next(ln.split()[1] for ln in status.splitlines()
                                  if ln.startswith("VmRSS:"))) // 1024)
        return True if sub.returncode is not None else None  # it exits after the last one

    try:
        await eventually(delivered, 120, f"{rows} messages at the subscriber", interval=0.05)
    finally:
        if sub.returncode is None:
            sub.kill()
        await sub.wait()
    assert 0 < peak < RSS_BOUND_MB, f"peak RSS {peak} MB"
    with received.open("rb") as lines:
        assert next(lines) == b"ready\n"
        numbers = [int(line[:8]) for line in lines]
    assert numbers == list(range(rows))  # every row, once, in order
    await eventually(depth(tmp_path, 0), 10, "the outbox emptied as the acks came")


def test_check_state_reports_each_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = outbox(tmp_path)
    for n in range(3):
        box.put(delivery(f'{{"n":{n}}}'))
    box.flush()
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1,
        "sinks": {"broker": {"type": "mqtt", "url": "mqtt://127.0.0.1:1",
                             "queue": {"path": str(tmp_path / "ob")}}},
        "sources": [{"name": "feed", "url": "ws://127.0.0.1:1/", "routes": [{"sink": "broker"}]}],
    }))
    assert main(["check", "--state", str(config)]) == 0
    out = capsys.readouterr().out
    assert "outbox of sink broker: 3 messages" in out and "integrity ok" in out
    box.close()


def test_check_reads_a_relative_outbox_path_beside_the_config_and_refuses_a_shared_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def mqtt(path: str) -> dict[str, Any]:
        return {"type": "mqtt", "url": "mqtt://127.0.0.1:1", "queue": {"path": path}}

    config = tmp_path / "conf" / "bridge.yaml"
    config.parent.mkdir()
    doc = {"version": 1, "sinks": {"a": mqtt("outbox/a")},
           "sources": [{"name": "feed", "url": "ws://127.0.0.1:1/", "routes": [{"sink": "a"}]}]}
    config.write_text(yaml.safe_dump(doc))
    sink = load_config(config).sinks["a"]
    assert isinstance(sink, MqttSinkConfig)
    assert sink.queue.path == str(tmp_path / "conf" / "outbox" / "a")

    doc["sinks"]["b"] = mqtt(str(tmp_path / "conf" / "outbox" / "a"))  # the same directory
    config.write_text(yaml.safe_dump(doc))
    assert main(["check", str(config)]) == 78
    err = capsys.readouterr().err
    assert "sinks.b.queue.path" in err and "already keeps its outbox there" in err


async def test_the_oldest_rows_age_and_the_queue_bound_are_in_the_sinks_snapshot(
    tmp_path: Path,
) -> None:
    """What ``ws_bridge_sink_outbox_oldest_age_seconds`` and ``ws_bridge_sink_queue_limit``
    read: the oldest row's wait by its receive time (no broker: nothing leaves)."""
    cfg = MqttSinkConfig("broker", "127.0.0.1", 1, queue=QueueConfig(
        max_messages=500, path=str(tmp_path / "ob")))
    sink = MqttSink(cfg)
    assert sink.snapshot().oldest_age is None  # empty: no sample rather than 0
    sink.send(delivery("old", at=time.time() - 120))
    sink.send(delivery("new"))
    assert sink.outbox is not None
    sink.outbox.flush()
    snap = sink.snapshot()
    assert snap.queue_limit == 500
    assert snap.oldest_age is not None and 119 <= snap.oldest_age < 3600
    drain(sink.outbox)
    assert sink.snapshot().oldest_age is None
