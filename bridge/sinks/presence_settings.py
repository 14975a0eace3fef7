"""The typed settings of what an MQTT sink publishes about itself: its availability (and Last
Will) and Home Assistant discovery of the bridge and its sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Availability:
    topic: str
    online: str = "online"
    offline: str = "offline"


@dataclass(frozen=True, slots=True)
class HomeAssistant:
    """Home Assistant MQTT discovery of the bridge and its sources (``homeassistant:``)."""

    discovery_prefix: str = "homeassistant"
    status_topic: str = "homeassistant/status"
    interval: float = 30.0  # seconds between health publishes
    controls: bool = False
