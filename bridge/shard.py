"""Which shard owns a source: rendezvous hashing by source name, stable across processes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from bridge.config.model import Config, SourceConfig
from bridge.sinks.settings import MqttSinkConfig, SinkConfig

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N) with 0 <= K < N."""
    match = _SHARD.match(text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"not a shard: {text!r} (write K/N with 0 <= K < N, e.g. 0/4)")
    return int(match.group(1)), int(match.group(2))


def owner(source: str, shards: int) -> int:
    """The shard that owns ``source``; adding a shard moves only about 1/N of the sources."""

    def weight(shard: int) -> bytes:
        return hashlib.blake2b(f"{shard}:{source}".encode(), digest_size=8).digest()

    return max(range(shards), key=weight)


def shard_config(config: Config, index: int, count: int) -> Config:
    """What shard ``index`` of ``count`` runs: the sources it owns, and MQTT sinks with a client
    id, an availability topic and an outbox of its own (shards share a broker, nothing else).
    A pooled source is split by item instead: every shard runs it with the items it owns,
    so each item is carried exactly once, whatever each process's history of reloads."""
    sources = tuple(s for s in (_part(s, index, count) for s in config.sources) if s)
    sinks = {name: _own(sink, index) for name, sink in config.sinks.items()}
    listen = config.metrics_listen
    if listen:  # each shard serves its own metrics, on the next ports up
        host, _, port = listen.rpartition(":")
        listen = f"{host}:{int(port) + index}"
    return replace(config, sources=sources, sinks=sinks, metrics_listen=listen)


def _part(src: SourceConfig, index: int, count: int) -> SourceConfig | None:
    if src.pool is None:
        return src if owner(src.name, count) == index else None
    mine = tuple(i for i in src.pool.items if owner(f"{src.name}\0{i}", count) == index)
    return replace(src, pool=replace(src.pool, items=mine)) if mine else None


def _own(sink: SinkConfig, index: int) -> SinkConfig:
    if not isinstance(sink, MqttSinkConfig):
        return sink
    av, queue = sink.availability, sink.queue
    mine = replace(av, topic=f"{av.topic}/shard-{index}") if av else None
    if queue.path:  # an outbox is one process's: two would both publish every row
        queue = replace(queue, path=f"{queue.path.rstrip('/')}/shard-{index}")
    return replace(sink, client_id=f"{sink.client_id}-shard-{index}", availability=mine,
                   queue=queue)
