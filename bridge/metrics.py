"""Serve /metrics, /healthz, /readyz and /status over HTTP from snapshots taken at scrape time
(and ``bridge.tap``'s /tap, given its app).

Why a stdlib WSGI server in a thread, not an asyncio server: /healthz must answer 503 when the
event loop is stuck, which only a server off that loop can do. Requests hand work to the loop with
``run_coroutine_threadsafe`` and wait a bounded time, so HTTP never blocks the loop, and the hot
path pays nothing: counters stay plain ints, read here. prometheus_client renders the format."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bridge.metric_table import SINK_FAMILIES, SOURCE_FAMILIES
from bridge.stats.snapshot import Snapshot
from bridge.upstream.state import ConnState

logger = logging.getLogger("bridge.metrics")

T = TypeVar("T")
StartResponse = Callable[[str, list[tuple[str, str]]], object]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
STATES = tuple(state.value for state in ConnState)
_UNANSWERED = (TimeoutError, RuntimeError, concurrent.futures.CancelledError)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # server_close() still joins them (Python >= 3.7 tracks them)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        """With the connection, which ``/tap`` shuts down to cut off a slow reader."""
        return {**super().get_environ(), "bridge.socket": self.connection}

    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds would flood the journal; lifecycle logs are enough."""


def _on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on ``loop`` from another thread; TimeoutError if the loop does not finish it."""
    try:
        future = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError:  # the loop is closed: close the coroutine, it will never run
        coro.close()
        raise
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def _families(snap: Snapshot) -> Iterator[Metric]:
    """Every ws-bridge metric family, from one snapshot."""
    tables = ((SOURCE_FAMILIES, snap.sources, "source"), (SINK_FAMILIES, snap.sinks, "sink"))
    for table, items, label in tables:
        for counter, name, doc, field, key in table:
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            family = kind(f"ws_bridge_{name}", doc, labels=[label, key] if key else [label])
            for item in items:
                value = getattr(item, field)
                if isinstance(value, Mapping):
                    for sub, n in sorted(value.items()):
                        family.add_metric([item.name, sub], n)
                elif value is not None:  # unknown yet (no frame, no handshake): no sample, not 0
                    family.add_metric([item.name], float(value))
            yield family
    state = GaugeMetricFamily("ws_bridge_source_state", "1 for the current state",
                              labels=["source", "state"])
    for src in snap.sources:
        for value in STATES:
            state.add_metric([src.name, value], float(src.state == value))
    yield state


class _BridgeCollector:
    def __init__(self, take: Callable[[], Snapshot]) -> None:
        self.collect = lambda: list(_families(take()))


class MetricsServer:
    """The opt-in HTTP endpoint (``metrics: {listen: host:port}``); port 0 picks a free port."""

    def __init__(self, snapshot: Callable[[], Awaitable[Snapshot]], listen: str = "127.0.0.1:9108",
                 *, health_timeout: float = 1.0, snapshot_timeout: float = 2.0,
                 tap: WsgiApp | None = None) -> None:
        """``tap``: the ``/tap`` app (``metrics.tap``), served from the same threads."""
        host, _, port = listen.rpartition(":")
        self._host, self._port = host.strip("[]") or "127.0.0.1", int(port)
        self._snapshot = snapshot
        self._health_timeout, self._snapshot_timeout = health_timeout, snapshot_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        registry = CollectorRegistry()
        registry.register(_BridgeCollector(self._take))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self._apps: dict[str, WsgiApp] = {"/metrics": make_wsgi_app(registry)}
        if tap is not None:
            self._apps["/tap"] = tap

    @property
    def port(self) -> int:
        """The bound port (the chosen one when listening on port 0)."""
        return self._server.server_port if self._server else self._port

    async def start(self) -> None:
        """Bind and serve from a daemon thread; OSError when the address is taken."""
        if self._server is not None:
            raise RuntimeError("metrics server already started")
        self._loop = asyncio.get_running_loop()
        cls = _Server6 if ":" in self._host else _Server
        self._server = await asyncio.to_thread(
            make_server, self._host, self._port, self._app, cls, _QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="metrics-http", daemon=True)
        self._thread.start()
        logger.info("metrics: serving on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        """Stop serving, let requests in flight finish, and release the socket."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return

        def stop() -> None:
            server.shutdown()
            server.server_close()  # also joins the request threads
            thread.join()
        await asyncio.to_thread(stop)  # requests in flight still need the loop to finish
        logger.info("metrics: stopped")

    def _take(self) -> Snapshot:
        async def take() -> Snapshot:
            return await self._snapshot()
        assert self._loop is not None
        return _on_loop(self._loop, take(), self._snapshot_timeout)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route one request; runs in a server thread, never on the event loop."""
        path = environ.get("PATH_INFO", "")
        try:
            if (app := self._apps.get(path)) is not None:  # /metrics, /tap: they answer
                return app(environ, start_response)
            if path == "/healthz":
                assert self._loop is not None
                _on_loop(self._loop, asyncio.sleep(0), self._health_timeout)
                return _reply(start_response, 200, "ok")
            if path == "/readyz":
                snap = self._take()
                ready, why = snap.ready(snap.taken_at)
                return _reply(start_response, 200 if ready else 503, "\n".join(why) or "ready")
            if path == "/status":
                body = json.dumps(self._take().to_json())
                return _reply(start_response, 200, body, "application/json")
        except _UNANSWERED:  # fail, rather than serve stale or invented numbers
            return _reply(start_response, 503, "the event loop did not answer in time")
        return _reply(start_response, 404, "try /metrics, /healthz, /readyz or /status")


def _reply(start_response: StartResponse, code: int, body: str,
           kind: str = "text/plain; charset=utf-8") -> list[bytes]:
    start_response(f"{code} {http.HTTPStatus(code).phrase}", [("Content-Type", kind)])
    return [(body + "\n").encode()]
