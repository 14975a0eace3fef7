"""The one place the bridge meets gmqtt: connect, publish, see each answer, translate its errors.

gmqtt's reconnect is off (it never retries a first connect; it resumes with clean_session=False,
dropping unacked QoS 1/2 when the broker lost the session): the sink makes a fresh MqttClient per
attempt. Internals used: the protocol's packet reader (each read goes through ``mqtt_answers``,
which settles the PUBACKs a run at a time and reads the reason codes gmqtt ignores), the PUBREC
handler, its store of unacked packets and packet ids, and the transport. PUBLISH packets are
``mqtt_packet``'s rather than gmqtt's (why: ARCHITECTURE.md, Hot path), written a batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, cast

import gmqtt
from gmqtt.mqtt.package import Package
from gmqtt.storage import PersistentStorage

from bridge.errors_sink import PublishRefused, SinkUnavailable
from bridge.sinks import mqtt_packet as packet
from bridge.sinks.mqtt_answers import AckFn, Answers
from bridge.sinks.mqtt_incoming import Incoming, connect_failure, incoming
from bridge.sinks.settings import MqttSinkConfig

_NEVER: Final = -2  # below gmqtt's "unlimited" (-1) reconnect_retries: its reconnect never fires
CONNECT_TIMEOUT: Final = 10.0
DISCONNECT_TIMEOUT: Final = 1.0  # a broker that does not take our DISCONNECT is cut off
__all__ = ["AckFn", "MessageFn", "MqttClient", "unavailable"]
MessageFn = Callable[[Incoming], None]


class MqttClient:
    """One broker connection; failures surface as ``SinkError``. ``on_ack`` (the answers of one
    read: [(mid, reason)], in order), ``on_lost()`` and ``on_message(Incoming)`` (of ``subscribe``)
    fire only between ``connect`` returning and ``disconnect`` or ``abort``."""

    def __init__(self, cfg: MqttSinkConfig, client_id: str, on_ack: AckFn,
                 on_lost: Callable[[], None], on_message: MessageFn | None = None, *,
                 tls: ssl.SSLContext | None = None) -> None:
        self._cfg = cfg
        self._on_lost = on_lost
        self._on_message = on_message
        self._tls = tls
        self.gone = asyncio.Event()  # the connection dropped (before its CONNACK too)
        self._topics = packet.Topics()
        self._no_props = packet.NO_PROPERTIES if cfg.protocol == 5 else b""
        self._chunks: list[bytes] | None = None  # between cork() and uncork(): the batch
        self._store = store = PersistentStorage()  # gmqtt's unacked QoS 1/2
        av = cfg.availability
        will = gmqtt.Message(av.topic, av.offline, qos=1, retain=True) if av else None
        client = gmqtt.Client(client_id, will_message=will, persistent_storage=store)
        client.reconnect_retries = _NEVER
        if cfg.username is not None:
            client.set_auth_credentials(cfg.username, cfg.password)
        handler = client._package_handler
        self._ids = handler.id_generator  # created with the client, never replaced
        self._answers = answers = Answers(on_ack, self._ids.free_id, store.remove_message_by_mid)
        store.remove_message_by_mid = answers.settled  # gmqtt's QoS 2 flows end there
        handle = handler._handle_pubrec_packet  # to see its reason code
        handler._handle_pubrec_packet = lambda cmd, pkt: handle(cmd, answers.read(pkt))
        client.on_connect = lambda _c, _flags, _rc, props: answers.connack(props)
        client.on_disconnect = lambda c, *_: self._lost()
        client.on_message = self._received
        self._client: Any = client

    async def connect(self) -> None:
        """Open the connection; raises SinkUnavailable (kind auth, tls, refused or connect)."""
        cfg = self._cfg
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._client.connect(cfg.host, cfg.port, ssl=self._tls or False,
                                           version=cfg.protocol, keepalive=round(cfg.keepalive))
        except (OSError, gmqtt.MQTTConnectError) as exc:  # TimeoutError is an OSError
            self.abort()
            raise unavailable(cfg, exc) from exc
        except BaseException:
            self.abort()
            raise
        self._answers.open = True
        self._ids._max = self._answers.receive_maximum + 1  # gmqtt's would leave one id unused
        _conn(self._client, "_protocol")._read_packet = self._read  # every read: see _read

    @property
    def receive_maximum(self) -> int:
        """QoS 1/2 publishes that may await an answer at once: the broker's Receive Maximum."""
        return self._answers.receive_maximum

    @property
    def transport(self) -> asyncio.Transport | None:
        return cast("asyncio.Transport | None", _conn(self._client, "_transport"))

    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False,
                props: bytes | None = None) -> int | None:
        """Fire one PUBLISH: its packet id for QoS 1/2, else None (PublishRefused over 256 MB).
        ``props`` is an encoded MQTT 5 property list (``mqtt_packet``); 3.1.1 leaves it out."""
        data = payload.encode("utf-8", errors="replace") if isinstance(payload, str) else payload
        extra = props if props and self._no_props else self._no_props
        ids, mid = self._ids, None
        try:
            mid = ids.next_id() if qos else None
            pkt = packet.publish(self._topics[topic], data, extra, qos=qos, retain=retain, mid=mid)
        except OverflowError:
            raise SinkUnavailable(self._cfg.name, "every packet id awaits an answer",
                                  "no_packet_id") from None
        except ValueError as exc:
            if mid is not None:
                ids.free_id(mid)
            raise PublishRefused(self._cfg.name, f"{topic[:200]!r}: {exc}") from None
        if mid is not None:
            self._store.push_message(mid, pkt)
        if self._chunks is not None:
            self._chunks.append(pkt)
        elif (transport := self.transport) is not None and not transport.is_closing():
            transport.write(pkt)
        return mid

    def subscribe(self, filters: list[str]) -> None:
        """Subscribe (QoS 1) to each topic filter; what arrives goes to ``on_message``."""
        if filters:
            self._client.subscribe([gmqtt.Subscription(f, qos=1) for f in filters])

    def cork(self) -> None:
        """Hold the publishes until ``uncork``: they leave in one socket write (writev)."""
        self._chunks = []

    def uncork(self) -> None:
        """Write what ``cork`` held."""
        chunks, self._chunks = self._chunks, None
        if chunks and (transport := self.transport) is not None and not transport.is_closing():
            self._client._connection._last_data_out = time.monotonic()  # for its keepalive
            transport.writelines(chunks)  # uvloop: one writev, no joined copy of the batch

    @property
    def can_write(self) -> bool:
        """Whether the socket takes writes now: its write buffer is below the high-water mark."""
        return not getattr(_conn(self._client, "_protocol"), "_paused", True)

    async def writable(self) -> None:
        """Return once the socket takes writes; raises SinkUnavailable (lost) if it dropped."""
        if (drain := getattr(_conn(self._client, "_protocol"), "_drain_helper", None)) is None:
            return
        try:
            await drain()
        except ConnectionError:
            at = f"{self._cfg.host}:{self._cfg.port}"
            raise SinkUnavailable(self._cfg.name, f"lost broker {at}", "lost") from None

    async def disconnect(self) -> None:
        """Send DISCONNECT and close, within DISCONNECT_TIMEOUT; never raises."""
        self._answers.open = False
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._client.disconnect(), DISCONNECT_TIMEOUT)

    def abort(self) -> None:
        """Drop the connection now, buffered writes and all; never raises."""
        self._answers.open = False
        if (transport := self.transport) is not None:
            transport.abort()

    def _read(self, data: bytes) -> int:
        """gmqtt's reads from the broker: the answers to our publishes settled a run at a time
        (``mqtt_answers``), every other packet to gmqtt's handler, in order."""
        connection = self._client._connection
        connection._last_data_in = time.monotonic()  # for its keepalive, as its handler does
        return self._answers.walk(
            data, lambda first, body: connection.put_package(Package(first, body)))

    def _received(self, _client: Any, topic: str, payload: bytes, _qos: int,
                  properties: dict[str, Any]) -> int:
        if self._answers.open and self._on_message is not None:
            self._on_message(incoming(topic, payload, properties))
        return 0  # PUBACK: success

    def _lost(self) -> None:
        self.gone.set()
        if self._answers.open:
            self._answers.open = False
            self._on_lost()


def _conn(client: Any, attr: str) -> Any:
    """An attribute of gmqtt's MQTTConnection, None until connected."""
    return getattr(getattr(client, "_connection", None), attr, None)


def unavailable(cfg: MqttSinkConfig, exc: BaseException, *, tls: bool = False) -> SinkUnavailable:
    """A failed connect as the sink's error: gmqtt's refusals, TLS failures (a handshake, or
    with ``tls`` a CA, certificate or key file that could not be read) and the rest."""
    refused = getattr(exc, "_code", 0) if isinstance(exc, gmqtt.MQTTConnectError) else None
    text = exc.message if isinstance(exc, gmqtt.MQTTConnectError) else exc
    tls = tls or isinstance(exc, ssl.SSLError)
    kind, why = connect_failure(f"{cfg.host}:{cfg.port}", text, refused, tls)
    return SinkUnavailable(cfg.name, why, kind)
