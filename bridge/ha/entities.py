"""Which Home Assistant entities the bridge and each source have, as data: the component, a
key (in its ids and topics), its name and the discovery fields that set it apart.

``value`` names the field of the health JSON (``bridge.ha.health``) a sensor reads; ``None``
marks an entity with a topic of its own (the connectivity, the seven-state ``state``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.upstream.state import ConnState

DIAGNOSTIC = {"entity_category": "diagnostic"}


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity of a device."""

    component: str  # binary_sensor, sensor, button
    key: str
    name: str
    value: str | None  # the health JSON field it reads, or None: its own topic
    fields: dict[str, Any] = field(default_factory=dict)
    rate: bool = False  # a rate: expires when the values stop coming (expire_after)


SECONDS: dict[str, Any] = {"device_class": "duration", "unit_of_measurement": "s"}


def sensor(key: str, name: str, state_class: str, *, rate: bool = False,
           diagnostic: bool = True, **more: Any) -> Entity:
    """A sensor reading the health JSON field ``key``."""
    extra = DIAGNOSTIC if diagnostic else {}
    return Entity("sensor", key, name, key, {"state_class": state_class, **more, **extra}, rate)


CONNECTIVITY = Entity("binary_sensor", "connectivity", "Connectivity", None,
                      {"device_class": "connectivity", **DIAGNOSTIC})
RATE = sensor("messages_per_second", "Messages per second", "measurement", rate=True,
              diagnostic=False, unit_of_measurement="msg/s")

BRIDGE = (
    CONNECTIVITY,
    sensor("uptime", "Uptime", "total_increasing", rate=True, **SECONDS),
    sensor("sources_connected", "Sources connected", "measurement"),
    RATE,
)

SOURCE = (
    CONNECTIVITY,
    Entity("sensor", "state", "State", None,
           {"device_class": "enum", "options": [state.value for state in ConnState], **DIAGNOSTIC}),
    RATE,
    sensor("last_message_age", "Seconds since the last message", "measurement", rate=True,
           **SECONDS),
    sensor("reconnects", "Reconnects", "total_increasing"),
    sensor("dropped", "Dropped", "total_increasing"),
    sensor("queue_depth", "Queue depth", "measurement"),
)

BUTTONS = (  # with controls: true
    Entity("button", "reconnect", "Reconnect", None,
           {"entity_category": "config", "device_class": "restart"}),
    Entity("button", "resubscribe", "Resubscribe", None, {"entity_category": "config"}),
)
