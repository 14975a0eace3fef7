"""The chaos soak: the real bridge under faults drawn at random from a seed (``make chaos``,
bench/chaos.py; a one-minute run in tests/test_chaos.py).

The world::

    namespace UP:  three NumberedStream upstreams (s1, s2, s3), each replaying its last
                   ``replay`` numbers to every new connection, as exchanges do
    root:          the bridge (python -m bridge run), QoS 1 MQTT sink with a durable outbox,
                   dedup on the number; the oracle subscriber; this harness
    namespace BR:  Mosquitto with persistence, ``max_inflight_messages 0``

The bridge reaches both namespaces over their fault links; the subscriber reaches the broker over
the clean link (tests/support/netns.py), so a partition never hits the oracle. Faults, one at a
time, each followed by a random pause (the draw is the seed's):

- ``upstream_drop``: one upstream aborts its connections (TCP abort, no close frame);
- ``upstream_restart``: one upstream stops listening for 0.5-3 s (connects refused), then
  starts again on the same port (its history survives, as an exchange's does);
- ``broker_kill``: SIGKILL, down 0.2-2 s, started again; the subscriber reconnects;
- ``bridge_kill``: SIGKILL, started again within a second; one time in three the new process
  is SIGKILLed again 0.05-1.5 s into its start-up, and started once more;
- ``partition_upstream`` / ``partition_broker``: every packet on the link dropped both ways for
  ``partition`` seconds (30 s in the ten-minute run); it runs in the background, so the next
  fault may land inside it;
- ``reload``: the config changed (the sink's keepalive, which rebuilds the sink, or one source's
  ping timeout, which reconnects it), then SIGHUP.

After each fault the harness waits for recovery, an event: every source has delivered a number
made after the fault. The first faults are one of each kind in a shuffled order, so every run,
however short, has them all; the run goes on (faults and numbers) until ``minutes`` have passed
and every kind has happened, then the partitions heal and the stream stops.

What "accepted" means, and the claim checked
--------------------------------------------
A number is sent once its upstream has made it, whether or not the bridge is connected then.
The claim is the strong one: every number sent is delivered at least once, first seen in
order per source. It holds because each piece of the path covers the one before:

- in flight on the WebSocket or in the bridge's memory when the bridge is SIGKILLed or a link
  drops: the upstream replays its last ``replay`` numbers (two minutes of the stream) on the
  next connection and ``dedup`` drops what was already delivered;
- in the durable outbox: kept across a bridge SIGKILL and a broker outage, sent again until the
  broker acknowledges it;
- acknowledged by the broker: Mosquitto 2.0 writes a QoS 1 publish to each connected
  subscriber's socket before it sends the PUBACK, and with ``max_inflight_messages 0`` it holds
  none back in memory; a SIGKILL then loses nothing the bridge was told was taken. The
  subscriber's persistent session (QoS 1, clean start off) is in the broker's persistence file,
  saved by one clean stop at set-up, so a broker restarted after a SIGKILL queues for it from the
  first publish on. A broker kill waits until the subscriber is connected again after the last.

``Oracle`` keeps the subscriber's account (first copies, their order and arrival times);
``ChaosRun.run()`` returns a :class:`Result`, ``Result.summary()`` the figures as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import Daemon, NotifySocket
from tests.support.mosquitto import Broker, Received, Subscriber
from tests.support.netns import NetNs
from tests.support.upstream import NumberedStream, Upstream

SOURCES = ("s1", "s2", "s3")
KINDS = ("upstream_drop", "upstream_restart", "broker_kill", "bridge_kill",
         "partition_upstream", "partition_broker", "reload")
WEIGHTS = (2, 1, 2, 2, 1, 1, 2)  # the random draws after the first round of one each
STATUS = "ws-bridge/status"
REPLAY_SECONDS = 120.0  # the history each upstream replays, in seconds of its stream
STARTUP = 60.0  # a cap on a cold start of the bridge on a loaded host, not an expected time


class ChaosError(Exception):
    """The run cannot go on: the bridge died by itself, or did not recover from a fault."""


@dataclass(frozen=True)
class Plan:
    """A run's settings: ``minutes`` of stream and faults, the ``seed`` of every draw."""

    minutes: float
    seed: int
    rate: float = 20.0  # numbers per second per source

    @property
    def partition(self) -> float:
        return min(30.0, max(5.0, 3 * self.minutes))

    @property
    def pause(self) -> tuple[float, float]:
        return (0.5, 3.0) if self.minutes < 5 else (3.0, 20.0)

    @property
    def replay(self) -> int:
        return int(self.rate * REPLAY_SECONDS)

    @property
    def recovery(self) -> float:
        """How long a recovery may take before the run calls it a hang (a loaded host)."""
        return self.partition + 90.0

    @property
    def sample_every(self) -> float:
        return 2.0 if self.minutes < 5 else 5.0


@dataclass
class Fault:
    kind: str
    at: float  # seconds into the run
    detail: str = ""
    recovered: float | None = None  # seconds from the fault's end to every source delivering
    duplicates_before: int = 0  # the subscriber's duplicates when the fault began
    duplicates: int = 0  # those that came between this fault and the next one (or the end)


class Oracle:
    """What the subscriber saw of each source's stream, kept as messages arrive."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seen: dict[str, set[int]] = {s: set() for s in SOURCES}
        self.top = dict.fromkeys(SOURCES, 0)  # the highest number seen
        self.low = dict.fromkeys(SOURCES, 1)  # the lowest number not seen yet
        self.copies = dict.fromkeys(SOURCES, 0)
        self.out_of_order: dict[str, list[int]] = {s: [] for s in SOURCES}
        self.gap = {s: (0.0, 0.0) for s in SOURCES}  # (longest pause, when it ended)
        self._last = dict.fromkeys(SOURCES, 0.0)
        self.event = asyncio.Event()  # set, and replaced, at each message
        # every copy as it came: (seconds, source, number, the outbox's msg_id, first copy?)
        self.arrivals: list[tuple[float, str, int, str, bool]] = []


    @property
    def duplicates(self) -> int:
        return sum(self.copies.values()) - sum(len(v) for v in self.seen.values())

    def start(self, at: float) -> None:
        self._last = dict.fromkeys(SOURCES, at)

    def __call__(self, m: Received) -> None:
        if not m.topic.startswith("feeds/"):
            return
        src, n, now = m.topic[len("feeds/"):], int(json.loads(m.payload)["n"]), self.clock()
        self.copies[src] += 1
        self.arrivals.append((now, src, n, _msg_id(m), n not in self.seen[src]))
        if n not in self.seen[src]:
            if n < self.top[src]:
                self.out_of_order[src].append(n)  # a first copy below one seen before
            self.seen[src].add(n)
            self.top[src] = max(self.top[src], n)
            while self.low[src] in self.seen[src]:
                self.low[src] += 1
            if now - self._last[src] > self.gap[src][0]:
                self.gap[src] = (now - self._last[src], now)
            self._last[src] = now
        self.event.set()
        self.event = asyncio.Event()

    def around(self, src: str, n: int, before: int = 30, after: int = 10) -> list[str]:
        """The copies of ``src`` that came around the first copy of ``n``, one line each."""
        mine = [a for a in self.arrivals if a[1] == src]
        at = next((i for i, a in enumerate(mine) if a[2] == n and a[4]), 0)
        return [f"{t:9.3f}s n={k:<6} msg_id={mid or '-':<24} {'first' if first else 'copy'}"
                + ("   <-- late" if i == at else "")
                for i, (t, _, k, mid, first) in enumerate(mine)
                if at - before <= i <= at + after]


def _msg_id(m: Received) -> str:
    """The outbox's msg_id user property (``<tag>-<row>``), when the publish carried one."""
    for key, value in m.properties.get("user_property", []):
        if key == "msg_id":
            return str(value)
    return ""


@dataclass
class Result:
    plan: Plan
    seconds: float = 0.0
    sent: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    copies: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    out_of_order: dict[str, list[int]] = field(default_factory=dict)
    gap: tuple[float, float, str] = (0.0, 0.0, "")  # longest gap, when it ended, source
    faults: list[Fault] = field(default_factory=list)
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, pid, kB)
    bridges: int = 0  # bridge processes started
    replays: int = 0  # upstream connections, each replayed to
    exit_code: int | None = None  # of the final SIGTERM
    error: str = ""
    context: list[str] = field(default_factory=list)  # the copies around each late first one

    @property
    def lost(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def ok(self) -> bool:
        return (not self.error and self.lost == 0 and self.exit_code == 0
                and not any(self.out_of_order.values()))

    def failures(self) -> list[str]:
        out = [self.error] if self.error else []
        out += [f"{s}: {len(v)} lost, first {v[:10]}" for s, v in self.missing.items() if v]
        out += [f"{s}: first-seen order broken at {v[:10]}"
                for s, v in self.out_of_order.items() if v]
        if self.exit_code != 0:
            out.append(f"the final SIGTERM ended the bridge with code {self.exit_code}")
        return out

    def kinds(self) -> dict[str, int]:
        return {k: sum(f.kind == k for f in self.faults) for k in KINDS}

    def duplicates_by_kind(self) -> dict[str, int]:
        """Duplicates that came between a fault of each kind and the next fault."""
        return {k: sum(f.duplicates for f in self.faults if f.kind == k) for k in KINDS}

    def summary(self) -> str:
        sent, got = sum(self.sent.values()), sum(self.delivered.values())
        copies = sum(self.copies.values())
        rss = [kb for *_, kb in self.rss]
        recov = [f.recovered for f in self.faults if f.recovered is not None]
        lines = [
            f"seed {self.plan.seed}, {self.plan.minutes:g} min asked, {self.seconds:.0f} s run,"
            f" {len(SOURCES)} sources at {self.plan.rate:g}/s",
            f"sent {sent}, delivered {got} (distinct), lost {self.lost},"
            f" duplicates {copies - got}",
            f"longest delivery gap {self.gap[0]:.1f} s ({self.gap[2]}, ended at"
            f" {self.gap[1]:.0f} s)",
            f"faults {len(self.faults)}: "
            + ", ".join(f"{k} {n}" for k, n in self.kinds().items()),
            f"recovery after a fault: median {sorted(recov)[len(recov) // 2]:.1f} s, longest"
            f" {max(recov):.1f} s" if recov else "recovery: none measured",
            f"bridge processes {self.bridges}, upstream connections {self.replays};"
            f" RSS peak {max(rss, default=0) / 1024:.1f} MB, at the end"
            f" {(rss or [0])[-1] / 1024:.1f} MB",
            f"final SIGTERM: exit {self.exit_code}",
        ]
        if not self.ok:
            lines += ["FAILED: " + "; ".join(self.failures())]
        lines += self.context[:2]  # the copies around a late first one: which path it took
        return "\n".join(lines)


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ChaosRun:
    """One run of the soak in ``workdir``; ``say`` gets one line per fault."""

    def __init__(self, plan: Plan, workdir: Path, say: Callable[[str], None] = print) -> None:
        self.plan, self.workdir, self.say = plan, workdir, say
        self.rng = random.Random(plan.seed)
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.result = Result(plan)
        self.oracle = Oracle(self.clock)
        self.streams = {s: NumberedStream(replay=plan.replay) for s in SOURCES}
        self.upstreams: dict[str, Upstream] = {}
        self.nets: list[NetNs] = []
        self.daemons: list[Daemon] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.partitions: dict[str, asyncio.Task[None]] = {}
        self.stop = asyncio.Event()
        self.keepalive, self.ping_timeout = 2, dict.fromkeys(SOURCES, 2.0)
        self._killing = False

    def clock(self) -> float:
        return self.loop.time() - self.t0

    # -- the world ------------------------------------------------------------------------

    async def run(self) -> Result:
        started = time.monotonic()
        try:
            await self._setup()
            await self._soak()
        except ChaosError as exc:
            self.result.error = str(exc)
        finally:
            await self._teardown()
            self.result.seconds = time.monotonic() - started
        return self.result

    def _net(self) -> NetNs:
        if os.geteuid() != 0:
            raise ChaosError("the chaos soak needs root (ip netns, nft): run it as root")
        ns = NetNs()
        self.nets.append(ns)
        try:
            ns.create()
        except (RuntimeError, OSError) as exc:
            raise ChaosError(f"cannot create a network namespace: {exc}") from exc
        return ns

    async def _setup(self) -> None:
        self.up_ns, self.br_ns = self._net(), self._net()
        for name in SOURCES:
            up = Upstream(host=self.up_ns.fault_addr, listen=self.up_ns.listen)
            up.handler = self.streams[name].handler
            await up.start()
            self.upstreams[name] = up
        self.broker = Broker(self.workdir / "broker", host=self.br_ns.clean_addr,
                             netns=self.br_ns.name, options=["max_inflight_messages 0"])
        await asyncio.to_thread(self.broker.start)
        self.sub = Subscriber(self.broker, ["feeds/#", "ws-bridge/#"], persistent=True,
                              client_id="chaos-subscriber")
        self.sub.listeners.append(self.oracle)
        await self.sub.connect()
        # One clean stop saves the subscriber's session: every restart after a SIGKILL has it.
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.broker.start)
        await self._resubscribe()
        self.notify = NotifySocket()
        self.config = self.workdir / "bridge.yaml"
        self._write_config()
        await self._spawn()

    def _write_config(self) -> None:
        ping = {"interval": "1s"}
        cfg: dict[str, Any] = {
            "version": 1,
            "sinks": {"broker": {
                "type": "mqtt", "url": f"mqtt://{self.br_ns.fault_addr}:{self.broker.port}",
                "qos": 1, "client_id": "bridge-chaos", "keepalive": f"{self.keepalive}s",
                "availability": {"topic": STATUS},
                "reconnect": {"initial_delay": "100ms", "max_delay": "1s"},
                "queue": {"path": str(self.workdir / "outbox"), "max_messages": 1_000_000}}},
            "defaults": {"connect_timeout": "3s",
                         "reconnect": {"initial_delay": "100ms", "max_delay": "1s"}},
            "sources": [{"name": s, "url": self.upstreams[s].url,
                         "ping": ping | {"timeout": f"{self.ping_timeout[s]}s"},
                         "dedup": {"key": "{msg.n}", "window": 4 * self.plan.replay},
                         "routes": [{"sink": "broker", "topic": f"feeds/{s}"}]}
                        for s in SOURCES],
        }
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    async def _spawn(self) -> None:
        self.daemon = await Daemon.spawn("run", str(self.config),
                                         env={"NOTIFY_SOCKET": self.notify.path})
        self.daemons.append(self.daemon)
        self.result.bridges += 1

    async def _resubscribe(self) -> None:
        """The subscriber connects again (its session resumes); retried while the restarted
        broker is not yet answering MQTT."""
        for attempt in range(50):
            try:
                await self.sub.reconnect(timeout=5.0)
                return
            except Exception as exc:  # refused, reset, timed out: gmqtt raises several kinds
                if attempt == 49:
                    raise ChaosError(f"the subscriber cannot reconnect: {exc!r}") from exc
                await asyncio.sleep(0.2)  # a retry's pace

    def _alive(self) -> None:
        if self.daemon.returncode is not None and not self._killing:
            tail = "\n".join(self.daemon.stderr[-20:])
            raise ChaosError(f"the bridge exited by itself ({self.daemon.returncode}):\n{tail}")
        for task in [*self.tasks, *self.partitions.values()]:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise ChaosError(str(task.exception()))

    async def _until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = self.loop.time() + timeout
        while not check():
            event = self.oracle.event
            self._alive()
            if self.loop.time() > deadline:
                raise ChaosError(f"no {what} within {timeout:.0f} s (at {self.clock():.0f} s):"
                                 f" delivered up to {self.oracle.top}, lowest missing"
                                 f" {self.oracle.low}, sent {self._mark()}")
            with contextlib.suppress(TimeoutError):  # wakes for the liveness check too
                await asyncio.wait_for(event.wait(), 1.0)

    def _mark(self) -> dict[str, int]:
        return {s: len(self.streams[s].sent) for s in SOURCES}

    async def _recovered(self, fault: Fault) -> None:
        """Every source delivers a number made after ``fault`` ended."""
        mark, ended = self._mark(), self.loop.time()
        await self._until(lambda: all(self.oracle.top[s] > mark[s] for s in SOURCES),
                          self.plan.recovery, f"recovery from {fault.kind}")
        fault.recovered = self.loop.time() - ended

    # -- the run --------------------------------------------------------------------------

    async def _soak(self) -> None:
        every = 1 / self.plan.rate
        self.t0 = self.loop.time()
        self.oracle.start(0.0)
        self.tasks = [asyncio.create_task(self.streams[s].produce_until(self.stop, every))
                      for s in SOURCES]
        self.tasks.append(asyncio.create_task(self._sample()))
        first = Fault("start", 0.0)
        await self._recovered(first)
        self.say(f"[{self.clock():6.1f}s] bridge up, every source delivering")
        todo = self.rng.sample(KINDS, len(KINDS))
        end = self.plan.minutes * 60
        while todo or self.clock() < end:
            await asyncio.sleep(self.rng.uniform(*self.plan.pause))  # the schedule's pause
            kind = todo.pop(0) if todo else self.rng.choices(KINDS, WEIGHTS)[0]
            if kind.startswith("partition") and kind in self.partitions:
                kind = "upstream_drop"  # that link is cut already
            await self._fault(kind)
        for task in list(self.partitions.values()):
            await task
        self.stop.set()
        for task in self.tasks[:-1]:
            await task
        produced = self._mark()
        self.result.sent = produced
        self.say(f"[{self.clock():6.1f}s] stream stopped: sent {produced}; draining")
        try:
            await self._until(lambda: all(self.oracle.low[s] > produced[s] for s in SOURCES),
                              self.plan.recovery, "complete delivery")
        except ChaosError as exc:
            self.say(str(exc))  # the loss is reported below, number by number

    async def _fault(self, kind: str) -> None:
        fault = Fault(kind, self.clock(), duplicates_before=self.oracle.duplicates)
        self.result.faults.append(fault)
        if kind in ("upstream_drop", "upstream_restart"):
            name = self.rng.choice(SOURCES)
            up = self.upstreams[name]
            if kind == "upstream_drop":
                await up.kill()
                fault.detail = f"{name}: connections aborted"
            else:
                down = self.rng.uniform(0.5, 3.0)
                await up.stop()
                await asyncio.sleep(down)  # the upstream's downtime
                await up.start()
                fault.detail = f"{name}: down {down:.1f} s"
        elif kind == "broker_kill":
            down = self.rng.uniform(0.2, 2.0)
            self.broker.kill()
            await asyncio.sleep(down)  # the broker's downtime
            await asyncio.to_thread(self.broker.start)
            await self._resubscribe()
            fault.detail = f"down {down:.1f} s"
        elif kind == "bridge_kill":
            # One time in three the restarted bridge is killed again while it starts (its
            # outbox opening, its sources connecting and being replayed to), then restarted.
            again = self.rng.uniform(0.05, 1.5) if self.rng.random() < 1 / 3 else None
            pids = [self.daemon.pid]
            await self._kill_bridge()
            if again is not None:
                await asyncio.sleep(again)  # how far into its start-up the second kill lands
                pids.append(self.daemon.pid)
                await self._kill_bridge()
            fault.detail = (f"pid {' then '.join(map(str, pids))} killed"
                            + (f" (the second {again:.2f} s after its start)" if again else ""))
        elif kind == "reload":
            fault.detail = await self._reload()
        else:
            link = kind.removeprefix("partition_")
            fault.detail = f"{self.plan.partition:g} s"
            self.partitions[kind] = asyncio.create_task(self._partition(kind, link, fault))
            self.say(f"[{fault.at:6.1f}s] {kind}: {fault.detail}")
            return
        await self._recovered(fault)
        self.say(f"[{fault.at:6.1f}s] {kind}: {fault.detail}; recovered in"
                 f" {fault.recovered:.1f} s")

    async def _kill_bridge(self) -> None:
        """SIGKILL, then a new bridge process on the same config and outbox. Until the new one
        is spawned the dead one is expected: a partition healing meanwhile checks liveness."""
        self._killing = True
        try:
            self.daemon.signal(signal.SIGKILL)
            await self.daemon.wait_exit()
            await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # the supervisor's restart delay
            await self._spawn()
        finally:
            self._killing = False

    async def _partition(self, kind: str, link: str, fault: Fault) -> None:
        ns = self.up_ns if link == "upstream" else self.br_ns
        ns.partition()
        try:
            await asyncio.sleep(self.plan.partition)  # the fault's length
        finally:
            ns.heal()
        await self._recovered(fault)
        self.say(f"[{self.clock():6.1f}s] {kind} healed; recovered in {fault.recovered:.1f} s")
        del self.partitions[kind]

    async def _reload(self) -> str:
        if self.rng.random() < 0.5:
            self.keepalive = 5 - self.keepalive  # 2 s <-> 3 s: the sink is rebuilt
            what = f"sink keepalive {self.keepalive} s"
        else:
            name = self.rng.choice(SOURCES)
            self.ping_timeout[name] = 4.5 - self.ping_timeout[name]  # 2 s <-> 2.5 s
            what = f"{name} ping timeout {self.ping_timeout[name]} s"
        self._write_config()
        start = len(self.notify.messages)
        self.daemon.signal(signal.SIGHUP)
        try:
            began = await self.notify.wait_for(lambda m: "RELOADING=1" in m, timeout=STARTUP,
                                               start=start)
            await self.notify.wait_for(lambda m: "READY=1" in m, timeout=self.plan.recovery,
                                       start=began + 1)
        except AssertionError as exc:
            raise ChaosError(f"reload ({what}) did not finish: {exc}") from exc
        return what

    async def _sample(self) -> None:
        while True:
            if self.daemon.returncode is None:
                self.result.rss.append((self.clock(), self.daemon.pid, rss_kb(self.daemon.pid)))
            await asyncio.sleep(self.plan.sample_every)  # the sampling period

    # -- the end --------------------------------------------------------------------------

    async def _teardown(self) -> None:
        for task in [*self.tasks, *self.partitions.values()]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.partitions.values(), return_exceptions=True)
        daemon = self.daemons[-1] if self.daemons else None
        if daemon is not None and daemon.returncode is None:
            daemon.signal(signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                self.result.exit_code = await daemon.wait_exit(timeout=30)
        elif daemon is not None:
            self.result.exit_code = daemon.returncode
        for i, d in enumerate(self.daemons):
            await d.kill()
            (self.workdir / f"bridge-{i}.log").write_text(d.log_text + "\n")
        self._account()
        for src, late in self.result.out_of_order.items():
            for n in late[:5]:  # what came around each late first copy, with its outbox row
                self.result.context.append(f"{src} {n}:\n" + "\n".join(self.oracle.around(src, n)))
        if self.result.context:
            (self.workdir / "order.txt").write_text("\n\n".join(self.result.context) + "\n")
        if hasattr(self, "sub"):
            await self.sub.close()
        for up in self.upstreams.values():
            await up.close()
        if hasattr(self, "broker"):
            self.broker.kill()
        if hasattr(self, "notify"):
            await self.notify.close()
        for ns in self.nets:
            ns.delete()

    def _account(self) -> None:
        r, o = self.result, self.oracle
        r.sent = r.sent or self._mark()
        r.delivered = {s: len(o.seen[s]) for s in SOURCES}
        r.copies = dict(o.copies)
        r.missing = {s: [n for n in range(1, r.sent[s] + 1) if n not in o.seen[s]]
                     for s in SOURCES}
        r.out_of_order = {s: list(v) for s, v in o.out_of_order.items()}
        src = max(SOURCES, key=lambda s: o.gap[s][0])
        r.gap = (*o.gap[src], src)
        r.replays = sum(len(self.streams[s].replayed_from) for s in SOURCES)
        marks = [f.duplicates_before for f in r.faults] + [o.duplicates]
        for fault, after in zip(r.faults, marks[1:], strict=True):
            fault.duplicates = after - fault.duplicates_before
