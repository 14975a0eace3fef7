"""Checks JSON Schema cannot express: names, templates, non-JSON values, plain ws://; and, through
check_refs and check_topics, the sink references and the MQTT topics."""

from __future__ import annotations

from typing import Any

from bridge.config.check_http import check_http
from bridge.config.check_refs import check_refs
from bridge.config.check_routes import check_routes
from bridge.config.check_topics import check_sink_topics, check_source_topics
from bridge.config.check_vars import check_vars
from bridge.config.explain import json_type
from bridge.config.exposure import insecure_problem
from bridge.config.keypaths import Report, entries, leaves, records
from bridge.config.pooling import EACH_PLACEHOLDERS
from bridge.config.template_paths import is_template_path
from bridge.routing.context import TemplateError
from bridge.routing.template import Template


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
        check_routes(source, path, dict(sinks), is_template_path, report)
        check_source_topics(source, path, kinds, report)
        check_http(source, path, report)
        check_vars(source, path, report)


def reject_warnings(doc: Any) -> tuple[str, ...]:
    """A ``reject`` without an ``expect``: the session waits for no reply there, so such a
    refusal is never seen (a warning, not an error: the config still runs)."""
    out = []
    for i, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        steps = [("auth", source.get("auth")), *(
            (f"subscribe[{k}]", step) for k, step in records(source.get("subscribe")))]
        for where, step in steps:
            if isinstance(step, dict) and step.get("reject") is not None and \
                    step.get("expect") is None:
                out.append(f"sources[{i}].{where}.reject: without expect it is never seen (the "
                           "session waits for a reply only when expect is set); add expect")
    return tuple(out)


def _check_values(doc: Any, report: Report) -> None:
    """Every value is JSON, and every run-time template compiles."""
    for path, leaf in leaves(doc, ()):
        if not isinstance(leaf, str | int | float | bool | None):  # YAML's !!binary and !!set
            report(path, f"a {json_type(leaf)} value is not JSON; use a string or a list")
        elif isinstance(leaf, str) and is_template_path(path):
            each = path[:1] == ("sources",) and path[2:3] in (("subscribe",), ("unsubscribe",),
                                                               ("url",))  # a pool's {items}
            try:
                Template(leaf, EACH_PLACEHOLDERS if each else None)
            except TemplateError as exc:
                report(path, str(exc))
