"""MQTT sink: one reconnecting broker connection, publishes fired from the queue, acks counted.

A pump task fires the queue a batch at a time. While it is idle, ``send`` fires by itself at
the end of the loop turn (``_flush``), which at a steady rate saves a task wake-up per read, or
``linger`` later, so that messages from many sources share a socket write.

Reconnects are ours, each a fresh ``MqttClient`` (clean start; see ``mqtt_client`` for why not
gmqtt's). Deliveries unacked when a connection dies return to the front of the queue, in order.
QoS 1 is at-least-once; QoS 2 exactly-once within a connection, at-least-once across reconnects.
With ``queue.path`` the queue is a durable ``Outbox``: a message leaves it once settled (acked,
or written for QoS 0), so it also outlives restarts and kill -9, at least once, each publish
carrying the MQTT 5 user property ``msg_id`` for consumers to dedupe. Closing then waits only
for the in-flight acks: the rest stays on disk for the next start. Drops are logged per episode.

This module keeps the connections (their reconnect, the lanes of ``connections: N``) and the
pump; firing a lane's deliveries is the ``mqtt_fire`` molecule's. What it counts and remembers
are atoms it composes: the windows in flight (``mqtt_window``), drop episodes (``mqtt_drops``),
what it publishes retained about itself (``mqtt_presence``) and the way back's listeners
(``mqtt_listeners``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from bridge.errors_sink import SinkUnavailable
from bridge.messages import Delivery, byte_size
from bridge.sinks import mqtt_property_list as plist
from bridge.sinks import mqtt_topics as mt
from bridge.sinks.mqtt_client import MqttClient, unavailable
from bridge.sinks.mqtt_drops import DropLog
from bridge.sinks.mqtt_fire import Firing
from bridge.sinks.mqtt_lanes import lane_client_id
from bridge.sinks.mqtt_listeners import Listeners
from bridge.sinks.mqtt_presence import Presence
from bridge.sinks.mqtt_properties import PropertyBuilder
from bridge.sinks.mqtt_reading import Answer
from bridge.sinks.mqtt_window import Sent, Window
from bridge.sinks.outbox import Outbox
from bridge.sinks.outbox_file import open_outbox
from bridge.sinks.queue import BoundedQueue
from bridge.sinks.settings import MqttSinkConfig
from bridge.sinks.way_back import Listener
from bridge.stats.sink import MqttStats
from bridge.stats.snapshot import SinkSnapshot
from bridge.tls import client_context
from bridge.turns import Soon
from bridge.upstream.backoff import backoff

log = logging.getLogger("bridge.sinks.mqtt")
MAX_INFLIGHT = 1000  # publishes awaiting an answer per connection, unless Receive Maximum is lower
BATCH = 256  # deliveries fired per loop turn
CLOSE_TIMEOUT = 5.0  # for close(): flushing the queue, then DISCONNECT


class MqttSink:
    """The ``Sink`` publishing to one MQTT broker; see the module docstring for reconnects."""

    def __init__(self, cfg: MqttSinkConfig, *, wall: Callable[[], float] = time.time,
                 soon: Soon | None = None) -> None:
        """``wall``: the clock messages are received by (their expiry is counted on it);
        ``soon``: schedules a call at the end of the loop turn (default: the loop's
        ``call_soon``; the daemon's ``Turns.soon``, which runs it before the turn is held)."""
        self.name, self.config = cfg.name, cfg
        host = socket.gethostname()
        self.outbox = None
        if cfg.queue.path:
            self.outbox = Outbox(cfg.queue, cfg.name, open_outbox(cfg.queue.path, cfg.name))
        self.queue: BoundedQueue[Delivery] | Outbox
        if self.outbox is None:
            self.queue = BoundedQueue[Delivery](cfg.queue.max_messages, cfg.queue.overflow,
                                                cfg.queue.max_bytes, _payload_size)
        else:
            self.queue = self.outbox
        self._drops = DropLog()
        self._max_age = cfg.queue.max_age if self.outbox is None else 0.0  # the outbox's own
        self.stats = MqttStats(self.queue, dropped=self.queue.dropped)
        self._client_id = cfg.client_id.replace("{hostname}", host)
        self._wake, self._stop, self._room = asyncio.Event(), asyncio.Event(), asyncio.Event()
        if self.outbox is not None:  # rows held while the disk was full, now stored: to send
            self.outbox.on_written = self._wake.set
        # The pump waits for work: send() fires at the end of the loop turn instead of waking it
        self._idle, self._flush_due = False, False
        self._refill_due = False  # the same for the room answers made (_refill), without linger
        self._linger = cfg.linger  # how long that end-of-turn write may wait for more
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon: Soon = soon or _call_soon
        self._conn: MqttClient | None = None
        # connections: N: lanes 1..N-1 publish only, each source pinned to one (mqtt_lanes). The
        # outbox re-reads by row from its lowest unsettled row, so it keeps to one connection.
        self._window = Window(cfg.connections if self.outbox is None else 1)
        self._sent = self._window.lanes[0]  # the primary's window
        self._lanes: list[MqttClient] = []  # lanes 1..N-1, while connected
        self._presence = Presence(cfg.availability, cfg.topic_prefix)
        self._listeners = Listeners()  # MQTT -> upstream
        self._firing = Firing(cfg, PropertyBuilder(cfg.message_expiry, cfg.user_properties, host),
                              self.stats, self.queue.dropped,
                              self.outbox.settle if self.outbox is not None else None, wall=wall)
        self._deadline = 0.0
        self._outage = ""  # the reason of the last failed connect, logged once per outage

    @property
    def up(self) -> bool:
        return self._conn is not None

    @property
    def remote(self) -> bool:
        return True  # up only while the broker is reachable

    def snapshot(self) -> SinkSnapshot:
        stats = self.stats
        # an outbox's depth counts what a full disk holds in memory, not yet takeable
        depth = len(self.queue) if self.outbox is None else max(0, self.outbox.waiting())
        return SinkSnapshot(name=self.name, type="mqtt", up=self.up, queue_depth=depth,
                            published=stats.published, errors=sum(stats.errors.values()),
                            dropped=dict(self.queue.dropped),
                            publish_latency=stats.publish_latency,
                            queue_limit=self.config.queue.max_messages,
                            oldest_age=self.outbox.oldest_age() if self.outbox else None)

    def reopen(self) -> None:
        """Nothing open by name: the outbox is one SQLite file, kept open."""

    def hand_over(self) -> list[Delivery]:
        """The in-memory queue, taken; an outbox's rows stay on disk, for a successor with the
        same ``queue.path`` to send, and its puts not yet written (a full disk's too) go to it."""
        if self.outbox is not None:
            return self.outbox.hand_over()
        return self.queue.take(len(self.queue))

    def rpc_topic(self, source: str) -> str | None:
        return mt.source_topic(self.config.topic_prefix, source, "rpc")

    def send(self, delivery: Delivery) -> None:
        if not self.queue.put(delivery):
            self._log_drops()
        if not self._idle or self._loop is None:
            self._wake.set()
        elif not self._flush_due:  # a call_soon costs less than waking the pump's task
            self._flush_due = True
            if self._linger:  # others may share the write (linger)
                self._loop.call_later(self._linger, self._flush)
            else:
                self._soon(self._flush)

    async def drain(self) -> None:
        while self.queue.full and not self._room.is_set():  # set for good once run() ends
            await self._room.wait()

    def close(self) -> None:
        if not self._stop.is_set():
            self._deadline = time.monotonic() + CLOSE_TIMEOUT
            self._stop.set()
            self._wake.set()

    def source_state(self, source: str, state: str) -> None:
        """Publish ``state`` and the source's availability retained; remembered and published
        again after every reconnect."""
        for topic, payload in self._presence.state(source, state):
            if self._conn is not None:
                self._conn.publish(topic, payload, retain=True)

    def source_removed(self, source: str) -> None:
        """Empty the source's retained state and availability (now when connected, and after
        every reconnect) and forget them: a reload removed it."""
        for topic, payload in self._presence.gone(source):
            if self._conn is not None:
                self._conn.publish(topic, payload, retain=True)

    def retain(self, topic: str, payload: str) -> None:
        """Publish ``payload`` retained now when connected, and again after every reconnect
        (an empty one, deleting the retained message, too: see ``Presence.keep``)."""
        topic, payload = self._presence.keep(topic, payload)
        if self._conn is not None:
            self._conn.publish(topic, payload, retain=True)

    def state_topics(self) -> set[str]:
        return self._presence.topics()

    def listen(self, listeners: list[tuple[str, Listener]]) -> None:
        """Subscribe to each (topic filter, handler)'s filter, again after every reconnect; each
        message goes to every handler whose filter matches. Replaces the previous listeners."""
        new = self._listeners.replace(listeners)
        if self._conn is not None:
            self._conn.subscribe(new)

    def respond(self, topic: str, payload: str | bytes, props: dict[str, Any]) -> None:
        """Publish an RPC response now, QoS 1; lost when the broker is down (nobody to tell)."""
        if self._conn is not None and mt.topic_problem(topic) is None:
            self._conn.publish(topic, payload, 1, False, plist.properties(props))

    async def run(self) -> None:
        cfg, delays = self.config, backoff(self.config.reconnect)
        self._room.clear()
        self._loop = asyncio.get_running_loop()
        if cfg.protocol == 4 and (cfg.message_expiry or cfg.user_properties):
            log.warning("sink %r: MQTT 3.1.1 has no properties; message_expiry and user "
                        "properties are ignored", self.name)
        if cfg.connections > 1 and self.outbox is not None:
            log.warning("sink %r: with queue.path (the outbox) the sink publishes on one "
                        "connection; connections: %d is ignored", self.name, cfg.connections)
        try:
            while not self._stop.is_set() or (self._backlog() and self._left() > 0):
                try:
                    conn = await self._connect()
                except SinkUnavailable as exc:
                    self._failed(exc)
                    if self._stop.is_set():
                        break  # closing cannot wait for the broker
                    if (delay := next(delays, None)) is None:
                        raise SinkUnavailable(self.name, "reconnect.max_attempts reached") from exc
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    continue
                delays = backoff(cfg.reconnect)
                await self._pump(conn)
        finally:
            self._stopped()

    def _stopped(self) -> None:
        """What the sink leaves behind, said once: the outbox's rows kept for the next start, or
        the in-memory queue counted as lost; open drop episodes summarised; drain() released."""
        if self.outbox is not None and self._stop.is_set():
            log.info("sink %r: %d messages kept in the outbox %s", self.name,
                     len(self.outbox), self.outbox.path)
            self.outbox.close()
        elif self.outbox is None and (left := len(self.queue.take(len(self.queue)))):
            self.queue.dropped["shutdown"] += left
            log.warning("sink %r: stopped with %d messages undelivered", self.name, left)
        for line in self._drops.end(self.queue.dropped, time.monotonic()):
            log.warning("sink %r: %s", self.name, line)
        self._room.set()

    def _backlog(self) -> int:
        """What is still to send before closing: the outbox keeps its rows for the next start."""
        return 0 if self.outbox is not None and self._stop.is_set() else len(self.queue)

    def _log_drops(self, settle: bool = False) -> None:
        now, full = time.monotonic(), self.queue.full
        for line in self._drops.check(self.queue.dropped, now, full=full, settle=settle):
            log.warning("sink %r: %s", self.name, line)

    def _left(self) -> float:
        return self._deadline - time.monotonic() if self._stop.is_set() else 3600.0

    async def _connect(self) -> MqttClient:
        cfg = self.config
        try:  # built at each attempt: a CA or certificate file fixed meanwhile is read again
            tls = client_context(cfg.tls) if cfg.tls is not None else None
        except OSError as exc:  # ssl.SSLError is one: an unreadable CA, certificate or key
            raise unavailable(cfg, exc, tls=True) from exc
        conn = MqttClient(cfg, self._client_id, on_ack=self._acked, on_lost=self._lost,
                          on_message=self._listeners, tls=tls)
        await _connected(conn, cfg)
        try:
            self._lanes = await self._connect_lanes()
        except BaseException:
            conn.abort()
            raise
        conn.subscribe(self._listeners.filters)
        log.info("sink %r: connected to %s:%d", self.name, cfg.host, cfg.port)
        self._conn, self._outage = conn, ""
        for topic, payload in self._presence.online():
            conn.publish(topic, payload, retain=True)
        return conn

    async def _connect_lanes(self) -> list[MqttClient]:
        """Lanes 1..N-1: no will, no availability, no subscriptions; all of them or none."""
        cfg, lanes = dataclasses.replace(self.config, availability=None), []
        try:
            for k, sent in enumerate(self._window.lanes[1:], start=1):
                lanes.append(MqttClient(cfg, lane_client_id(self._client_id, k),
                                        on_ack=functools.partial(self._acked, sent=sent),
                                        on_lost=self._lost))
                await _connected(lanes[-1], cfg)
        except BaseException:
            for lane in lanes:
                lane.abort()
            raise
        return lanes

    async def _pump(self, conn: MqttClient) -> None:
        clean = False
        try:
            while self._conn is conn:
                self._wake.clear()
                cap = min(MAX_INFLIGHT, conn.receive_maximum)
                settled = not self._backlog() and not self._window  # nothing left to answer
                if self._stop.is_set() and (self._left() <= 0 or settled):
                    clean = True
                    await self._disconnect(conn)
                elif self._backlog() and self._window.has_room(cap):
                    await self._writable(conn)  # the broker is not reading: the rest waits here
                    self._batch(conn, cap)
                    if self._backlog() and self._window.has_room(cap):
                        await asyncio.sleep(0)  # let the sources run between batches
                elif not self._stop.is_set() and self._drops.open:  # summarised once quiet
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._drops.quiet):
                            await self._wake.wait()
                    self._log_drops(settle=True)
                elif not self._stop.is_set():
                    self._idle = True  # until woken, send() publishes by itself (_flush)
                    try:
                        await self._wake.wait()  # no timer: an ack or a bigger backlog wakes it
                    finally:
                        self._idle = False
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._left()):
                            await self._wake.wait()
        except SinkUnavailable:
            pass  # lost while waiting to write: handled like any other loss, below
        finally:
            self._drop_connections(conn)
            if not clean:
                log.warning("sink %r: lost the connection to the broker", self.name)

    async def _writable(self, conn: MqttClient) -> None:
        await conn.writable()
        for lane in self._lanes:
            await lane.writable()

    def _drop_connections(self, conn: MqttClient) -> None:
        """Every lane aborted; what awaited an answer goes back to the queue's front, each
        lane's in order (a source is on one lane: its order holds)."""
        self._conn, lanes, self._lanes = None, self._lanes, []
        for lane in [conn, *lanes]:
            lane.abort()
        self.queue.push_front(self._window.unanswered())

    async def _disconnect(self, conn: MqttClient) -> None:
        """Closing: offline (retained) on the primary, then DISCONNECT on every lane.

        Offline goes at QoS 1, as the will does: a broker may pass a QoS 0 publish to a
        subscriber ahead of the QoS 1 messages it still queues for it, so a QoS 0 offline could
        arrive before the last messages. Its answer is not awaited (``_acked`` ignores it)."""
        for topic, payload in self._presence.offline():
            try:
                conn.publish(topic, payload, qos=1, retain=True)
            except SinkUnavailable:  # no packet id free (closing on timeout): QoS 0 then
                conn.publish(topic, payload, retain=True)
        self._conn = None
        for lane in [*self._lanes, conn]:
            await lane.disconnect()
        log.info("sink %r: disconnected", self.name)

    def _batch(self, conn: MqttClient, cap: int) -> None:
        # Receive Maximum bounds QoS 1/2 publishes only: a QoS 0 sink takes a whole batch, and
        # _fire_each holds back a QoS 1 route's delivery that finds the window full.
        room = BATCH if self.config.qos == 0 else min(self._window.room(cap), BATCH)
        batch = self.queue.take(room)
        if self._max_age:  # the in-memory queue's max_age: too old when taken, as the outbox's
            cutoff = time.time() - self._max_age
            fresh = [d for d in batch if d.message.received_at >= cutoff]
            self.queue.dropped["expired"] += len(batch) - len(fresh)
            batch = fresh
        self._fire(conn, batch, cap)
        self._log_drops(settle=True)
        self._room.set()  # wakes drain() waiters, which check for room themselves
        self._room.clear()

    def _flush(self) -> None:
        """At the end of the loop turn of send(): publish one batch if the pump is still idle
        and the socket takes writes; anything else (more, closing) wakes the pump."""
        self._flush_due = False
        self._fire_idle()

    def _refill(self) -> None:
        """After the answers of one read from the broker: what their room takes, in one write."""
        self._refill_due = False
        self._fire_idle()

    def _fire_idle(self) -> None:
        """One batch while the pump is idle, if the socket takes writes and the window has room;
        the pump is woken for anything else but a full window."""
        conn = self._conn
        cap = min(MAX_INFLIGHT, conn.receive_maximum) if conn is not None else 0
        full = not self._window.has_room(cap)
        fired = (self._idle and conn is not None and conn.can_write and not full
                 and all(lane.can_write for lane in self._lanes))
        if fired:
            assert conn is not None
            self._batch(conn, cap)
        # A full window waits for the next answers, which refill it (_acked): no pump wake-up
        waiting = full and self._idle and conn is not None
        if self._backlog() and not waiting and (not fired or self._window.has_room(cap)):
            self._wake.set()

    def _fire(self, conn: MqttClient, batch: list[Delivery], cap: int) -> None:
        """Fire ``batch`` on the lanes its sources are pinned to; what stayed goes back."""
        if not self._lanes:  # one connection: no split, no closure (a batch is a few at QoS 1)
            if (fired := self._firing(conn, batch, cap, self._sent)) < len(batch):
                self.queue.push_front(batch[fired:])
            return
        conns, sents = [conn, *self._lanes], self._window.lanes

        def fire_lane(lane: int, group: list[Delivery]) -> int:
            return self._firing(conns[lane], group, cap, sents[lane])

        if rest := self._window.fire(batch, fire_lane):
            self.queue.push_front(rest)

    def _failed(self, exc: SinkUnavailable) -> None:
        self.stats.errors[exc.kind] += 1
        if exc.detail != self._outage:  # once per outage, and again only when the reason changes
            self._outage = exc.detail
            level = logging.ERROR if exc.kind in ("auth", "tls") else logging.WARNING
            log.log(level, "%s; retrying", exc)

    def _lost(self) -> None:
        self._conn = None
        self._wake.set()

    def _acked(self, acks: list[Answer], sent: dict[int, Sent] | None = None) -> None:
        """The broker answered QoS 1/2 publishes (the PUBACKs of one read, in order; on lane
        ``sent``, the primary's if None); codes of 0x80 and above are refusals."""
        window, stats, outbox = self._sent if sent is None else sent, self.stats, self.outbox
        item, published = None, 0
        for mid, reason in acks:
            if (answered := window.pop(mid, None)) is None:
                continue  # an RPC response's or the offline message's: not in a window
            item = answered
            if outbox is not None:  # a refusal too: the broker will not take it later
                outbox.settle(item[1])
            if reason < 0x80:
                published += 1
            else:
                self._refused(item[0], reason)
        stats.published += published
        if item is not None:
            stats.publish_latency = time.monotonic() - item[2]  # from the write to the answer
            if outbox is not None:
                self._room.set()  # the outbox counts rows in flight: answers make room
                self._room.clear()
        self._window.stalled = False  # room again, even from an answer to an RPC response
        if self._stop.is_set() or not self._idle:  # the pump waits to close, or is busy
            if self.queue or self._stop.is_set():
                self._wake.set()
        elif self._backlog() and not self._refill_due and self._loop is not None:
            self._refill_due = True  # once per read: its answers' room filled in one write
            self._soon(self._refill)

    def _refused(self, topic: str, reason: int) -> None:
        self.stats.refused[topic] += 1
        self._firing.note(topic, f"the broker refused a publish to {topic!r} "
                          f"(reason 0x{reason:02x}): check the broker's ACL for this client")


def _call_soon(callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_soon(callback)


def _payload_size(d: Delivery) -> int:
    return byte_size(d.payload)


async def _connected(conn: MqttClient, cfg: MqttSinkConfig) -> None:
    """``conn.connect()``, failing at once when the broker drops the connection before its
    CONNACK (a broker dying or starting): gmqtt would wait for it until the connect timeout."""
    connecting = asyncio.ensure_future(conn.connect())
    gone = asyncio.ensure_future(conn.gone.wait())
    try:
        await asyncio.wait((connecting, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not connecting.done():
            connecting.cancel()
    if not connecting.done():
        conn.abort()
        raise unavailable(cfg, ConnectionResetError(
            "the broker closed the connection before its CONNACK"))
    connecting.result()
