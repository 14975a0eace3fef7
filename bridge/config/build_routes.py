"""Builds a source's typed routes: which messages go where, as what, and the processing steps
between (``each``, ``item_when``, ``on_change``, ``throttle``, ``batch``)."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.route_specs import MAX_KEYS, BatchSpec, OnChangeSpec, ThrottleSpec
from bridge.config.specs import RouteSpec
from bridge.routing.template import Template


def build_route(raw: dict[str, Any], where: KeyPath, c: Collector) -> RouteSpec:
    """One route: which messages (``when``) go to which sink, under which topic and payload."""

    def template(key: str, at: KeyPath = where, within: dict[str, Any] = raw) -> Template | None:
        return None if key not in within else c.template(within[key], (*at, key))

    return RouteSpec(
        sink=raw["sink"],
        when=c.pattern(raw, "when", where),
        topic=None if raw.get("topic") is None else template("topic"),
        payload=template("payload"),
        qos=raw.get("qos"),
        retain=raw.get("retain"),
        each=template("each"),
        item_when=c.pattern(raw, "item_when", where),
        on_change=_on_change(raw.get("on_change"), (*where, "on_change"), c),
        throttle=_throttle(raw.get("throttle"), (*where, "throttle"), c),
        batch=None if (batch := raw.get("batch")) is None else BatchSpec(
            batch["max"], **c.seconds(batch, (*where, "batch"), {"within": "within"})),
    )


def _on_change(raw: dict[str, Any] | None, at: KeyPath, c: Collector) -> OnChangeSpec | None:
    if raw is None:
        return None
    return OnChangeSpec(
        c.template(raw["key"], (*at, "key")), c.template(raw["value"], (*at, "value")),
        float(raw.get("deadband", 0.0)), raw.get("max_keys", MAX_KEYS),
    )


def _throttle(raw: dict[str, Any] | None, at: KeyPath, c: Collector) -> ThrottleSpec | None:
    if raw is None:
        return None
    return ThrottleSpec(
        c.template(raw["key"], (*at, "key")), keep=raw.get("keep", "last"),
        max_keys=raw.get("max_keys", MAX_KEYS), **c.seconds(raw, at, {"every": "every"}),
    )
