"""Checks the MQTT topics a config writes for what they can never become: a publish topic's
static text (its placeholders are filled at run time) and a subscription's topic filter."""

from __future__ import annotations

from typing import Any

from bridge.config.keypaths import KeyPath, Report, records
from bridge.routing.context import Context, TemplateError
from bridge.routing.template import Template
from bridge.routing.topics import filter_problem
from bridge.sinks import mqtt_topics


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


def check_sink_topics(sink: dict[str, Any], path: KeyPath, report: Report) -> None:
    """An mqtt sink's ``topic_prefix``, availability topic and Home Assistant topics."""
    prefix, availability = sink.get("topic_prefix"), sink.get("availability")
    ha = sink.get("homeassistant")
    for key in ("discovery_prefix", "status_topic"):
        value = ha.get(key) if isinstance(ha, dict) else None
        if isinstance(value, str) and (why := topic_problem(value)):
            report((*path, "homeassistant", key), why)
    if isinstance(prefix, str) and prefix and (why := topic_problem(prefix)):
        report((*path, "topic_prefix"), why)
    topic = availability.get("topic") if isinstance(availability, dict) else None
    if isinstance(topic, str) and (why := topic_problem(topic)):
        report((*path, "availability", "topic"), why)


def check_source_topics(
    source: dict[str, Any], path: KeyPath, kinds: dict[str, Any], report: Report
) -> None:
    """The topics of ``source``'s routes to mqtt sinks, and the filters its ``publish`` entries
    subscribe to. ``kinds`` maps each defined sink's name to its ``type``."""
    for j, route in records(source.get("routes")):
        topic, to_mqtt = route.get("topic"), kinds.get(str(route.get("sink"))) == "mqtt"
        if to_mqtt and isinstance(topic, str) and (why := topic_problem(topic)):
            report((*path, "routes", j, "topic"), why)
    for j, entry in records(source.get("publish")):
        where = entry.get("from")
        topic = where.get("topic") if isinstance(where, dict) else None
        if isinstance(topic, str) and (why := filter_problem(topic)):
            report((*path, "publish", j, "from", "topic"), why)
