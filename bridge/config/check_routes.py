"""Checks a route's processing steps: ``{item}`` and ``{index}`` only in a route with ``each``,
and a ``batch`` only where one message can carry it (a static topic, a sink that does not read
each message for its file path or MQTT user properties)."""

from __future__ import annotations

from typing import Any

from bridge.config.keypaths import KeyPath, Report, leaves, records
from bridge.routing.context import TemplateError
from bridge.routing.lookup import ITEM_ROOTS
from bridge.routing.template import Template

_MESSAGE = {"msg", "item", "index"}  # what a batch, many messages, has no one value of
_PER_SOURCE = {"source", "hostname"}  # what a batch's topic, rendered once, may read


def roots(text: Any) -> set[str]:
    """The placeholder roots a template string reads (none when it is not a valid one)."""
    try:
        return Template(text).roots if isinstance(text, str) else set()
    except TemplateError:
        return set()  # reported as an unknown placeholder


def check_routes(
    source: dict[str, Any], path: KeyPath, sinks: dict[str, Any], template: Any, report: Report
) -> None:
    """Report ``{item}`` outside ``each`` (a route's, or a subscribe step's: a pool's items) and a
    batch that cannot be one message.

    ``sinks`` maps each defined sink's name to its settings; ``template(path)`` says whether
    the string at ``path`` is a run-time template."""
    eaches = {("routes", j) for j, route in records(source.get("routes")) if "each" in route}
    eaches |= {(key, j) for key in ("subscribe", "unsubscribe")  # a pool's steps (build_pool)
               for j, step in records(source.get(key)) if "each" in step or "each_file" in step}
    for where, leaf in leaves(source, path):
        item = roots(leaf) & ITEM_ROOTS if template(where) else set()
        in_each = where[2:4] in eaches
        if item and not in_each and where[4:] != ("each",):
            report(where, f"{{{min(item)}}} is only known in a route with each")
    for j, route in records(source.get("routes")):
        where = (*path, "routes", j)
        if "item_when" in route and "each" not in route:
            report((*where, "item_when"), "item_when filters the elements of each; add each")
        if isinstance(route.get("each"), str) and roots(route["each"]) & ITEM_ROOTS:
            report((*where, "each"), "each reads the message, not {item} or {index}")
        if "batch" in route:
            _batch(route, where, sinks.get(str(route.get("sink"))), report)


def _batch(route: dict[str, Any], where: KeyPath, sink: Any, report: Report) -> None:
    if reads := roots(route.get("topic")) - _PER_SOURCE:
        report((*where, "topic"), f"a batch goes to one topic, rendered once, but this one reads"
               f" {{{min(reads)}}}")
    if not isinstance(sink, dict):
        return
    if sink.get("type") == "file" and (reads := roots(sink.get("path")) & _MESSAGE):
        why = f"its path reads {{{min(reads)}}} of each message"
    else:
        user = sink.get("properties", {}).get("user") if sink.get("type") == "mqtt" else None
        found = [r for _, text in leaves(user, ()) for r in roots(text) & _MESSAGE]
        why = f"its user properties read {{{found[0]}}} of each message" if found else ""
    if why:
        report((*where, "batch"), f"sink '{route.get('sink')}' cannot take a batch: {why}")
