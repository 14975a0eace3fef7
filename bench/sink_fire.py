"""Per-message cost of the MQTT sink's hot path in process: send, the batch fire, PUBLISH encoding.

A measurement, not a test: publishes go to a fake transport that counts bytes, and QoS 1 acks
are settled through the client's own store, so the sink's send/batch/ack code runs unchanged.
CPU time of this process (not wall time: the host is shared). Usage:
``python bench/sink_fire.py [messages] [rounds]``; prints the best round per cell."""

from __future__ import annotations

import sys
import time
from typing import Any

from bridge.messages import Delivery, Message
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.mqtt_client import MqttClient
from bridge.sinks.settings import MqttSinkConfig, QueueConfig


class _Transport:
    def __init__(self) -> None:
        self.written = 0

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.written += sum(map(len, chunks))


class _Protocol:
    _paused = False


class _Connection:
    def __init__(self) -> None:
        self._transport, self._protocol, self._last_data_out = _Transport(), _Protocol(), 0.0


def cell(qos: int, lanes: int, count: int) -> float:
    """Seconds per message for ``count`` publishes of a 100-byte payload from 8 sources."""
    cfg = MqttSinkConfig(name="bench", host="127.0.0.1", port=1, qos=qos, connections=lanes,
                         queue=QueueConfig(max_messages=count + 1))
    sink = MqttSink(cfg)
    conns = [MqttClient(cfg, f"bench-{k}", on_ack=sink._acked if k == 0 else _lane_ack(sink, k),
                        on_lost=lambda: None) for k in range(lanes)]
    for conn in conns:  # wire each as the sink's own connect() does
        conn._client._connection = _Connection()
        conn._answers.open = True
    sink._conn, sink._lanes = conns[0], conns[1:]
    payload = "x" * 100
    deliveries = [Delivery(Message(f"s{i % 8}", payload, time.time()), payload)
                  for i in range(count)]
    cap = min(1000, conns[0].receive_maximum)
    start = time.process_time()
    for i, d in enumerate(deliveries):
        sink.send(d)
        if i % 256 == 255:
            _pump_once(sink, conns, cap)
    while len(sink.queue):
        _pump_once(sink, conns, cap)
    took = time.process_time() - start
    assert sink.stats.published == count, sink.stats.published
    return took / count


def _lane_ack(sink: MqttSink, lane: int) -> Any:
    return lambda acks: sink._acked(acks, sent=sink._window.lanes[lane])


def _pump_once(sink: MqttSink, conns: list[MqttClient], cap: int) -> None:
    sink._batch(conns[0], cap)
    for conn in conns:  # the broker answers every QoS 1 publish at once, in one read
        conn._answers._acked([(mid, 0) for mid in conn._store._messages])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for qos, lanes in ((0, 1), (1, 1), (1, 4)):
        best = min(cell(qos, lanes, count) for _ in range(rounds))
        print(f"qos {qos} lanes {lanes}: {best * 1e9:.0f} ns/msg ({1 / best / 1000:.0f}k msgs/s)")


if __name__ == "__main__":
    main()
