"""What the broker answers that gmqtt reads but drops: its Receive Maximum and refusals.

gmqtt handles CONNACK, PUBACK and PUBREC itself, but it ignores the reason code of a PUBACK or
PUBREC, so an MQTT 5 broker refusing a publish (an ACL, a quota: a code of 0x80 or above) would
look like success. The adapter (``mqtt_client``) passes each answer through ``read`` on its way
to gmqtt and pops the id from ``refusals`` once gmqtt settles it. Pure: bytes and numbers in."""

from __future__ import annotations

from typing import Any, Final

UNLIMITED: Final = 65535  # Receive Maximum when the CONNACK does not say


class Answers:
    """The broker's Receive Maximum (from its CONNACK) and each refused publish's reason code,
    by packet id, until that id is settled."""

    def __init__(self) -> None:
        self.broker_max = UNLIMITED
        # packet id -> reason code of a refusal. Whoever settles an id pops it (0: success);
        # a plain dict, since that runs once per QoS 1/2 publish.
        self.refusals: dict[int, int] = {}

    def connack(self, props: dict[str, list[Any]]) -> None:
        """Read the CONNACK's properties, as gmqtt hands them (each a list of values)."""
        self.broker_max = props.get("receive_maximum", [UNLIMITED])[0]

    @property
    def receive_maximum(self) -> int:
        """QoS 1/2 publishes that may await an answer at once (gmqtt hands out max - 1 ids)."""
        return max(1, self.broker_max - 1)

    def read(self, pkt: bytes) -> bytes:
        """Read a PUBACK's or PUBREC's variable header on its way to gmqtt; keep a refusal."""
        if len(pkt) > 2 and pkt[2] >= 0x80:
            self.refusals[int.from_bytes(pkt[:2], "big")] = pkt[2]
        return pkt
