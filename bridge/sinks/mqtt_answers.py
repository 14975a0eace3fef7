"""What the broker answers to one connection: its Receive Maximum and our publishes' outcomes.

gmqtt handles CONNACK, PUBACK and PUBREC itself, but it ignores the reason code of a PUBACK or
PUBREC, so an MQTT 5 broker refusing a publish (an ACL, a quota: a code of 0x80 or above) would
look like success; and it settles each answer alone. The adapter (``mqtt_client``) passes every
read from the broker through ``walk``: each run of PUBACKs (``mqtt_reading``) is settled here at
once, its packet ids freed and gmqtt's stored copies dropped, then handed on as one list. QoS 2
answers stay gmqtt's: each PUBREC passes through ``read`` on its way, and ``settled`` hears when
gmqtt is done with one. Pure: bytes, numbers and the adapter's callables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bridge.sinks import mqtt_reading as reading

UNLIMITED: Final = 65535  # Receive Maximum when the CONNACK does not say
AckFn = Callable[[list[reading.Answer]], None]  # (packet id, reason code) pairs, in order


class Answers:
    """The broker's Receive Maximum (from its CONNACK) and the answers to our QoS 1/2 publishes,
    told to ``on_ack`` while ``open``; ``free`` and ``remove`` release a packet id and gmqtt's
    stored copy of its publish."""

    def __init__(self, on_ack: AckFn, free: Callable[[int], None],
                 remove: Callable[[int], None]) -> None:
        self.broker_max = UNLIMITED
        self.open = False  # between the connect and the disconnect or the loss
        # packet id -> reason code of a refused PUBREC, until gmqtt settles it (0: success)
        self.refusals: dict[int, int] = {}
        self._on_ack, self._free, self._remove = on_ack, free, remove

    def connack(self, props: dict[str, list[Any]]) -> None:
        """Read the CONNACK's properties, as gmqtt hands them (each a list of values)."""
        self.broker_max = props.get("receive_maximum", [UNLIMITED])[0]

    @property
    def receive_maximum(self) -> int:
        """QoS 1/2 publishes that may await an answer at once."""
        return max(1, self.broker_max)

    def walk(self, data: bytes, other: Callable[[int, bytes], None]) -> int:
        """One read from the broker: its PUBACKs settled, a run at a time; every other packet
        to ``other(first byte, body)``, in order. The bytes walked, -1 if malformed."""
        return reading.walk(data, self._acked, other)

    def read(self, pkt: bytes) -> bytes:
        """Read a PUBREC's variable header on its way to gmqtt; keep a refusal."""
        if len(pkt) > 2 and pkt[2] >= 0x80:
            self.refusals[int.from_bytes(pkt[:2], "big")] = pkt[2]
        return pkt

    def settled(self, mid: int) -> None:
        """gmqtt is done with a QoS 2 publish: PUBCOMP, or a refusing PUBREC."""
        self._remove(mid)
        reason = self.refusals.pop(mid, 0)
        if self.open:
            self._on_ack([(mid, reason)])

    def _acked(self, acks: list[reading.Answer]) -> None:
        free, remove = self._free, self._remove
        for mid, _ in acks:
            free(mid)
            remove(mid)
        if self.open:
            self._on_ack(acks)
