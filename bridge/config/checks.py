"""Checks JSON Schema cannot express: names, templates, non-JSON values, plain ws://; and, through
check_refs and check_topics, the sink references and the MQTT topics."""

from __future__ import annotations

from typing import Any

from bridge.config.check_refs import check_refs
from bridge.config.check_topics import check_sink_topics, check_source_topics
from bridge.config.check_vars import check_vars
from bridge.config.explain import json_type
from bridge.config.exposure import insecure_problem
from bridge.config.keypaths import KeyPath, Report, entries, leaves, records
from bridge.routing.context import TemplateError
from bridge.routing.template import Template

_SOURCE_TEMPLATES = {"auth", "subscribe", "unsubscribe", "heartbeat", "replies", "publish", "rpc"}


def is_template_path(path: KeyPath) -> bool:
    """Whether the string at ``path`` is compiled as a run-time ``{placeholder}`` template."""
    keys = [step for step in path[2:] if isinstance(step, str)]
    if path[:1] == ("sources",):
        return keys[:2] in (["routes", "topic"], ["routes", "payload"], ["capture", "set"],
                            ["heartbeat", "interval"]) or (
            keys[:1] != [] and keys[0] in _SOURCE_TEMPLATES and keys[1:2] == ["send"]
        )
    return path[:1] == ("sinks",) and (
        keys in (["path"], ["client_id"]) or keys[:2] == ["properties", "user"]
    )


def literal(value: str) -> str:
    """``value`` as literal template text: a secret with braces is never read as a placeholder."""
    return value.replace("{", "{{").replace("}", "}}")


def check(doc: Any, report: Report) -> None:
    """Report every semantic problem; works on any shape of ``doc`` (schema errors may remain)."""
    _check_values(doc, report)
    sinks = entries(doc.get("sinks") if isinstance(doc, dict) else None)
    kinds = {name: s.get("type") if isinstance(s, dict) else None for name, s in sinks}
    for name, sink in sinks:
        if kinds[name] == "mqtt":
            check_sink_topics(sink, ("sinks", name), report)
    seen: dict[str, int] = {}
    for i, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        path = ("sources", i)
        name = source.get("name")
        if isinstance(name, str) and name in seen:
            also = f"(also sources[{seen[name]}])"
            report((*path, "name"), f"duplicate source name '{name}' {also}")
        elif isinstance(name, str):
            seen[name] = i
        if why := insecure_problem(source):
            report((*path, "url"), why)
        check_refs(source, path, kinds, report)
        check_source_topics(source, path, kinds, report)
        check_vars(source, path, report)


def _check_values(doc: Any, report: Report) -> None:
    """Every value is JSON, and every run-time template compiles."""
    for path, leaf in leaves(doc, ()):
        if not isinstance(leaf, str | int | float | bool | None):  # YAML's !!binary and !!set
            report(path, f"a {json_type(leaf)} value is not JSON; use a string or a list")
        elif isinstance(leaf, str) and is_template_path(path):
            try:
                Template(leaf)
            except TemplateError as exc:
                report(path, str(exc))
