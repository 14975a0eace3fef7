"""Checks the references from sources to sinks: a route names a sink that exists, and the ways
back (``publish[].from`` and ``rpc``) name an mqtt sink, since only an MQTT sink receives."""

from __future__ import annotations

from typing import Any

from bridge.config.explain import suggest
from bridge.config.keypaths import KeyPath, Report, records


def check_refs(
    source: dict[str, Any], path: KeyPath, kinds: dict[str, Any], report: Report
) -> None:
    """Report every sink reference of ``source`` that names no sink, or no sink of the right type.

    ``kinds`` maps each defined sink's name to its ``type``."""
    for j, route in records(source.get("routes")):
        sink = route.get("sink")
        if isinstance(sink, str) and sink not in kinds:
            known = f"; defined: {', '.join(sorted(kinds))}" if kinds else "; no sinks are defined"
            why = f"no sink named '{sink}'" + (suggest(sink, kinds) or known)
            report((*path, "routes", j, "sink"), why)
    for j, entry in records(source.get("publish")):
        where = entry.get("from")
        if isinstance(where, dict):
            _mqtt_sink(where, (*path, "publish", j, "from"), kinds, report)
    if isinstance(rpc := source.get("rpc"), dict):
        _mqtt_sink(rpc, (*path, "rpc"), kinds, report)


def _mqtt_sink(spec: dict[str, Any], path: KeyPath, kinds: dict[str, Any], report: Report) -> None:
    if isinstance(sink := spec.get("sink"), str) and kinds.get(sink) != "mqtt":
        mqtt = sorted(n for n, k in kinds.items() if k == "mqtt")
        listed = ", ".join(mqtt) or "none is defined"
        report((*path, "sink"), f"'{sink}' is not an mqtt sink (mqtt sinks: {listed})")
