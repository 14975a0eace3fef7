"""Builds the whole typed Config from the document, from every part that passed the schema."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePath
from typing import Any

from bridge.config.build_sinks import build_sink
from bridge.config.build_sources import build_source
from bridge.config.collect import Collector
from bridge.config.items import Read
from bridge.config.keypaths import KeyPath
from bridge.config.model import Config
from bridge.sinks.settings import MqttSinkConfig, SinkConfig

_GRACE = {"ready_grace": "ready_grace"}
_COALESCE = {"coalesce": "coalesce"}
MAX_COALESCE = 0.1  # seconds


def build_config(
    file: str, doc: Any, c: Collector, invalid: set[KeyPath], secrets: frozenset[str], *,
    hostname: str, read: Read,
) -> Config:
    """The typed config; a part with a schema error is left out, so more is reported at once.
    ``read`` reads the files a source names (``each_file``)."""

    def valid(prefix: KeyPath) -> bool:
        return not any(p[: len(prefix)] == prefix for p in invalid)

    doc = doc if isinstance(doc, dict) else {}
    sinks, sources = doc.get("sinks"), doc.get("sources")
    defaults = doc.get("defaults", {}) if valid(("defaults",)) else None
    metrics = doc.get("metrics") if valid(("metrics",)) else None
    metrics = metrics if isinstance(metrics, dict) else {}
    built = {
        name: _outbox_beside(build_sink(name, raw, c, hostname), file)
        for name, raw in (sinks.items() if isinstance(sinks, dict) else [])
        if valid(("sinks", name))
    }
    _one_outbox_per_path(built, c)
    return Config(
        path=file,
        sources=tuple(
            build_source(raw, defaults, ("sources", i), c, read)
            for i, raw in enumerate(sources if isinstance(sources, list) else [])
            if defaults is not None and valid(("sources", i))
        ),
        sinks=built,
        secrets=secrets,
        metrics_listen=metrics.get("listen"),
        tap_token=metrics.get("tap_token") if metrics.get("tap") else None,
        tap_buffer=metrics.get("tap_buffer", 1000),
        **c.seconds(metrics, ("metrics",), _GRACE),
        **(_coalesce(doc, c) if valid(("coalesce",)) else {}),
    )


def _coalesce(doc: dict[str, Any], c: Collector) -> dict[str, Any]:
    """``coalesce``, at most ``MAX_COALESCE``: the loop does nothing while it holds a turn."""
    out = c.seconds(doc, (), _COALESCE)
    if out.get("coalesce", 0.0) > MAX_COALESCE:
        c.add(("coalesce",), f"is {doc['coalesce']}: at most {MAX_COALESCE * 1000:g}ms, as the"
              " loop does nothing else (heartbeats, timers, other sockets) while it holds a turn")
        return {}
    return out


def _outbox_beside(sink: SinkConfig, file: str) -> SinkConfig:
    """A relative ``queue.path`` is read from the config file's directory, as ``${file:}`` is."""
    if not isinstance(sink, MqttSinkConfig) or not sink.queue.path:
        return sink
    path = PurePath(file).parent / sink.queue.path
    return replace(sink, queue=replace(sink.queue, path=str(path)))


def _one_outbox_per_path(sinks: dict[str, SinkConfig], c: Collector) -> None:
    owners: dict[str, str] = {}
    for name, sink in sinks.items():
        path = sink.queue.path if isinstance(sink, MqttSinkConfig) else None
        if path and (first := owners.setdefault(path, name)) != name:
            c.add(("sinks", name, "queue", "path"), f"sink {first!r} already keeps its outbox "
                  "there; two sinks on one outbox would both publish every message")
