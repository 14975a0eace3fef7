"""Who the bridge is to Home Assistant: what every discovery config of one bridge shares
(``Bridge``), and Home Assistant's rules for what discovery names: a node id or object id in a
config topic (letters, digits, ``_`` and ``-``), an entity id for ``default_entity_id``
(``domain.object`` in lowercase letters, digits and single underscores, none at either end:
what Home Assistant's ``valid_entity_id`` accepts), and the device page's
``configuration_url`` (an http URL another machine's browser can open). Pure."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bridge.sinks import mqtt_topics as mt
from bridge.sinks.presence_settings import Availability

WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - read from metrics.listen, never bound here
PRODUCT = "ws-bridge"  # the manufacturer and origin, and the default topic_prefix



@dataclass(frozen=True, slots=True)
class Bridge:
    """What every config of one bridge (one mqtt sink's ``homeassistant``) shares."""

    prefix: str  # topic_prefix
    discovery_prefix: str
    availability: Availability
    interval: float  # seconds between health publishes
    version: str
    config_path: str
    controls: bool = False  # buttons to reconnect and resubscribe each source
    configuration_url: str | None = None  # the bridge's /status, when others can reach it

    @property
    def name(self) -> str:
        """The bridge's device name: ``ws-bridge``, and its ``topic_prefix`` when that is not
        ``ws-bridge`` too (two bridges on one broker have different prefixes)."""
        return PRODUCT if self.prefix == PRODUCT else f"{PRODUCT} {self.prefix}"

    def source_name(self, source: str) -> str:
        """A source's device name: the source's, after the ``topic_prefix`` unless that is
        ``ws-bridge`` (so the same source name under two bridges gives two device names)."""
        return source if self.prefix == PRODUCT else f"{self.prefix} {source}"

    @property
    def node(self) -> str:
        """The node id: the topic prefix as Home Assistant's ids allow it."""
        return node_id(self.prefix)

    def metrics_topic(self, source: str | None = None) -> str:
        """Where the health JSON of ``source`` (of the bridge when None) is published."""
        return mt.source_topic(self.prefix, source or "bridge", "metrics")


def node_id(text: str) -> str:
    """``text`` as a node id or object id of a discovery topic."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "ws_bridge"


def entity_id(domain: str, text: str) -> str:
    """``domain.object``, the object being ``text`` as an entity id allows it."""
    return f"{domain}.{re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_') or 'ws_bridge'}"


def configuration_url(listen: str | None, hostname: str) -> str | None:
    """The bridge's ``/status`` on its metrics endpoint (``metrics.listen``, ``host:port``),
    named by ``hostname`` when it listens on every address; None without an endpoint or when
    it listens on loopback only (a link to another machine's loopback would mislead)."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in WILDCARDS:
        host = hostname
    if host == "localhost" or _loopback(host):
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/status"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name
