"""Checks JSON Schema cannot express: names, sink references, templates, topics, plain ws://."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.config.check_outbound import check_outbound
from bridge.config.credentials import insecure_problem
from bridge.config.explain import KeyPath, entries, json_type, leaves, records, suggest
from bridge.routing.template import Context, Template, TemplateError
from bridge.sinks import mqtt_topics

Report = Callable[[KeyPath, str], None]
_SOURCE_TEMPLATES = {"auth", "subscribe", "unsubscribe", "heartbeat", "replies", "publish", "rpc"}


def is_template_path(path: KeyPath) -> bool:
    """Whether the string at ``path`` is compiled as a run-time ``{placeholder}`` template."""
    keys = [step for step in path[2:] if isinstance(step, str)]
    if path[:1] == ("sources",):
        return keys[:2] in (["routes", "topic"], ["routes", "payload"]) or (
            keys[:1] != [] and keys[0] in _SOURCE_TEMPLATES and keys[1:2] == ["send"]
        )
    return path[:1] == ("sinks",) and (keys in (["path"], ["client_id"])
                                        or keys[:2] == ["properties", "user"])


def literal(value: str) -> str:
    """``value`` as literal template text: a secret with braces is never read as a placeholder."""
    return value.replace("{", "{{").replace("}", "}}")


class _AnyField(dict[str, Any]):
    """Stands in for every message field, so a topic's static text can be rendered alone."""

    def __getitem__(self, key: Any) -> Any:
        return self


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` can never be a valid MQTT publish topic, or None (values are checked later)."""
    try:
        template = Template(topic)
    except TemplateError:
        return None  # reported as an unknown placeholder
    # Each placeholder becomes "x": the static text is checked now, the values at run time.
    text = template.render_str(Context(msg=_AnyField(), mqtt=_AnyField()), clean=lambda _: "x")
    return mqtt_topics.topic_problem(text)


def check(doc: Any, report: Report) -> None:
    """Report every semantic problem; works on any shape of ``doc`` (schema errors may remain)."""
    for path, leaf in leaves(doc, ()):
        if not isinstance(leaf, str | int | float | bool | None):  # YAML's !!binary and !!set
            report(path, f"a {json_type(leaf)} value is not JSON; use a string or a list")
        elif isinstance(leaf, str) and is_template_path(path):
            try:
                Template(leaf)
            except TemplateError as exc:
                report(path, str(exc))
    sinks = entries(doc.get("sinks") if isinstance(doc, dict) else None)
    kinds = {name: s.get("type") if isinstance(s, dict) else None for name, s in sinks}
    for name, sink in sinks:
        if kinds[name] == "mqtt":
            _check_mqtt_sink(sink, ("sinks", name), report)
    seen: dict[str, int] = {}
    for i, source in records(doc.get("sources") if isinstance(doc, dict) else None):
        name = source.get("name")
        if isinstance(name, str) and name in seen:
            also = f"(also sources[{seen[name]}])"
            report(("sources", i, "name"), f"duplicate source name '{name}' {also}")
        elif isinstance(name, str):
            seen[name] = i
        if why := insecure_problem(source):
            report(("sources", i, "url"), why)
        for j, route in records(source.get("routes")):
            _check_route(route, ("sources", i, "routes", j), kinds, report)
        check_outbound(source, ("sources", i), kinds, report)


def _check_mqtt_sink(sink: dict[str, Any], path: KeyPath, report: Report) -> None:
    prefix, availability = sink.get("topic_prefix"), sink.get("availability")
    if isinstance(prefix, str) and prefix and (why := topic_problem(prefix)):
        report((*path, "topic_prefix"), why)
    topic = availability.get("topic") if isinstance(availability, dict) else None
    if isinstance(topic, str) and (why := topic_problem(topic)):
        report((*path, "availability", "topic"), why)


def _check_route(
    route: dict[str, Any], path: KeyPath, kinds: dict[str, Any], report: Report
) -> None:
    sink, topic = route.get("sink"), route.get("topic")
    if isinstance(sink, str) and sink not in kinds:
        known = f"; defined: {', '.join(sorted(kinds))}" if kinds else "; no sinks are defined"
        report((*path, "sink"), f"no sink named '{sink}'" + (suggest(sink, kinds) or known))
    if kinds.get(str(sink)) == "mqtt" and isinstance(topic, str) and (why := topic_problem(topic)):
        report((*path, "topic"), why)
