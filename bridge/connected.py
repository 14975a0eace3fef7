"""``ws-bridge check --connect``: every sink and source of a config tried for real, one line each.

A sink: an MQTT broker connected with its credentials and TLS through the sink's own adapter
(under its client id with ``-check`` appended, so a running daemon keeps its session), a file
sink's path proved writable by creating a temporary file where it would write. A source: its
HTTP steps, handshake and auth by the daemon's own client, without its subscribe steps."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from bridge.config.model import Config, SourceConfig
from bridge.errors import BridgeError
from bridge.sinks.mqtt_client import MqttClient
from bridge.sinks.settings import FileSinkConfig, MqttSinkConfig
from bridge.tls import client_context
from bridge.upstream.client import SourceClient
from bridge.upstream.oneshot import finish
from bridge.upstream.share import share_config
from bridge.upstream.state import ConnState

SOURCE_TIMEOUT: Final = 15.0  # seconds for a source's HTTP steps, handshake and auth


async def check_connect(config: Config, show: Callable[[str], None]) -> bool:
    """Try every sink, then every source (concurrently); ``show`` one line per item: ok, or
    the reason. True when all of them are ok."""
    results = [await _sink(name, sink) for name, sink in config.sinks.items()]
    results += await asyncio.gather(*(_source(src) for src in config.sources))
    for line, _ in results:
        show(line)
    return all(ok for _, ok in results)


async def _sink(name: str, sink: Any) -> tuple[str, bool]:
    head = f"  sink {name}:"
    if isinstance(sink, MqttSinkConfig):
        why = await _broker(sink)
        at = f"mqtt {sink.host}:{sink.port}"
    elif isinstance(sink, FileSinkConfig):
        why = _writable(sink.path.spec)
        at = f"file {sink.path.spec}"
    else:
        return f"{head} ok (nothing to connect)", True
    return (f"{head} {at}: ok", True) if why is None else (f"{head} {at}: {why}", False)


async def _broker(cfg: MqttSinkConfig) -> str | None:
    """None once the broker took the connection, else why not (the adapter's own words)."""
    try:
        tls = client_context(cfg.tls) if cfg.tls is not None else None
    except OSError as exc:  # ssl.SSLError included
        return f"TLS settings: {exc}"
    client_id = cfg.client_id.replace("{hostname}", socket.gethostname()) + "-check"
    client = MqttClient(cfg, client_id, on_ack=lambda acks: None, on_lost=lambda: None,
                        tls=tls)
    try:
        await client.connect()
    except BridgeError as exc:
        return str(exc)
    await client.disconnect()
    return None


def _writable(spec: str) -> str | None:
    """None when a file can be created where the path (up to its first placeholder) points."""
    static = spec.split("{", 1)[0]
    target = Path(static)
    where = target if static.endswith("/") else target.parent
    while not where.exists():  # the sink creates missing directories: their nearest ancestor
        where = where.parent
    try:
        if not where.is_dir():
            return f"{where} is not a directory"
        if "{" not in spec and target.is_dir():
            return f"{target} is a directory"
        with tempfile.TemporaryFile(dir=where):
            pass
        if "{" not in spec and target.exists() and not os.access(target, os.W_OK):
            return f"{target} is not writable"
    except OSError as exc:
        return f"not writable: {exc}"
    return None


async def _source(src: SourceConfig) -> tuple[str, bool]:
    """Connect ``src`` without subscribing: ok once its session says CONNECTED."""
    if src.pool is not None:  # one connection says whether the upstream lets us in
        src = share_config(src, src.pool.items[:src.pool.per_connection])
    done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def state(_: str, now: ConnState) -> None:
        if done.done():
            return
        if now is ConnState.CONNECTED:
            done.set_result(None)
        elif now in (ConnState.RECONNECTING, ConnState.FAILED):
            done.set_result(client.stats.last_error or str(now))

    client = SourceClient(replace(src, subscribe=(), unsubscribe=()), lambda msg: None,
                          on_state=state)
    task = asyncio.create_task(client.run())
    try:
        why = await asyncio.wait_for(asyncio.shield(done), SOURCE_TIMEOUT)
    except TimeoutError:
        why = f"still {client.state} after {SOURCE_TIMEOUT:g}s"
    await finish(client.stop, task)
    head = f"  source {src.name}:"
    return (f"{head} ok", True) if why is None else (f"{head} {why}", False)
