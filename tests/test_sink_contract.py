"""Every sink keeps the whole ``Sink`` contract, so the supervisor never asks which kind it has:
what each kind answers, and a check that the supervisor does not reach around the contract."""

from __future__ import annotations

import ast
import io
import time
from pathlib import Path

import pytest

from bridge.messages import Delivery, Message
from bridge.routing.template import Template
from bridge.sinks.base import Sink
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.settings import (
    FileSinkConfig,
    MqttSinkConfig,
    QueueConfig,
    StdoutSinkConfig,
    WebSocketSinkConfig,
)
from bridge.sinks.stdout import StdoutSink
from bridge.supervisor import build_sink

SUPERVISOR = Path(__file__).resolve().parents[1] / "bridge" / "supervisor.py"


def every_kind(tmp_path: Path) -> dict[str, Sink]:
    return {
        "stdout": build_sink(StdoutSinkConfig("out"), "host"),
        "file": build_sink(FileSinkConfig("log", Template(str(tmp_path / "{source}.jsonl"))),
                           "host"),
        "mqtt": build_sink(MqttSinkConfig("broker", "127.0.0.1", 1, topic_prefix="pre"), "host"),
        "websocket": build_sink(WebSocketSinkConfig("ws", token="t" * 32, port=0), "host"),
    }


def delivery(n: int) -> Delivery:
    return Delivery(Message("feed", str(n), time.time()), str(n), None)


def test_each_kind_reports_its_snapshot_and_whether_it_is_up(tmp_path: Path) -> None:
    for kind, sink in every_kind(tmp_path).items():
        snap = sink.snapshot()
        assert (snap.name, snap.type, snap.queue_depth, snap.published) == \
            (sink.name, kind, 0, 0)
        assert snap.up is sink.up
        assert sink.remote is (kind == "mqtt")  # only the broker connection can be down
    assert not every_kind(tmp_path)["mqtt"].up  # not connected before run()


def test_only_the_mqtt_sink_takes_requests_and_listeners(tmp_path: Path) -> None:
    for kind, sink in every_kind(tmp_path).items():
        sink.listen([])  # every sink accepts "nothing to listen to"
        if kind == "mqtt":
            assert sink.rpc_topic("feed") == "pre/feed/rpc"
        else:
            assert sink.rpc_topic("feed") is None
            with pytest.raises(ValueError, match="receives nothing"):
                sink.listen([("a/#", lambda msg: None)])


@pytest.mark.parametrize("kind", ["stdout", "mqtt"])
def test_a_replaced_sink_hands_over_what_it_queued_in_order(kind: str, tmp_path: Path) -> None:
    sink: Sink = StdoutSink(StdoutSinkConfig("out"), io.BytesIO()) if kind == "stdout" else \
        MqttSink(MqttSinkConfig("broker", "127.0.0.1", 1))
    for n in range(5):
        sink.send(delivery(n))
    assert [d.payload for d in sink.hand_over()] == ["0", "1", "2", "3", "4"]
    assert sink.snapshot().queue_depth == 0


def test_an_outbox_hands_over_only_its_unwritten_puts_its_rows_stay_on_disk(
    tmp_path: Path,
) -> None:
    """The successor opens the same file: it stores the puts not yet written after the rows
    already there (written at the old sink's close, they could land after the new one's)."""
    queue = QueueConfig(max_messages=100, path=str(tmp_path / "ob"))
    sink = MqttSink(MqttSinkConfig("broker", "127.0.0.1", 1, queue=queue))
    for n in range(3):
        sink.send(delivery(n))
    assert sink.outbox is not None
    sink.outbox.flush()  # stored
    for n in range(3, 5):
        sink.send(delivery(n))  # waiting for the next flush
    assert [d.payload for d in sink.hand_over()] == ["3", "4"]
    assert sink.snapshot().queue_depth == 3
    sink.outbox.close()


def test_the_supervisor_asks_no_sink_its_type_outside_the_factory() -> None:
    tree = ast.parse(SUPERVISOR.read_text())
    factory = next(f for f in ast.walk(tree)
                   if isinstance(f, ast.FunctionDef) and f.name == "build_sink")
    inside = {id(node) for node in ast.walk(factory)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            sink_types = {n for n in names if n.endswith(("Sink", "SinkConfig"))}
            assert not sink_types or id(node) in inside, f"line {node.lineno}: {sink_types}"
        if isinstance(node, ast.Attribute):  # the queue, the outbox: behind the contract
            assert node.attr not in {"queue", "outbox"}, f"line {node.lineno}: .{node.attr}"
