"""``ws-bridge call``: one request through a source's own session, and its first reply.

It drives the client organism the way the daemon does (auth, subscribe, rate limit, RPC
matching), but for one request, without sinks or a supervisor."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from bridge.config.model import SourceConfig
from bridge.routing.context import mqtt_value
from bridge.routing.template import Template
from bridge.upstream.client import SourceClient
from bridge.upstream.oneshot import finish
from bridge.upstream.share import share_config

CALL_TIMEOUT: Final = 10.0  # ws-bridge call without rpc.timeout or --timeout


async def call_source(src: SourceConfig, payload: object, wait: float | None
                      ) -> tuple[bool, str]:
    """Run ``src``'s session, send one request (``rpc.send`` rendered with
    ``{mqtt.payload}`` = ``payload``, or ``payload`` itself without rpc) and return (True, the
    first reply: matched by id with rpc, else the first message routed), or (False, why)."""
    done: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
    limit = wait or (src.rpc.timeout if src.rpc else CALL_TIMEOUT)

    def settle(ok: bool, data: str | bytes) -> None:
        if not done.done():
            done.set_result((ok, data if isinstance(data, str) else data.decode(errors="replace")))

    def answered(data: str | bytes) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        failed = isinstance(body, dict) and "error" in body and set(body) <= {"error", "reply"}
        settle(not failed, body["error"] if failed and "reply" not in body else data)

    if src.pool is not None:  # one connection is enough for one request: the first one's share
        src = share_config(src, src.pool.items[:src.pool.per_connection])
    client = SourceClient(src, lambda msg: None if src.rpc else settle(True, msg.data))
    mqtt = mqtt_value("", json.dumps(payload))
    if src.rpc is not None:
        client.call(mqtt, answered)
    else:
        client.publish(Template("{mqtt.payload}"), mqtt)
    task = asyncio.create_task(client.run())
    waits: list[asyncio.Future[Any]] = [done, task]
    await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    why = client.stats.last_error or f"no reply within {limit:g}s"
    settle(False, f"source {src.name}: {why}")  # unless answered: stopping answers too
    await finish(client.stop, task)
    return done.result()

