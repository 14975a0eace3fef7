"""Runs a Config: one task per sink and per source in one TaskGroup; reload applies differences."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.config.changes import ROUTING_FIELDS, SUBSCRIPTION_FIELDS, changed_fields
from bridge.config.load import load_config
from bridge.config.model import Config, SourceConfig
from bridge.errors import ConfigError
from bridge.errors_sink import SinkError
from bridge.ha.links import Links
from bridge.logs import add_secrets
from bridge.routing.context import mqtt_value
from bridge.routing.router import Router
from bridge.routing.template import Template
from bridge.running import RunningSource
from bridge.shard import shard_config
from bridge.sinks.base import Sink
from bridge.sinks.file import FileSink
from bridge.sinks.mqtt import MqttSink
from bridge.sinks.mqtt_incoming import Incoming, reply_properties
from bridge.sinks.settings import (
    FileSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebSocketSinkConfig,
)
from bridge.sinks.stdout import StdoutSink
from bridge.sinks.way_back import Listener
from bridge.sinks.websocket import WebSocketSink
from bridge.stats.snapshot import Snapshot
from bridge.systemd import Notifier
from bridge.tap import Tap
from bridge.turns import Soon, Turns
from bridge.upstream.client import SourceClient
from bridge.upstream.pool import Pool
from bridge.upstream.pump import DeliverFn
from bridge.upstream.recovery import Recovery
from bridge.upstream.state import ConnState

log = logging.getLogger("bridge.supervisor")
SHUTDOWN_BUDGET = 10.0  # seconds for sources to unsubscribe and for sinks to flush, each


def build_sink(cfg: SinkConfig, hostname: str, soon: Soon | None = None) -> Sink:
    """The sink object for one ``sinks:`` entry: the one place that knows the sink types.
    ``soon``: how the MQTT sink's end-of-turn writes are scheduled (the daemon's ``Turns``)."""
    if isinstance(cfg, StdoutSinkConfig):
        return StdoutSink(cfg)
    if isinstance(cfg, FileSinkConfig):
        return FileSink(cfg, hostname=hostname)
    if isinstance(cfg, MqttSinkConfig):
        return MqttSink(cfg, soon=soon)
    if isinstance(cfg, WebSocketSinkConfig):
        return WebSocketSink(cfg)
    raise TypeError(f"unknown sink config {type(cfg).__name__}")


class Supervisor:
    """Owns the sinks and sources of one config and their lifecycle."""

    def __init__(self, config: Config, *, notifier: Notifier | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        self.shard = shard  # (K, N): run only shard K's part, now and after every reload
        self.config = shard_config(config, *shard) if shard else config
        self.notifier = notifier or Notifier()
        self.hostname = socket.gethostname()
        self.sinks: dict[str, Sink] = {}
        self.sources: dict[str, RunningSource] = {}
        self._sink_tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self._all_gave_up = asyncio.Event()
        self.gave_up = False  # the run ended because every source had given up
        self._reloading = False
        self.exit_code = 0
        self._ha = Links(self.sinks, self._control, self.snapshot, time.monotonic())
        cfg = self.config  # metrics.tap: fixed at start, as metrics.listen is
        self.tap = Tap(cfg.tap_token, cfg.secrets, cfg.tap_buffer) if cfg.tap_token else None
        self.turns = Turns(cfg.coalesce, self.sinks)  # the loop's turns while messages flow

    # -- state -----------------------------------------------------------------------------

    def _on_state(self, entry: RunningSource, source: str, state: ConnState) -> None:
        if self.sources.get(source) is not entry:
            return  # a replaced client saying goodbye: its successor owns the state topic now
        if (state is ConnState.CONNECTED) != entry.was_connected:
            # Only going up or down restarts the readiness grace period; retries do not.
            entry.was_connected = state is ConnState.CONNECTED
            entry.since = time.monotonic()
        for sink in self.sinks.values():
            sink.source_state(source, state.value)
        self.notifier.status(self.status_line())
        if self.sources and all(s.client.state is ConnState.FAILED for s in self.sources.values()):
            self._all_gave_up.set()

    def status_line(self) -> str:
        up = sum(1 for s in self.sources.values() if s.client.state is ConnState.CONNECTED)
        parts = [f"{up}/{len(self.sources)} sources connected"]
        parts += [f"{name}: {'up' if s.up else 'down'}" for name, s in self.sinks.items()
                  if s.remote]
        return "; ".join(parts)

    async def snapshot(self) -> Snapshot:
        """Counters of every source and sink, read now (metrics, /readyz, ``ws-bridge status``)."""
        now, wall = time.monotonic(), time.time()
        return Snapshot(
            sources=tuple(e.snapshot(now, wall, self.config.ready_grace)
                          for e in self.sources.values()),
            sinks=tuple(s.snapshot() for s in self.sinks.values()),
            taken_at=now,
        )

    # -- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def request_reload(self) -> None:
        """SIGHUP: reopen the files (for an external logrotate) and apply the config's changes."""
        for sink in self.sinks.values():
            sink.reopen()
        if self._tg is not None and not self._reloading:
            self._tg.create_task(self.reload(), name="reload")

    async def run(self) -> int:
        """Run until ``request_stop`` (or every source has given up); return the exit code."""
        try:  # a sink that cannot start (an outbox it cannot open) stops us before we connect
            built = {n: build_sink(c, self.hostname, self.turns.soon)
                     for n, c in self.config.sinks.items()}
        except SinkError as exc:
            log.error("%s; not starting", exc)
            return 1
        metrics = None
        if self.config.metrics_listen:
            # Imported here: prometheus_client (about 8 MB resident) loads only with metrics on.
            from bridge.metrics import MetricsServer  # noqa: PLC0415

            metrics = MetricsServer(self.snapshot, self.config.metrics_listen,
                                    tap=self.tap.app if self.tap else None)
            await metrics.start()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for name, sink in built.items():
                    self._start_sink(name, sink)
                for src in self.config.sources:
                    self._start_source(src)
                self._ha.update(self.config, tg)
                self._wire()
                watchdog = tg.create_task(self.notifier.watchdog_loop(), name="watchdog")
                log.info("started %d sources and %d sinks", len(self.sources), len(self.sinks))
                self.notifier.ready(self.status_line())
                await self._until_stopped()
                self.notifier.stopping()
                await self._shutdown()
                watchdog.cancel()
        finally:
            self._tg = None
            if self.tap is not None:
                self.tap.close()
            if metrics is not None:
                await metrics.close()
        return self.exit_code

    def _start_sink(self, name: str, sink: Sink,
                    after: asyncio.Task[None] | None = None) -> Sink:
        """``after``: the task of the sink this one replaces, closed by now. This one takes
        deliveries at once but connects (opens, binds) once that one has finished, so the two
        never hold the same broker session, file or port at the same time."""
        assert self._tg is not None
        self.sinks[name] = sink
        self._sink_tasks[name] = self._tg.create_task(self._guard(name, sink.run, after),
                                                      name=f"sink:{name}")
        return sink

    def _start_source(self, src: SourceConfig, previous: Router | None = None,
                      before: SourceClient | Pool | None = None) -> None:
        """``previous``/``before``: the router and client of the source a reload (or a
        requested reconnect of a failed one) restarts; its dedup window carries over."""
        assert self._tg is not None
        router = Router(src, self.sinks, hostname=self.hostname, previous=previous,
                        routed=self.turns.routed)
        entry = self.sources[src.name] = RunningSource(router)

        def on_state(name: str, state: ConnState) -> None:
            self._on_state(entry, name, state)

        recovery = Recovery(src, before.recovery if before is not None else None)
        if src.pool is not None:  # a connection per share of the items, made as any source's
            entry.client = Pool(src, self._routed(router), make=self._member,
                                on_state=on_state, recovery=recovery)
        else:
            entry.client = SourceClient(src, self._routed(router), hostname=self.hostname,
                                        on_state=on_state, recovery=recovery)
        entry.task = self._tg.create_task(entry.client.run(), name=f"source:{src.name}")
        if previous is not None:  # its client, still stopping, may feed the routes carried over
            previous.wake = entry.wake.set
        entry.time_routes(self._tg, src.name)

    def _routed(self, router: Router) -> DeliverFn:
        """The router's route function; with ``metrics.tap``, one the tap sees first."""
        return router.route if self.tap is None else self.tap.wrap(router.route)

    def _member(self, cfg: SourceConfig, deliver: DeliverFn, **options: Any) -> SourceClient:
        """One connection of a pool: a source client for its share (see ``Pool``)."""
        return SourceClient(cfg, deliver, hostname=self.hostname, **options)

    async def _until_stopped(self) -> None:
        waits = {asyncio.ensure_future(self._stop.wait()),
                 asyncio.ensure_future(self._all_gave_up.wait())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not self._stop.is_set():
            log.error("every source has given up; stopping")
            self.exit_code, self.gave_up = 1, True
        for waiter in waits:
            waiter.cancel()

    async def _shutdown(self) -> None:
        log.info("stopping: closing sources, then flushing sinks")
        self._ha.stop()
        for entry in self.sources.values():
            entry.client.stop()
        await _bounded([e.task for e in self.sources.values() if e.task], "sources")
        for entry in self.sources.values():  # what routes hold (batches, throttled values)
            entry.stop_timer()
            entry.router.flush()
        for sink in self.sinks.values():
            sink.close()
        await _bounded(list(self._sink_tasks.values()), "sinks")

    async def _guard(self, name: str, run: Callable[[], Coroutine[Any, Any, None]],
                     after: asyncio.Task[None] | None = None) -> None:
        """A sink's task: an unexpected crash is logged and the sink restarted, never fatal."""
        if after is not None:
            await asyncio.wait((after,))  # bounded: a replaced sink is cancelled after its budget
        while True:
            try:
                await run()
                return
            except SinkError as exc:  # the sink gave up as configured (reconnect.max_attempts)
                log.error("%s; the sink has stopped, the sources and other sinks go on", exc)
                return
            except Exception:
                log.exception("sink %s crashed; restarting it in 1s", name)
                if self._stop.is_set():
                    return
                await asyncio.sleep(1.0)

    # -- reload ----------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config and apply the difference; keep the old one if the new is invalid."""
        self._reloading = True
        self.notifier.reloading()
        try:
            try:
                new = load_config(self.config.path)
                new = shard_config(new, *self.shard) if self.shard else new
            except ConfigError as exc:
                for issue in exc.issues:
                    log.error("reload rejected: %s", issue)
                log.error("reload rejected: keeping the running config (%d problems)",
                          len(exc.issues))
                return False
            add_secrets(new.secrets)
            changed = {n: c for n, c in new.sinks.items() if self.config.sinks.get(n) != c}
            try:
                built = {n: build_sink(c, self.hostname, self.turns.soon)
                         for n, c in changed.items()}
            except SinkError as exc:
                log.error("reload rejected: %s; keeping the running config", exc)
                return False
            await self._apply(new, built)
            if new.coalesce != self.turns.hold:
                log.info("reload: coalesce %gms", new.coalesce * 1000)
            self.config, self.turns.hold = new, new.coalesce
            return True
        finally:
            self._reloading = False
            self.notifier.ready(self.status_line())

    async def _apply(self, new: Config, built: dict[str, Sink]) -> None:
        old = self.config
        stale: list[tuple[str, Sink, asyncio.Task[None]]] = []
        for name, fresh in built.items():
            previous, task = self.sinks.get(name), self._sink_tasks.get(name)
            sink = self._start_sink(name, fresh, after=task)
            if previous is not None and task is not None:
                _hand_over(previous, sink, self.sources)
                previous.close()  # its successor has what it held; it waits for it to finish
                stale.append((name, previous, task))
            log.info("reload: sink %s %s", name, "rebuilt" if previous else "added")
        removed_sinks = [n for n in old.sinks if n not in new.sinks]
        new_names = {s.name for s in new.sources}
        stopping = [self._remove_source(n) for n in list(self.sources) if n not in new_names]
        for src in new.sources:
            entry = self.sources.get(src.name)
            if entry is None:
                self._start_source(src)
                log.info("reload: source %s added", src.name)
                continue
            changed = changed_fields(entry.client.cfg, src)
            resinked = any(r.sink in {n for n, *_ in stale} for r in src.routes)
            if changed - SUBSCRIPTION_FIELDS - ROUTING_FIELDS:
                stopping.append(self._stop_source(src.name))
                self._start_source(src, previous=entry.router, before=entry.client)
                log.info("reload: source %s reconnects (changed: %s)", src.name,
                         ", ".join(sorted(changed)))
                continue
            if changed & ROUTING_FIELDS or resinked:
                entry.router = Router(src, self.sinks, hostname=self.hostname,
                                      previous=entry.router, routed=self.turns.routed)
                entry.client.retarget(self._routed(entry.router))
                entry.time_routes(self._tg, src.name)
            if changed & SUBSCRIPTION_FIELDS:
                entry.client.resubscribe(src)
                log.info("reload: source %s resubscribes on its live connection", src.name)
            elif changed:
                entry.client.cfg = src
        await asyncio.gather(*stopping)
        for name in removed_sinks:
            sink, task = self.sinks.pop(name), self._sink_tasks.pop(name)
            stale.append((name, sink, task))
            log.info("reload: sink %s removed", name)
        if self._tg is not None:
            self._ha.update(new, self._tg)
        self._wire(new)
        for _, sink, _ in stale:
            sink.close()
        await _bounded([task for *_, task in stale], "replaced sinks")

    def _wire(self, config: Config | None = None) -> None:
        """MQTT -> upstream: each mqtt sink subscribes, on its own connection, to what the
        sources' ``publish`` and ``rpc`` read; handlers find the source when a message comes."""
        wanted = self._ha.listeners()
        for src in (config or self.config).sources:
            for spec in src.publish:
                wanted.setdefault(spec.sink, []).append(
                    (spec.topic, self._publisher(src.name, spec.send)))
            if src.rpc is not None and src.rpc.sink is not None:
                sink = self.sinks.get(src.rpc.sink)
                if sink is not None and (topic := sink.rpc_topic(src.name)) is not None:
                    wanted.setdefault(src.rpc.sink, []).append(
                        (topic, self._caller(src.name, src.rpc.sink)))
        for name, sink in self.sinks.items():
            sink.listen(wanted.get(name, []))

    def _control(self, action: str, source: str) -> str | None:
        """A control request (Home Assistant's buttons) for a running source, its counters
        going on: ``reconnect`` closes its connections and opens new ones (a reconnect
        ``requested``), ``resubscribe`` sends its subscribe steps again on each of them. A
        source that gave up (``max_attempts``) is started anew, as a reload that changes it."""
        if self._stop.is_set() or self._reloading or self._tg is None:
            return "the bridge is stopping or reloading; try again"
        if (entry := self.sources.get(source)) is None:
            return f"no source {source!r}"
        client = entry.client
        if action == "reconnect" and client.state is ConnState.FAILED:
            self._tg.create_task(self._stop_source(source))
            self._start_source(client.cfg, previous=entry.router, before=client)
        elif action == "reconnect":
            client.reconnect()
        elif not client.cfg.subscribe:
            return f"source {source!r} has no subscribe steps to send again; reconnect it instead"
        else:
            client.subscribe_again()
        return None

    def _publisher(self, source: str, send: Template) -> Listener:
        def publish(msg: Incoming) -> None:
            if (entry := self.sources.get(source)) is not None:
                entry.client.publish(send, mqtt_value(msg.topic, msg.payload))
        return publish

    def _caller(self, source: str, sink_name: str) -> Listener:
        def call(msg: Incoming) -> None:
            entry, to = self.sources.get(source), msg.response_topic
            if entry is None or to is None:
                return  # a request without a response topic cannot be answered: MQTT 5 only

            def answer(payload: str | bytes) -> None:
                if (sink := self.sinks.get(sink_name)) is not None:
                    sink.respond(to, payload, reply_properties(msg))
            entry.client.call(mqtt_value(msg.topic, msg.payload), answer)
        return call

    def _remove_source(self, name: str) -> Coroutine[Any, Any, None]:
        """Stop a source a reload removed; the coroutine returned waits until it has closed,
        then has the sinks delete its retained state and availability (no ghost stays
        ``connected``)."""
        closing = self._stop_source(name)

        async def removed() -> None:
            await closing
            for sink in self.sinks.values():
                sink.source_removed(name)

        return removed()

    def _stop_source(self, name: str) -> Coroutine[Any, Any, None]:
        """Stop a source now; the coroutine returned waits until it has closed, then sends
        what its routes still hold (a successor's router took over the unchanged ones)."""
        entry = self.sources.pop(name)
        entry.client.stop()
        entry.stop_timer()

        async def closed() -> None:
            await _bounded([entry.task] if entry.task else [], f"source {name}")
            entry.router.flush()
            log.info("reload: source %s stopped", name)

        return closed()


def _hand_over(old: Sink, new: Sink, sources: dict[str, RunningSource]) -> None:
    """Move what a replaced sink still holds into its successor, in order, losing nothing; tell
    it every source's state; and have it delete the state topics the old one used and it does
    not (another ``topic_prefix`` or availability topic): no ghost stays retained."""
    for delivery in old.hand_over():
        new.send(delivery)
    for name, entry in sources.items():
        new.source_state(name, entry.client.state.value)
    for topic in sorted(old.state_topics() - new.state_topics()):
        new.retain(topic, "")


async def _bounded(tasks: list[asyncio.Task[None]], what: str) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_BUDGET)
    if pending:
        log.warning("%d %s did not finish within %.0fs; cancelling", len(pending), what,
                    SHUTDOWN_BUDGET)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
