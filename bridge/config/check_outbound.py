"""Checks of a source's upstream-bound settings: MQTT messages come in only through an mqtt sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.config.explain import KeyPath, records
from bridge.routing.topics import filter_problem

Report = Callable[[KeyPath, str], None]


def check_outbound(source: dict[str, Any], path: KeyPath, kinds: dict[str, Any],
                   report: Report) -> None:
    """``publish[].from`` and ``rpc`` must name an mqtt sink; ``from.topic`` must be a filter."""
    for j, entry in records(source.get("publish")):
        where: dict[str, Any] = entry["from"] if isinstance(entry.get("from"), dict) else {}
        _mqtt_sink(where, (*path, "publish", j, "from"), kinds, report)
        topic = where.get("topic")
        if isinstance(topic, str) and (why := filter_problem(topic)):
            report((*path, "publish", j, "from", "topic"), why)
    if isinstance(rpc := source.get("rpc"), dict):
        _mqtt_sink(rpc, (*path, "rpc"), kinds, report)


def _mqtt_sink(spec: dict[str, Any], path: KeyPath, kinds: dict[str, Any], report: Report) -> None:
    if isinstance(sink := spec.get("sink"), str) and kinds.get(sink) != "mqtt":
        mqtt = sorted(n for n, k in kinds.items() if k == "mqtt")
        listed = ", ".join(mqtt) or "none is defined"
        report((*path, "sink"), f"'{sink}' is not an mqtt sink (mqtt sinks: {listed})")
