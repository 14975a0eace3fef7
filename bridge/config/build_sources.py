"""Builds each typed source config from schema-valid YAML data, with the defaults beneath it."""

from __future__ import annotations

from typing import Any

from bridge.config.build_frames import build_frames
from bridge.config.build_http import build_http
from bridge.config.build_outbound import build_outbound
from bridge.config.build_pool import build_pool
from bridge.config.build_routes import build_route
from bridge.config.build_session import build_session
from bridge.config.collect import Collector, tls
from bridge.config.items import Read
from bridge.config.keypaths import KeyPath
from bridge.config.model import SourceConfig
from bridge.config.presets import expand_preset
from bridge.config.sizes import parse_size

_TIMING = {"connect_timeout": "connect_timeout", "idle_timeout": "idle_timeout"}
_PING = {"interval": "ping_interval", "timeout": "ping_timeout"}
_OPTIONS = ("compression", "proxy", "on_invalid", "allow_insecure")


def build_source(
    raw: dict[str, Any], defaults: dict[str, Any], path: KeyPath, c: Collector, read: Read
) -> SourceConfig:
    """One source, with ``defaults`` beneath it (``reconnect`` and ``ping`` merged key by key),
    its ``protocol:`` preset (if any) expanded into the plain YAML it stands for; ``read`` reads
    an ``each_file``."""
    raw, protocol = expand_preset(raw, path, c)
    merged = {**defaults, **raw}
    for key in ("reconnect", "ping"):
        merged[key] = {**defaults.get(key, {}), **raw.get(key, {})}
    if raw.get("tls") and raw["url"].startswith("ws://") and not raw.get("http"):
        c.add((*path, "tls"), "tls is set but the url is ws://; use wss:// for TLS")
    options: dict[str, Any] = {k: raw[k] for k in _OPTIONS if k in raw}
    if "max_message_size" in raw:
        options["max_message_size"] = parse_size(raw["max_message_size"])
    options |= c.seconds(merged, path, _TIMING)
    options |= c.seconds(merged["ping"], (*path, "ping"), _PING)
    routes = raw.get("routes", [])
    return SourceConfig(
        name=raw["name"],
        url=raw["url"],
        headers=dict(raw.get("headers", {})),
        subprotocols=tuple(raw.get("subprotocols", ())),
        tls=tls(raw.get("tls")),
        reconnect=c.backoff(merged["reconnect"], (*path, "reconnect")),
        routes=tuple(build_route(r, (*path, "routes", i), c) for i, r in enumerate(routes)),
        frames=build_frames(raw.get("frames"), (*path, "frames"), c),
        pool=build_pool(raw, path, c, read),
        **options,
        **build_session(raw, path, c),
        **build_outbound(raw, path, c),
        protocol=protocol,
        **build_http(raw, path, c),
    )

