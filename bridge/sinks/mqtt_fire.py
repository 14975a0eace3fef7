"""Firing deliveries on one MQTT connection: topics checked, the window kept, refusals counted.

The sink's pump and its end-of-turn flush fire each lane's share of a batch through ``Firing``:
corked into one socket write, in order, until the broker's window is full. A topic is checked
once, a delivery that can never be published (invalid topic, over MQTT's size limit) is counted
and settled, and each such topic is logged once. Under MQTT 5 with ``message_expiry``, each
publish carries what is left of it (``mqtt_expiry``); one whose expiry passed while it waited is
not published, counted as ``expired`` and settled. The connection is any object with ``cork``,
``uncork`` and ``publish`` (the sink passes its ``MqttClient``), so this molecule imports no
other."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from bridge.errors_sink import PublishRefused, SinkUnavailable
from bridge.messages import Delivery
from bridge.sinks import mqtt_topics as mt
from bridge.sinks.mqtt_properties import PropertyBuilder
from bridge.sinks.mqtt_window import Sent
from bridge.sinks.outbox_rows import StoredDelivery
from bridge.sinks.settings import MqttSinkConfig
from bridge.stats.sink import MqttStats

log = logging.getLogger("bridge.sinks.mqtt")
KNOWN_TOPICS = 10_000  # bounded: templated topics are not


class Connection(Protocol):
    """What firing needs of a broker connection (``MqttClient`` has it)."""

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False,
                props: bytes | None = None) -> int | None: ...


class Firing:
    """``firing(conn, deliveries, cap, sent)``: publish them in order on ``conn``, each QoS 1/2
    one into ``sent`` (its lane's window, at most ``cap``); how many of them left."""

    def __init__(self, cfg: MqttSinkConfig, props: PropertyBuilder, stats: MqttStats,
                 dropped: Counter[str], settle: Callable[[Delivery], None] | None, *,
                 wall: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._wall = wall  # the clock messages are received by: their expiry is counted on it
        self._stats = stats
        self._dropped = dropped  # the queue's drop counters
        self._props = props if cfg.protocol == 5 else None
        self._outbox_settle = settle  # the outbox's: a delivery leaves it once settled
        self._settle = settle if settle is not None else _keep
        self._good: set[str] = set()  # topics known to be valid
        self._noted: set[str] = set()  # topics already logged as invalid or refused

    def __call__(self, conn: Connection, batch: list[Delivery], cap: int,
                 sent: dict[int, Sent]) -> int:
        conn.cork()  # one socket write for the whole batch
        try:
            return self._each(conn, batch, cap, sent)
        finally:
            conn.uncork()

    def note(self, topic: str, text: str) -> None:
        """Log ``text`` about ``topic``, the first time only."""
        if topic not in self._noted and len(self._noted) < KNOWN_TOPICS:
            self._noted.add(topic)
            log.warning("sink %r: %s", self._cfg.name, text)

    def _each(self, conn: Connection, batch: list[Delivery], cap: int,
              sent: dict[int, Sent]) -> int:
        cfg, props, stats = self._cfg, self._props, self._stats
        settle, outbox_settle = self._settle, self._outbox_settle
        now = time.monotonic()  # once per batch: the start of each publish's latency
        expiry = props.expiry if props is not None and props.expiry.interval else None
        wall = self._wall() if expiry is not None else 0.0
        written, left = 0, 0  # QoS 0 publishes: counted once per batch
        for i, d in enumerate(batch):
            topic = d.topic if d.topic is not None else f"{cfg.topic_prefix}/{d.message.source}"
            if topic not in self._good:  # checked once per topic, not once per message
                if (problem := mt.topic_problem(topic)) is not None:
                    self._dropped["invalid_topic"] += 1
                    self.note(topic, f"cannot publish to {topic[:200]!r}: {problem}")
                    settle(d)
                    continue
                if len(self._good) < KNOWN_TOPICS:
                    self._good.add(topic)
            qos = cfg.qos if d.qos is None else d.qos
            if qos and len(sent) >= cap:  # the broker's window is full: this and the rest wait
                stats.published += written
                return i
            if expiry is not None and not (left := expiry.left(d.message, wall)):
                self._dropped["expired"] += 1  # expired while it waited: nobody may get it now
                settle(d)
                continue
            retain = cfg.retain if d.retain is None else d.retain
            try:
                mid = conn.publish(topic, d.payload, qos, retain, self._properties(d, left))
            except PublishRefused:  # over MQTT's 256 MB limit
                self._dropped["too_large"] += 1
                settle(d)
            except SinkUnavailable as exc:  # out of packet ids: put the rest back, lose nothing
                stats.errors[exc.kind] += 1
                stats.published += written
                return i
            else:
                if mid is not None:
                    sent[mid] = (topic, d, now)
                    continue
                written += 1
                if outbox_settle is not None:
                    outbox_settle(d)  # QoS 0 is settled once written: at most once, as promised
        stats.published += written
        return len(batch)

    def _properties(self, d: Delivery, left: int) -> bytes | None:
        """MQTT 5 properties (None under 3.1.1); msg_id: the outbox's key, stable across
        restarts, for consumers to dedupe; ``left``: the seconds of expiry left."""
        if self._props is None:
            return None
        return self._props(d, d.msg_id if isinstance(d, StoredDelivery) else None, left)


def _keep(_: Delivery) -> None:
    """Settling a delivery of the in-memory queue: nothing to do, taking it removed it."""
