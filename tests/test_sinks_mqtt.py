"""The MQTT sink against a real Mosquitto: what a subscriber sees, outages, refusals, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config.specs import TLSConfig
from bridge.errors_sink import SinkUnavailable
from bridge.messages import Delivery, Message
from bridge.routing.template import Template
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.mqtt_answers import Answers
from bridge.sinks.mqtt_drops import DropLog
from bridge.sinks.mqtt_incoming import Incoming, connect_failure
from bridge.sinks.mqtt_listeners import Listeners
from bridge.sinks.mqtt_presence import Presence
from bridge.sinks.mqtt_topics import source_topic, topic_problem
from bridge.sinks.mqtt_window import Window
from bridge.sinks.presence_settings import Availability
from bridge.sinks.queue import BoundedQueue
from bridge.sinks.settings import MqttSinkConfig, QueueConfig
from bridge.upstream.backoff import BackoffPolicy
from tests.support.mosquitto import Broker, Subscriber

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[1]
FAST = BackoffPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0)
Make = Callable[..., Broker]
Subscribe = Callable[..., Awaitable[Subscriber]]


def config(broker: Broker, **overrides: Any) -> MqttSinkConfig:
    base: dict[str, Any] = {
        "name": "broker", "host": broker.host, "port": broker.port, "reconnect": FAST,
        "client_id": f"bridge-{id(overrides):x}",
        "tls": TLSConfig(ca_file=broker.ca_file) if broker.tls else None,
    }
    return MqttSinkConfig(**(base | overrides))


def delivery(data: str | bytes, topic: str | None = None, source: str = "src",
             **options: Any) -> Delivery:
    return Delivery(Message(source, data, time.time()), data, topic, **options)


@contextlib.asynccontextmanager
async def running(sink: MqttSink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sink.run())
    try:
        yield task
    finally:
        sink.close()
        await asyncio.wait_for(task, 10)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """For counters with no event to await: checked every 10 ms, failing after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class LogWatch(logging.Handler):
    """Records ``bridge.sinks.mqtt`` lines containing ``text``; ``await wait()`` for the first."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.records: list[logging.LogRecord] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            self.seen.set()

    async def wait(self, timeout: float = 5.0) -> logging.LogRecord:
        async with asyncio.timeout(timeout):
            await self.seen.wait()
        return self.records[0]


@pytest.fixture
def watch_log() -> Iterator[Callable[[str], LogWatch]]:
    logger = logging.getLogger("bridge.sinks.mqtt")
    watches: list[LogWatch] = []
    level = logger.level
    logger.setLevel(logging.INFO)

    def make(text: str) -> LogWatch:
        watches.append(LogWatch(text))
        logger.addHandler(watches[-1])
        return watches[-1]

    yield make
    logger.setLevel(level)
    for w in watches:
        logger.removeHandler(w)


def test_topic_rules_reject_wildcards_empty_and_oversized_topics() -> None:
    assert topic_problem("feeds/binance/BTCUSDT") is None
    for bad in ("", "a/+/b", "a/#", "x\0y", "é" * 40_000):
        assert topic_problem(bad) is not None, bad
    assert source_topic("ws-bridge", "binance", "state") == "ws-bridge/binance/state"


def test_a_queue_held_at_its_limit_batch_after_batch_is_one_drop_episode() -> None:
    """The broker takes a batch, the source refills the queue past its limit, again and again:
    one line when dropping starts and one summary once no drop came for ``quiet`` seconds."""
    drops, dropped, now, lines = DropLog(quiet=1.0), {"queue_full_oldest": 0}, 100.0, []
    for _ in range(50):  # 50 batches, 20 ms apart: each take makes room, then 30 more drops
        now += 0.02
        lines += drops.check(dropped, now, full=False, settle=True)  # after a take: room
        dropped["queue_full_oldest"] += 30
        lines += drops.check(dropped, now, full=True)  # a drop, at send()
    assert lines == ["dropping messages (queue_full_oldest); a summary follows when it stops"]
    assert drops.open
    assert drops.check(dropped, now + 0.5, settle=True) == []  # not quiet long enough yet
    assert drops.check(dropped, now + 1.0, settle=True) == [
        "stopped dropping (queue_full_oldest): 1500 messages dropped in 2.0s"]
    assert not drops.open
    dropped["too_large"] = 1  # a new reason later is a new episode
    assert drops.check(dropped, now + 9, settle=True) == [
        "dropping messages (too_large); a summary follows when it stops"]



def test_a_batch_on_lanes_keeps_each_sources_order_and_a_dead_connection_returns_all_in_order(
) -> None:
    """Two lanes of window 1: what a full lane cannot take comes back, each source in order,
    and what awaited an answer returns lane by lane when the connections die."""
    window = Window(2)
    batch = [delivery(f"{s}{i}", source=s) for i in range(3) for s in ("a", "b", "c", "d")]

    def fire(lane: int, group: list[Delivery]) -> int:  # a window of one: the first leaves
        window.lanes[lane][len(window.lanes[lane]) + 1] = ("t", group[0], 0.0)
        return 1

    rest = window.fire(batch, fire)
    assert len(window) == 2 and len(rest) == len(batch) - 2 and not window.stalled
    for source in "abcd":  # every source still in its order, whichever lane it is on
        mine = [d.payload for d in rest if d.message.source == source]
        assert mine == sorted(mine)
    assert not window.has_room(1) and window.room(1) == 0
    assert window.fire(rest, lambda lane, group: 0) == rest and window.stalled
    left = window.unanswered()
    assert len(left) == 2 and len(window) == 0 and not window.stalled and window.has_room(1)


def test_a_read_settles_its_pubacks_a_run_at_a_time_in_order_with_their_reason_codes() -> None:
    heard: list[object] = []
    freed: list[int] = []
    removed: list[int] = []
    answers = Answers(heard.append, freed.append, removed.append)

    def other(first: int, body: bytes) -> None:  # any packet but a PUBACK: gmqtt's
        heard.append((first, body))

    assert answers.receive_maximum == 65535  # no Receive Maximum in the CONNACK
    answers.connack({"receive_maximum": [20]})
    assert answers.receive_maximum == 20
    answers.open = True
    suback = b"\x90\x04\x00\x01\x00\x01"  # not an answer to a publish: gmqtt's, in its place
    read = (b"\x40\x02\x00\x07" + b"\x40\x03\x00\x08\x87" + suback  # 3.1.1; refused 0x87
            + b"\x40\x04\x01\x00\x00\x00" + b"\x40\x03\x00")  # a 5.0 success; cut short
    walked = answers.walk(read, other)
    assert walked == len(read) - 3  # the last PUBACK waits for the rest of it
    assert heard == [[(7, 0), (8, 0x87)], (0x90, b"\x00\x01\x00\x01"), [(256, 0)]]
    assert freed == removed == [7, 8, 256]
    assert answers.walk(b"\x30\xff\xff\xff\xff\x01", other) == -1  # malformed length
    answers.read(b"\x00\x09\x92")  # a QoS 2 PUBREC refused (0x92), then settled by gmqtt
    answers.read(b"\x00\x0a")  # a PUBREC of id 10: success
    answers.settled(9)
    answers.settled(10)
    answers.open = False  # closed: answers settle, nobody hears of them
    answers.walk(b"\x40\x02\x00\x0b", other)
    assert heard[3:] == [[(9, 0x92)], [(10, 0)]] and removed[3:] == [9, 10, 11]


def test_presence_republishes_online_and_every_source_state_after_a_connect() -> None:
    presence = Presence(Availability("bridge/status"), "ws-bridge")
    assert presence.state("binance", "connected") == [("ws-bridge/binance/state", "connected"),
                                                      ("ws-bridge/binance/availability", "online")]
    presence.state("kraken", "reconnecting")
    presence.state("binance", "disconnected")  # only the last state of a source
    assert presence.online() == [("bridge/status", "online"),
                                 ("ws-bridge/binance/state", "disconnected"),
                                 ("ws-bridge/binance/availability", "offline"),
                                 ("ws-bridge/kraken/state", "reconnecting"),
                                 ("ws-bridge/kraken/availability", "offline")]
    assert presence.offline() == [("bridge/status", "offline")]
    assert Presence(None, "p").offline() == [] and Presence(None, "p").online() == []


def test_presence_empties_a_removed_source_after_every_connect_until_it_comes_back() -> None:
    presence = Presence(None, "p")
    presence.state("a", "connected")
    presence.state("b", "connected")
    emptied = [("p/a/state", ""), ("p/a/availability", "")]
    assert presence.gone("a") == emptied
    for _ in range(2):  # each connect: a rebuilt sink's predecessor may have said otherwise
        assert presence.online() == [("p/b/state", "connected"), ("p/b/availability", "online"),
                                     *emptied]
    presence.state("a", "connecting")  # added again: its state, no longer emptied
    assert presence.online() == [("p/b/state", "connected"), ("p/b/availability", "online"),
                                 ("p/a/state", "connecting"), ("p/a/availability", "offline")]
    presence.keep("x/config", "")
    presence.keep("x/config", "{}")  # a deleted retained message given a value again
    assert presence.online()[-1] == ("x/config", "{}")


def test_listeners_hand_a_message_to_each_matching_handler_and_name_only_new_filters() -> None:
    got: list[tuple[str, str]] = []
    listeners = Listeners()
    assert listeners.replace([("a/+/rpc", lambda m: got.append(("rpc", m.topic)))]) == ["a/+/rpc"]
    assert listeners.replace([("a/+/rpc", lambda m: got.append(("rpc2", m.topic))),
                              ("a/#", lambda m: got.append(("all", m.topic)))]) == ["a/#"]
    assert listeners.filters == ["a/#", "a/+/rpc"]
    listeners(Incoming("a/x/rpc", b"{}"))
    listeners(Incoming("b/x/rpc", b"{}"))
    assert got == [("rpc2", "a/x/rpc"), ("all", "a/x/rpc")]

async def test_publishes_payload_bytes_qos_and_retain_as_routed(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker)
    sink = MqttSink(config(broker, qos=1))
    async with running(sink):
        sink.send(delivery('{"s":"BTC"}'))
        sink.send(delivery(b"\x00\xff\x10binary\r\n", topic="feeds/bin", qos=0))
        sink.send(delivery("text é", topic="feeds/text", qos=2, retain=True))
        await sub.wait_for(3)
    default = sub.on("ws-bridge/src")[0]
    assert (default.payload, default.qos, default.retain) == (b'{"s":"BTC"}', 1, False)
    binary = sub.on("feeds/bin")[0]
    assert (binary.payload, binary.qos, binary.retain) == (b"\x00\xff\x10binary\r\n", 0, False)
    text = sub.on("feeds/text")[0]
    assert (text.payload, text.qos, text.retain) == ("text é".encode(), 2, True)
    assert sink.stats.published == 3
    latency = sink.stats.publish_latency  # write to broker answer, exported as a metric
    assert latency is not None and 0 < latency < 5


async def test_mqtt5_properties_reach_the_subscriber(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker)
    user = {"source": Template("{source}"), "kind": Template("ticker"), "sym": Template("{msg.s}")}
    sink = MqttSink(config(broker, qos=1, message_expiry=60.0, user_properties=user))
    async with running(sink):
        sink.send(delivery('{"s":"BTC"}', topic="t/json"))
        sink.send(delivery(b"\x01\x02", topic="t/bin"))
        sink.send(delivery("hello", topic="t/text"))
        await sub.wait_for(3)
    js, binary, text = (sub.on(t)[0].properties for t in ("t/json", "t/bin", "t/text"))
    assert js["content_type"] == ["application/json"]
    assert js["user_property"] == [("source", "src"), ("kind", "ticker"), ("sym", "BTC")]
    assert 0 < js["message_expiry_interval"][0] <= 60
    assert "content_type" not in binary and "content_type" not in text
    # {msg.s} cannot be rendered for a non-JSON frame: that property alone is left out
    assert binary["user_property"] == [("source", "src"), ("kind", "ticker")]


async def test_mqtt311_publishes_without_properties_and_warns_once(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker)
    warned = watch_log("3.1.1")
    sink = MqttSink(config(broker, protocol=4, qos=1, message_expiry=60.0,
                           user_properties={"k": Template("v")}))
    async with running(sink):
        for i in range(3):
            sink.send(delivery(f'{{"i":{i}}}', topic="t/v3"))
        got = await sub.wait_for(3)
        await until(lambda: sink.stats.published == 3)  # 3.1.1's PUBACKs (no reason code)
    assert all("content_type" not in m.properties and "user_property" not in m.properties
               for m in got)
    assert len(warned.records) == 1


async def test_last_will_marks_the_bridge_offline_when_its_process_is_killed(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "ws-bridge/status")
    script = (
        "import asyncio, sys\n"
        "from bridge.sinks.presence_settings import Availability\n"
        "from bridge.sinks.settings import MqttSinkConfig\n"
        "from bridge.sinks.mqtt import MqttSink\n"
        "cfg = MqttSinkConfig(name='killed', host='127.0.0.1', port=int(sys.argv[1]),\n"
        "    client_id='bridge-killed', availability=Availability('ws-bridge/status'))\n"
        "asyncio.run(MqttSink(cfg).run())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(broker.port)], cwd=ROOT)
    try:
        await sub.wait_for(lambda ms: any(m.payload == b"online" for m in ms), timeout=15)
        proc.kill()
        proc.wait(5)
        got = await sub.wait_for(lambda ms: ms[-1].payload == b"offline")
        assert got[-1].retain
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    later = await mqtt_subscriber(broker, "ws-bridge/status")
    retained = (await later.wait_for(1))[0]
    assert (retained.payload, retained.retain) == (b"offline", True)


async def test_clean_close_publishes_offline_retained_before_disconnecting(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "ws-bridge/status")
    sink = MqttSink(config(broker, availability=Availability("ws-bridge/status")))
    async with running(sink):
        await sub.wait_for(1)
    await sub.wait_for(2)
    assert [m.payload for m in sub.messages] == [b"online", b"offline"]
    assert all(m.retain for m in sub.messages)
    later = await mqtt_subscriber(broker, "ws-bridge/status")
    assert (await later.wait_for(1))[0].payload == b"offline"


async def test_online_and_source_states_are_retained_again_after_a_broker_restart(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sink = MqttSink(config(broker, availability=Availability("ws-bridge/status")))
    sink.source_state("binance", "connected")
    async with running(sink):
        first = await mqtt_subscriber(broker, "ws-bridge/#")
        await first.wait_for(lambda ms: {m.payload for m in ms} >= {b"online", b"connected"})
        broker.kill()  # a crash: the broker forgets every retained message
        sink.source_state("binance", "reconnecting")
        broker.start()
        after = await mqtt_subscriber(broker, "ws-bridge/#")
        await after.wait_for(lambda ms: {m.payload for m in ms} >= {b"online", b"reconnecting"})
        third = await mqtt_subscriber(broker, "ws-bridge/#")
        retained = {m.topic: (m.payload, m.retain) for m in await third.wait_for(3)}
    assert retained == {"ws-bridge/status": (b"online", True),
                        "ws-bridge/binance/state": (b"reconnecting", True),
                        "ws-bridge/binance/availability": (b"offline", True)}


async def test_qos1_stream_survives_a_broker_restart_with_every_message_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#", persistent=True)
    sink = MqttSink(config(broker, qos=1))
    total = 2000
    async with running(sink):
        for i in range(total // 2):
            sink.send(delivery(str(i), topic="feeds/seq"))
        await sub.wait_for(200, topic="feeds/seq")
        broker.stop()  # mid-stream; the subscriber's persistent session is saved
        await until(lambda: sink.stats.errors["connect"] >= 1)  # the sink saw the outage
        for i in range(total // 2, total):
            sink.send(delivery(str(i), topic="feeds/seq"))
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(lambda ms: len({m.payload for m in ms}) >= total,
                                 topic="feeds/seq", timeout=20)
    first_seen = list(dict.fromkeys(int(m.payload) for m in got))  # QoS 1 may repeat, not skip
    assert first_seen == list(range(total))
    assert sink.stats.errors["no_packet_id"] == 0


async def test_qos0_batches_keep_the_broker_window_for_qos1_routes_and_every_message_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    """A QoS 0 sink fires whole batches (Receive Maximum bounds QoS 1/2 only); deliveries whose
    route asks for QoS 1 still wait for room in the broker's window (Mosquitto's default, 20)."""
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    lost = watch_log("lost the connection")
    sink = MqttSink(config(broker, qos=0))
    total = 3000
    async with running(sink):
        for i in range(total):
            sink.send(delivery(str(i), topic="feeds/mixed", qos=1 if i % 3 == 0 else None))
        got = await sub.wait_for(total, topic="feeds/mixed", timeout=20)
    # MQTT orders messages of one QoS on a topic; the broker may let QoS 0 overtake QoS 1
    by_qos = {q: [int(m.payload) for m in got if m.qos == q] for q in (0, 1)}
    assert by_qos == {0: [i for i in range(total) if i % 3], 1: list(range(0, total, 3))}
    assert sink.stats.errors["no_packet_id"] == 0  # never asked gmqtt for an id beyond the window
    assert lost.records == []


async def test_connections_pin_each_source_to_one_lane_and_keep_its_order_at_qos1(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    """connections: 3 against Mosquitto's default window (20 per connection): three client ids
    at the broker, every message of every source delivered, each source's in order."""
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    sink = MqttSink(config(broker, qos=1, connections=3, client_id="lanes"))
    sources, each = [f"src-{k}" for k in range(8)], 400
    async with running(sink):
        for i in range(each):
            for name in sources:
                sink.send(delivery(f"{name}:{i}", topic=f"feeds/{name}", source=name))
        got = await sub.wait_for(len(sources) * each, timeout=30)
    for name in sources:
        seen = [int(m.payload.split(b":")[1]) for m in got if m.topic == f"feeds/{name}"]
        assert list(dict.fromkeys(seen)) == list(range(each)), name  # QoS 1 may repeat, not skip
    log = broker.log()
    assert all(f" as {cid} " in log for cid in ("lanes", "lanes-1", "lanes-2")), log[-2000:]


@pytest.mark.parametrize("setup", ["memory", "outbox", "lanes"])
async def test_a_steady_qos1_stream_against_the_default_window_arrives_once_each_in_order(
    setup: str, mosquitto: Make, mqtt_subscriber: Subscribe, tmp_path: Path,
    watch_log: Callable[[str], LogWatch]
) -> None:
    """Messages keep coming while the broker's window (Mosquitto's default, 20) is full: the
    answers of each read make the room the next ones leave through, with the in-memory queue,
    the outbox and 3 lanes. The subscriber sees every message once, each source's in order; the
    broker's log shows each connection filling its window of 20, never more (Mosquitto 2.0 does
    not enforce it: packet ids are the witness, an id is reused only once answered)."""
    broker = mosquitto(options=["log_type debug"])
    sub = await mqtt_subscriber(broker, "feeds/#")
    lost = watch_log("lost the connection")
    outbox = QueueConfig(max_messages=10_000, path=str(tmp_path / "outbox"))
    options: dict[str, dict[str, Any]] = {"outbox": {"queue": outbox}, "lanes": {"connections": 3}}
    sink = MqttSink(config(broker, qos=1, **options.get(setup, {})))
    names, each = ["a", "b", "c", "d"], 750
    async with running(sink):
        for i in range(each):
            for name in names:
                sink.send(delivery(f"{i}", topic=f"feeds/{name}", source=name))
            if i % 2:
                await asyncio.sleep(0)  # a few at a time, as an upstream's reads bring them
        got = await sub.wait_for(len(names) * each, timeout=30)
    for name in names:
        assert [int(m.payload) for m in got if m.topic == f"feeds/{name}"] == list(range(each))
    assert len(got) == len(names) * each and sink.stats.published == len(names) * each
    assert sink.stats.errors["no_packet_id"] == 0  # never beyond the window
    assert lost.records == []
    ids: dict[str, set[int]] = {}
    publishes = r"Received PUBLISH from (\S+) \(d0, q1, r0, m(\d+),"
    for client, mid in re.findall(publishes, broker.log()):
        ids.setdefault(client, set()).add(int(mid))
    assert len(ids) == (3 if setup == "lanes" else 1)
    assert all(used == set(range(1, 21)) for used in ids.values()), ids


async def test_a_lane_taken_over_by_its_client_id_reconnects_every_lane_and_loses_nothing(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    """A second client with lane 1's client id makes the broker drop that lane: the sink
    counts it as a lost connection, reconnects all lanes, and re-sends what was unanswered."""
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    lost = watch_log("lost the connection")
    sink = MqttSink(config(broker, qos=1, connections=2, client_id="taken",
                           availability=Availability("status/taken")))
    names, each = ["a", "b", "c", "d"], 500
    async with running(sink):
        for i in range(each // 2):
            for name in names:
                sink.send(delivery(f"{i}", topic=f"feeds/{name}", source=name))
        await sub.wait_for(50)
        intruder = await mqtt_subscriber(broker, "nothing/here", client_id="taken-1")
        await lost.wait(10)
        await intruder.close()
        for i in range(each // 2, each):
            for name in names:
                sink.send(delivery(f"{i}", topic=f"feeds/{name}", source=name))
        got = await sub.wait_for(lambda ms: all(
            len({m.payload for m in ms if m.topic == f"feeds/{n}"}) >= each for n in names),
            timeout=30)
    for name in names:
        seen = [int(m.payload) for m in got if m.topic == f"feeds/{name}"]
        assert sorted(set(seen)) == list(range(each)), name
        first = list(dict.fromkeys(seen))
        assert first == sorted(first), name  # a re-send repeats, it never reorders a source


async def test_with_an_outbox_the_sink_keeps_to_one_connection_and_says_so(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch],
    tmp_path: Path
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    warned = watch_log("connections: 3 is ignored")
    queue = QueueConfig(max_messages=1000, path=str(tmp_path / "outbox"))
    sink = MqttSink(config(broker, qos=1, connections=3, client_id="boxed", queue=queue))
    async with running(sink):
        for i in range(200):
            sink.send(delivery(str(i), topic="feeds/x", source=f"s{i % 4}"))
        got = await sub.wait_for(200)
        await warned.wait()
    assert [int(m.payload) for m in got] == list(range(200))
    assert " as boxed " in broker.log()
    assert " as boxed-1 " not in broker.log()


def test_a_connect_that_timed_out_says_so() -> None:
    """A TimeoutError's text is empty: the chaos soak's logs read ``cannot reach broker ...
    ()`` after a connect that hung for the whole connect timeout."""
    assert connect_failure("10.0.0.1:1883", TimeoutError(), None) == (
        "connect", "cannot reach broker 10.0.0.1:1883 (timed out)")
    refused = ConnectionRefusedError(111, "Connect call failed")
    assert connect_failure("h:1", refused, None)[1] == (
        "cannot reach broker h:1 ([Errno 111] Connect call failed)")


async def test_a_connection_dropped_before_its_connack_fails_the_attempt_at_once(
    watch_log: Callable[[str], LogWatch]
) -> None:
    """A broker that accepts TCP and drops it before any CONNACK (one dying or starting: the
    chaos soak's broker SIGKILLs hit this): the attempt fails at once and the next one follows
    (before, gmqtt waited for the CONNACK until the 10 s connect timeout, a 10 s stall)."""
    accepted: list[int] = []

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    dropped = watch_log("before its CONNACK")
    port = server.sockets[0].getsockname()[1]
    sink = MqttSink(MqttSinkConfig(name="broker", host="127.0.0.1", port=port, reconnect=FAST,
                                   client_id="bridge-dropped"))
    try:
        async with running(sink):
            record = await dropped.wait()
            await until(lambda: sink.stats.errors["connect"] >= 3)  # each well within 10 s
    finally:
        server.close()
        await server.wait_closed()
    assert len(accepted) >= 3
    assert f"cannot reach broker 127.0.0.1:{port} (the broker closed" in record.getMessage()


async def _down_with_persistent_subscriber(mosquitto: Make, subscribe: Subscribe,
                                           ) -> tuple[Broker, Subscriber]:
    """A broker that knows a persistent subscriber, then stopped: the sink starts unreachable."""
    broker = mosquitto()
    sub = await subscribe(broker, "feeds/#", persistent=True)
    await sub.close()
    broker.stop()
    return broker, sub


async def test_unreachable_broker_at_start_is_retried_and_queued_messages_delivered(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    broker, sub = await _down_with_persistent_subscriber(mosquitto, mqtt_subscriber)
    unreachable = watch_log("cannot reach broker")
    sink = MqttSink(config(broker, qos=1))
    async with running(sink):
        for i in range(50):
            sink.send(delivery(str(i), topic="feeds/a"))
        record = await unreachable.wait()
        await until(lambda: sink.stats.errors["connect"] >= 3)
        assert not sink.up and sink.stats.queue_depth == 50
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(50)
    assert [int(m.payload) for m in got] == list(range(50))
    assert record.levelno == logging.WARNING and "sink 'broker'" in record.getMessage()
    assert len(unreachable.records) == 1  # once per outage, not once per attempt


@pytest.mark.parametrize(("overflow", "kept"), [("drop_oldest", range(150, 250)),
                                                ("drop_newest", range(100))])
async def test_overflow_while_the_broker_is_down_counts_drops_exactly(
    mosquitto: Make, mqtt_subscriber: Subscribe, overflow: Any, kept: range
) -> None:
    broker, sub = await _down_with_persistent_subscriber(mosquitto, mqtt_subscriber)
    sink = MqttSink(config(broker, qos=1, queue=QueueConfig(100, overflow)))
    async with running(sink):
        for i in range(250):
            sink.send(delivery(str(i), topic="feeds/a"))
        assert sum(sink.stats.dropped.values()) == 150
        assert sink.stats.dropped[f"queue_full_{overflow.split('_')[1]}"] == 150
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(100)
    assert [int(m.payload) for m in got] == list(kept)


def test_a_byte_bound_drops_as_many_old_messages_as_a_new_one_needs_and_counts_them() -> None:
    queue = BoundedQueue[str](100, "drop_oldest", max_bytes=10, size=len)
    assert [queue.put(x) for x in ("aaaa", "bbbb", "cc")] == [True, True, True]
    assert (queue.bytes, queue.full) == (10, True)
    assert queue.put("dddddd") is False  # needs 6 bytes: the two oldest go
    assert (queue.take(10), queue.bytes) == (["cc", "dddddd"], 0)
    assert queue.put("x" * 11) is False and len(queue) == 0  # larger than the bound: never fits
    assert queue.dropped == {"queue_full_oldest": 2, "queue_full_newest": 1}
    queue.push_front(["éé"])  # a connection lost: taken messages come back, counted again
    assert queue.bytes == 2 and not queue.full
    newest = BoundedQueue[bytes](100, "drop_newest", max_bytes=4, size=len)
    assert [newest.put(b"ab"), newest.put(b"cd"), newest.put(b"e")] == [True, True, False]
    assert newest.take(5) == [b"ab", b"cd"] and newest.dropped == {"queue_full_newest": 1}


async def test_queue_max_bytes_bounds_the_in_memory_queue_while_the_broker_is_down(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker, sub = await _down_with_persistent_subscriber(mosquitto, mqtt_subscriber)
    queue = QueueConfig(100_000, "drop_oldest", max_bytes=10_000)
    sink = MqttSink(config(broker, qos=1, queue=queue))
    async with running(sink):
        for i in range(100):  # 100 KB into a 10 KB queue: the newest 10 survive
            sink.send(delivery(f"{i:04d}" + "x" * 996, topic="feeds/a"))
        assert sink.stats.queue_depth == 10 and sink.stats.dropped["queue_full_oldest"] == 90
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(10)
    assert [int(m.payload[:4]) for m in got] == list(range(90, 100))


async def test_queue_max_age_drops_what_waited_too_long_in_memory_and_counts_it(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker, sub = await _down_with_persistent_subscriber(mosquitto, mqtt_subscriber)
    sink = MqttSink(config(broker, qos=1, queue=QueueConfig(100, max_age=60.0)))
    async with running(sink):
        for i in range(20):  # received 2 minutes ago, or just now, alternately
            old = Message("src", str(i), time.time() - (120 if i % 2 else 0))
            sink.send(Delivery(old, str(i), "feeds/a"))
        broker.start()
        await sub.reconnect()
        got = await sub.wait_for(10)
        await until(lambda: sink.stats.dropped["expired"] == 10)
    assert [int(m.payload) for m in got] == list(range(0, 20, 2))


async def test_bad_credentials_are_reported_naming_the_sink_and_what_to_check(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    broker = mosquitto(users={"bridge": "s3cret"})
    refused = watch_log("check username/password")
    sink = MqttSink(config(broker, username="bridge", password="wrong-password"))
    async with running(sink):
        record = await refused.wait()
        assert not sink.up
    assert record.levelno == logging.ERROR
    assert "sink 'broker'" in record.getMessage() and "wrong-password" not in record.getMessage()
    assert sink.stats.errors["auth"] >= 1
    sub = await mqtt_subscriber(broker, "feeds/#", username="bridge", password="s3cret")
    good = MqttSink(config(broker, username="bridge", password="s3cret"))
    async with running(good):
        good.send(delivery("ok", topic="feeds/auth"))
        assert (await sub.wait_for(1))[0].payload == b"ok"


async def test_tls_with_the_test_ca_delivers(mosquitto: Make, mqtt_subscriber: Subscribe) -> None:
    broker = mosquitto(tls=True)
    sub = await mqtt_subscriber(broker, "feeds/#")
    sink = MqttSink(config(broker, qos=1))
    async with running(sink):
        sink.send(delivery("over tls", topic="feeds/tls"))
        assert (await sub.wait_for(1))[0].payload == b"over tls"


async def test_tls_without_the_ca_fails_with_a_clear_error(
    mosquitto: Make, watch_log: Callable[[str], LogWatch]
) -> None:
    broker = mosquitto(tls=True)
    failed = watch_log("check tls.ca_file")
    sink = MqttSink(config(broker, tls=TLSConfig()))
    async with running(sink):
        record = await failed.wait()
    assert record.levelno == logging.ERROR and "sink 'broker'" in record.getMessage()
    assert "certificate" in record.getMessage()
    assert sink.stats.errors["tls"] >= 1 and sink.stats.published == 0


async def test_an_unreadable_ca_file_is_a_tls_error_retried_until_the_file_is_there(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch],
    tmp_path: Path,
) -> None:
    broker = mosquitto(tls=True)
    sub = await mqtt_subscriber(broker, "feeds/#")
    missing = tmp_path / "ca.pem"
    failed = watch_log("check tls.ca_file")
    sink = MqttSink(config(broker, tls=TLSConfig(ca_file=str(missing)), qos=1))
    async with running(sink):
        record = await failed.wait()
        assert record.levelno == logging.ERROR and "No such file" in record.getMessage()
        assert broker.ca_file is not None
        missing.write_bytes(Path(broker.ca_file).read_bytes())  # the next attempt reads it
        sink.send(delivery("after the fix", topic="feeds/tls"))
        assert (await sub.wait_for(1, timeout=10))[0].payload == b"after the fix"


async def test_acl_refusals_are_counted_per_topic_and_other_topics_still_delivered(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    broker = mosquitto(deny=["denied/#"])
    sub = await mqtt_subscriber(broker)
    refused = watch_log("refused a publish")
    sink = MqttSink(config(broker, qos=1))
    async with running(sink):
        for _ in range(3):
            sink.send(delivery("no", topic="denied/x"))
        sink.send(delivery("yes", topic="allowed/y"))
        await sub.wait_for(1, topic="allowed/y")
        await until(lambda: sink.stats.published == 1)  # acks come in order: refusals first
    assert sink.stats.refused == {"denied/x": 3}
    assert len(refused.records) == 1 and "denied/x" in refused.records[0].getMessage()
    assert sub.on("denied/x") == []


async def test_invalid_topics_are_counted_and_skipped_while_the_rest_is_published(
    mosquitto: Make, mqtt_subscriber: Subscribe, watch_log: Callable[[str], LogWatch]
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker)
    invalid = watch_log("cannot publish to")
    sink = MqttSink(config(broker))
    async with running(sink):
        for topic in ("a/+/b", "", "a/#", "a/+/b"):
            sink.send(delivery("x", topic=topic))
        sink.send(delivery("fine", topic="ok/topic"))
        await sub.wait_for(1)
    assert [m.topic for m in sub.messages] == ["ok/topic"]
    assert sink.stats.dropped["invalid_topic"] == 4
    assert len(invalid.records) == 3  # once per topic


async def test_block_overflow_drain_waits_for_room_and_send_never_blocks(
    mosquitto: Make, mqtt_subscriber: Subscribe
) -> None:
    broker = mosquitto()
    sub = await mqtt_subscriber(broker, "feeds/#")
    sink = MqttSink(config(broker, qos=1, queue=QueueConfig(10, "block")))
    for i in range(10):
        sink.send(delivery(str(i), topic="feeds/b"))
    room = asyncio.create_task(sink.drain())
    await asyncio.sleep(0)
    assert not room.done()
    async with running(sink):
        await asyncio.wait_for(room, 5)
        await sub.wait_for(10)


async def test_close_while_the_broker_is_down_returns_and_counts_what_was_lost(
    mosquitto: Make,
) -> None:
    broker = mosquitto(start=False)
    sink = MqttSink(config(broker))
    task = asyncio.create_task(sink.run())
    for i in range(5):
        sink.send(delivery(str(i), topic="feeds/lost"))
    await until(lambda: sink.stats.errors["connect"] >= 1)
    sink.close()
    await asyncio.wait_for(task, 2)
    assert sink.stats.dropped["shutdown"] == 5


async def test_the_mqtt_socket_has_nagle_disabled(mosquitto: Make) -> None:
    broker = mosquitto()
    sink = MqttSink(config(broker))
    async with running(sink):
        await until(lambda: sink.up)
        transport = sink._conn.transport
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_a_stalled_broker_holds_the_flood_in_the_bounded_queue_not_in_memory(
    mosquitto: Make,
) -> None:
    broker = mosquitto()
    sink = MqttSink(config(broker, queue=QueueConfig(1000, "drop_oldest")))
    async with running(sink):
        await until(lambda: sink.up)
        transport = sink._conn.transport
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)  # alive but reading nothing: TCP buffers fill
        try:
            for _ in range(40):  # 40 MB offered at QoS 0
                for _ in range(1000):
                    sink.send(delivery("x" * 1024, topic="flood"))
                await asyncio.sleep(0.005)  # let the sink write until the socket pushes back
            assert sink.stats.dropped["queue_full_oldest"] > 0
            assert transport.get_write_buffer_size() < 512 * 1024
            assert sink.stats.queue_depth <= 1000
        finally:
            os.kill(broker.pid, signal.SIGCONT)


async def test_giving_up_after_max_attempts_raises_sink_unavailable(mosquitto: Make) -> None:
    broker = mosquitto(start=False)
    policy = BackoffPolicy(initial_delay=0.01, max_delay=0.01, jitter=0.0, max_attempts=3)
    sink = MqttSink(config(broker, reconnect=policy))
    sink.send(delivery("never", topic="feeds/x"))
    with pytest.raises(SinkUnavailable, match="max_attempts"):
        await asyncio.wait_for(sink.run(), 5)
    assert sink.stats.errors["connect"] == 4
    assert sink.stats.dropped["shutdown"] == 1


@pytest.mark.parametrize("qos", [0, 1])
async def test_with_linger_messages_one_per_loop_turn_and_a_burst_all_arrive_in_order(
    mosquitto: Make, mqtt_subscriber: Subscribe, qos: int
) -> None:
    # linger: the idle sink's write waits for others to share it; nothing is held for good.
    broker = mosquitto()
    sub = await mqtt_subscriber(broker)
    sink = MqttSink(config(broker, qos=qos, linger=0.02))
    async with running(sink):
        await until(lambda: sink.up)
        for n in range(5):  # one per loop turn, as many sources at a steady rate send them
            sink.send(delivery(f'{{"n":{n}}}'))
            await asyncio.sleep(0)
        await sub.wait_for(5)
        for n in range(5, 305):  # a burst: the first write lingers, the pump takes the rest
            sink.send(delivery(f'{{"n":{n}}}'))
        await sub.wait_for(305)
    assert sub.payloads("ws-bridge/src") == [f'{{"n":{n}}}'.encode() for n in range(305)]
