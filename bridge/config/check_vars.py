"""Captured variables in the config: a ``{var.NAME}`` that no ``capture`` sets is reported,
since the send that reads it would wait forever (until its timeout, on every connection), and
so is one in a route, which renders messages, not what the source sends."""

from __future__ import annotations

from typing import Any

from bridge.config.keypaths import KeyPath, Report, entries, leaves, records
from bridge.routing.text import PLACEHOLDER


def check_vars(source: dict[str, Any], path: KeyPath, report: Report) -> None:
    """Report each ``{var.NAME}`` in ``source`` whose NAME no ``capture[].set`` holds."""
    known = {name for _, rule in records(source.get("capture"))
             for name, _ in entries(rule.get("set"))}
    for where, leaf in leaves(source, path):
        if not isinstance(leaf, str) or "var." not in leaf:
            continue
        for m in PLACEHOLDER.finditer(leaf):
            name = (m.group(2) or "")[1:].split(".")[0].split("[")[0]
            if m.group(1) == "var" and "routes" in where[2:3]:
                report(where, f"{{var.{name}}}: routes cannot read captured values; they "
                              "are for what the source sends")
            elif m.group(1) == "var" and name and name not in known:
                sets = ", ".join(sorted(known)) or "none"
                report(where, f"{{var.{name}}} is never set: no capture sets it "
                              f"(capture sets: {sets})")
