"""A source's routes made ready for the router: templates bound to the source, a static topic
rendered once, the sink and its ``block`` queue looked up, the flow of a route with steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from bridge.config.model import SourceConfig
from bridge.config.specs import RouteSpec
from bridge.routing.context import Context
from bridge.routing.flow import Flow
from bridge.routing.flows import Flows
from bridge.routing.sanitize import sanitize_topic_value
from bridge.routing.template import Template
from bridge.sinks.base import Sink, SinkQueue


@dataclass(frozen=True, slots=True)
class Route:
    index: int
    spec: RouteSpec
    sink: Sink
    templated: bool
    block: SinkQueue | None
    topic: str | None  # a static topic, rendered at start
    flow: Flow | None  # its processing steps, if it has any


def build_routes(
    source: SourceConfig, sinks: Mapping[str, Sink], hostname: str, flows: Flows
) -> list[Route]:
    """The routes of ``source``; raises ValueError for a route to a sink that does not exist."""
    routes = []
    for i, given in enumerate(source.routes):
        if given.sink not in sinks:
            raise ValueError(f"source {source.name}: route {i}: no sink named {given.sink!r}")
        sink = sinks[given.sink]
        spec = _bound(given, {"source": source.name, "hostname": hostname})
        static = spec.topic is None or spec.topic.static  # rendered once, here
        topic = spec.topic.render_str(Context()) if spec.topic and static else None
        templated = not static or spec.payload is not None
        flow = flows.add(i, given, spec, source.name, topic)
        block = sink.queue if sink.queue.overflow == "block" else None
        routes.append(Route(i, spec, sink, templated, block, topic, flow))
    return routes


def reads_message(source: SourceConfig) -> bool:
    """Whether a template of a route reads the message's JSON."""
    return any(t.uses_message for spec in source.routes for t in _templates(spec))


def reads_nonce(source: SourceConfig) -> bool:
    """Whether a template of a route reads ``{nonce}`` (one value per message)."""
    return any("nonce" in t.roots for spec in source.routes for t in _templates(spec))


def _bound(spec: RouteSpec, consts: dict[str, str]) -> RouteSpec:
    """The route with what never changes for its source filled into its templates once."""
    topic = spec.topic.bind(consts, sanitize_topic_value) if spec.topic else None
    return replace(spec, topic=topic, payload=spec.payload.bind(consts) if spec.payload else None)


def _templates(spec: RouteSpec) -> list[Template]:
    steps = (spec.on_change.key, spec.on_change.value) if spec.on_change else ()
    throttle = (spec.throttle.key,) if spec.throttle else ()
    return [t for t in (spec.topic, spec.payload, spec.each, *steps, *throttle) if t is not None]
