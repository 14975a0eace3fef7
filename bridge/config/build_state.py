"""Builds the parts of a source that carry state: ``capture`` and the renewal of connections
(``reconnect_when``, ``max_connection_age``, ``rollover``)."""

from __future__ import annotations

from typing import Any

from bridge.config.collect import Collector
from bridge.config.keypaths import KeyPath
from bridge.config.stateful import CaptureSpec, RenewSpec


def build_state(raw: dict[str, Any], path: KeyPath, c: Collector) -> dict[str, Any]:
    """The ``SourceConfig`` fields ``capture`` and ``renew``, from one source's YAML data."""
    captures = tuple(
        CaptureSpec(c.match(spec["when"], (*path, "capture", i, "when")), tuple(
            (name, c.template(value, (*path, "capture", i, "set", name)))
            for name, value in spec["set"].items()))
        for i, spec in enumerate(raw.get("capture", [])))
    age = c.seconds(raw, path, {"max_connection_age": "max_age"})
    renew = RenewSpec(tuple(c.match(p, (*path, "reconnect_when", i))
                            for i, p in enumerate(raw.get("reconnect_when", []))),
                      rollover=raw.get("rollover", "close"), **age)
    return {"capture": captures, "renew": renew}

