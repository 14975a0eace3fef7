"""Home Assistant discovery configs of the bridge's device and of each source's device, as
retained (topic, payload) pairs; a removed source's configs emptied (HA deletes its entities).

Every entity has ``unique_id``, ``object_id`` and ``default_entity_id`` (Home Assistant 2025.10
deprecates ``object_id``; older ones drop the key they do not know), a ``device`` and an
``origin`` block. Pure: the sink publishes."""

from __future__ import annotations

import math
from typing import Any

from bridge.encoding import dumps
from bridge.ha.entities import BRIDGE, BUTTONS, SOURCE, Entity
from bridge.ha.ids import PRODUCT, Bridge, entity_id
from bridge.ha.requests import request_topic
from bridge.sinks import mqtt_topics as mt

Retained = tuple[str, str]  # (topic, payload), published retained


def bridge_configs(b: Bridge) -> list[Retained]:
    """The bridge's device: connectivity from its availability, then its health sensors."""
    av = b.availability
    own = {"state_topic": av.topic, "payload_on": av.online, "payload_off": av.offline,
           "json_attributes_topic": b.metrics_topic()}
    device = {"identifiers": [b.node], "name": b.name, "manufacturer": PRODUCT,
              "model": "WebSocket to MQTT bridge", "sw_version": b.version,
              "hw_version": b.config_path}
    if b.configuration_url:
        device["configuration_url"] = b.configuration_url
    return [_config(b, e, None, device, own if e.value is None else {}) for e in BRIDGE]


def source_configs(b: Bridge, source: str) -> list[Retained]:
    """A source's device: connectivity from its plain availability topic, its state, health."""
    own = {"connectivity": {"state_topic": mt.source_topic(b.prefix, source, "availability"),
                            "payload_on": "online", "payload_off": "offline"},
           "state": {"state_topic": mt.source_topic(b.prefix, source, "state")}}
    for e in BUTTONS:
        own[e.key] = {"command_topic": request_topic(b.prefix, e.key),
                      "payload_press": dumps({"source": source})}
    device = {"identifiers": [f"{b.node}_{source}"], "name": b.source_name(source),
              "manufacturer": PRODUCT, "model": "WebSocket source",
              "sw_version": b.version, "via_device": b.node}
    entities = SOURCE + (BUTTONS if b.controls else ())
    return [_config(b, e, source, device, own.get(e.key, {})) for e in entities]


def removal(b: Bridge, source: str) -> list[Retained]:
    """Empty retained configs: Home Assistant removes the source's entities."""
    return [(topic, "") for topic, _ in source_configs(b, source)]


def _config(b: Bridge, e: Entity, source: str | None, device: dict[str, Any],
            own: dict[str, Any]) -> Retained:
    """One entity's config topic and payload."""
    uid = f"{b.node}_{source or 'bridge'}_{e.key}"
    av, default = b.availability, entity_id(e.component, uid)
    config: dict[str, Any] = {
        "name": e.name, "unique_id": uid, "object_id": default.split(".", 1)[1],
        "default_entity_id": default, "device": device,
        "origin": {"name": PRODUCT, "sw_version": b.version},
        **e.fields, **own,
    }
    if source is not None or e.value is not None:  # the bridge's connectivity is its own
        config["availability"] = [{"topic": av.topic, "payload_available": av.online,
                                   "payload_not_available": av.offline}]
    if e.value is not None:
        config["state_topic"] = b.metrics_topic(source)
        # '' (ignored) when the payload is no JSON: the empty one a removal clears it with
        # reaches the sensors before Home Assistant removes them, and would log an error
        config["value_template"] = (
            f"{{{{ value_json.{e.value} if value_json is defined else '' }}}}")
    if e.rate:
        config["expire_after"] = math.ceil(3 * b.interval)  # three missed publishes
    return f"{b.discovery_prefix}/{e.component}/{b.node}/{uid}/config", dumps(config)
