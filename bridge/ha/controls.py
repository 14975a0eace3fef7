"""The bridge's control topics (``homeassistant.controls: true``): a request read, done through
the supervisor's ``act`` (reconnect, resubscribe) or answered with the ``/status`` JSON
(health), and answered on the response topic with its ``transaction``. Off by default: the
broker's ACL is what protects these topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bridge.ha.requests import Request, read, request_topic, response
from bridge.sinks.mqtt_incoming import Incoming
from bridge.stats.snapshot import Snapshot

log = logging.getLogger("bridge.ha")
Act = Callable[[str, str], str | None]  # (action, source) -> why it failed, or None


class Controls:
    """One bridge's control topics, under its ``topic_prefix``."""

    def __init__(self, prefix: str, act: Act, respond: Callable[[str, str], None],
                 snapshot: Callable[[], Awaitable[Snapshot]]) -> None:
        self.topic = request_topic(prefix)
        self._prefix, self._act, self._respond, self._snapshot = prefix, act, respond, snapshot
        self._tasks: set[asyncio.Task[None]] = set()

    def heard(self, msg: Incoming) -> None:
        """A request: done now (health once the snapshot is read), then answered."""
        req = read(msg.topic, msg.payload)
        if req.problem is not None:
            self._answer(req, error=req.problem)
        elif req.action == "health":
            task = asyncio.get_running_loop().create_task(self._health(req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            assert req.source is not None
            log.info("control: %s of source %s requested", req.action, req.source)
            error = self._act(req.action, req.source)
            self._answer(req, data={"source": req.source}, error=error)

    async def _health(self, req: Request) -> None:
        self._answer(req, data=(await self._snapshot()).to_json())

    def _answer(self, req: Request, data: object = None, error: str | None = None) -> None:
        self._respond(*response(self._prefix, req.action, req.transaction, data, error))
