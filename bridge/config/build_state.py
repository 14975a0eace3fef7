"""Builds the parts of a source that carry state: ``capture``, the renewal of connections
(``reconnect_when``, ``max_connection_age``, ``rollover``), and a heartbeat interval that
is a template (``"{var.heartbeat_ms}ms"``), known only once the server has said it."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.stateful import CaptureSpec, RenewSpec
from bridge.routing.pattern import Pattern


def build_state(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields ``capture`` and ``renew``, from one source's YAML data."""
    captures = tuple(
        CaptureSpec(Pattern(spec["when"]), tuple(
            (name, c.template(value, (*path, "capture", i, "set", name)))
            for name, value in spec["set"].items()))
        for i, spec in enumerate(raw.get("capture", [])))
    age = c.seconds(raw, path, {"max_connection_age": "max_age"})
    renew = RenewSpec(tuple(Pattern(p) for p in raw.get("reconnect_when", [])),
                      rollover=raw.get("rollover", "close"), **age)
    return {"capture": captures, "renew": renew}


def beat_interval(beat: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The heartbeat's ``interval`` in seconds, or, when it holds a ``{placeholder}``, the
    template that gives it at run time (``interval_from``)."""
    interval = beat.get("interval")
    if isinstance(interval, str) and "{" in interval:
        return {"interval": 0.0, "interval_from": c.template(interval, (*path, "interval"))}
    return c.seconds(beat, path, {"interval": "interval"})
