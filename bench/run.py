"""`make bench`: ws-bridge against Node-RED, hand-written Python bridges and the machine's ceilings.

Everything runs on loopback with a private Mosquitto per cell; every wait is bounded, and the whole
bench stops starting new work when its time budget is spent. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    PYTHON,
    BenchError,
    Broker,
    Child,
    orphan_proof,
    stop,
    tail,
    tree_cpu,
    tree_peak_rss,
    tree_rss,
)
from payload import make_payload
from pipelines import (
    AB_PIPELINES,
    BY_NAME,
    DEFAULT_BROKER_PIPELINES,
    FILE_PIPELINE,
    FLEET_PIPELINES,
    IDLE_PIPELINES,
    MOSQUITTO_PUB_INFLIGHT,
    PIPELINES,
    POOL_PIPELINE,
    STEP_CELL,
    STEP_PIPELINES,
    SUBSCRIPTION,
    TOPIC,
    Ctx,
    Pipeline,
    prepare,
)
from report import (
    FLEET_RATE,
    FLEET_SIZE,
    FLEET_SOURCES,
    LATENCY_PIPELINES,
    LATENCY_RATE,
    POOL_CONNECTIONS,
    POOL_ITEMS,
    POOL_SIZE,
    QOSES,
    SIZES,
    Cell,
    Plan,
    Run,
    describe,
    machine,
    render,
)

IDLE = 3.0  # a round ends this long after the last message when messages were lost
# The bench's broker: no Receive Maximum and no cap on QoS 1 messages in flight to the
# subscriber, so that each publisher's own flow control is what gets measured.
BROKER_UNLIMITED = "max_inflight_messages 0\n"
# Latency cells also turn off Nagle in the broker, whose 40 ms stalls would hide the pipeline's.
BROKER_NODELAY = "set_tcp_nodelay true\n"


class Bench:
    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.started = time.monotonic()
        self.deadline = self.started + plan.budget
        self.cells: list[Cell] = []
        self.celldir = workdir
        self.logs: list[Path] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def child(self, name: str, cmd: list[str]) -> Child:
        return Child(name, cmd, self.celldir / f"{name}.log")

    # --- one cell: one pipeline, one payload size, one QoS -------------------------------------

    def cell(self, p: Pipeline, size: int, qos: int, latency: bool = False) -> Cell:
        if p.kind == "idle":
            n = self.plan.idle_sources
        elif p.kind == "fleet":
            n = int(FLEET_SOURCES * FLEET_RATE * self.plan.fleet_seconds)
        elif p.kind == "pool":
            n = int(POOL_ITEMS * self.plan.fleet_seconds)  # 1 msg/s per item
        elif latency:
            n = int(LATENCY_RATE * self.plan.latency_seconds)
        else:
            n = self.n_for(p, size)
        mode = p.kind if p.kind in ("fleet", "pool") else "latency" if latency else "throughput"
        cell = Cell(p.name, size, qos, n, mode=mode)
        self.celldir = self.workdir / f"{len(self.cells):02d}-{p.name}-{size}-{qos}"
        self.celldir.mkdir()
        if p.unavailable:
            cell.status, cell.reason = "unavailable", p.unavailable
        elif (qos and not p.qos_matters) or (p.only_qos is not None and qos != p.only_qos) or \
                (p.only_size is not None and size != p.only_size):
            cell.status = "n/a"
        elif self.left() < (25 if self.plan.quick else 40):
            cell.status, cell.reason = "skipped", "time budget spent"
        else:
            what = (f"latency {LATENCY_RATE}/s" if latency else f"{n} idle connections"
                    if p.kind == "idle" else f"{FLEET_SOURCES}x{FLEET_RATE}/s for"
                    f" {self.plan.fleet_seconds:g} s" if p.kind == "fleet"
                    else f"{POOL_ITEMS} items x 1/s over {POOL_CONNECTIONS} connections for"
                    f" {self.plan.fleet_seconds:g} s" if p.kind == "pool"
                    else f"{self.plan.runs}x{n}")
            where = "" if p.kind == "idle" else f"{size:>5} B qos {qos} "
            print(f"  {p.name:<15} {where}{what} ...", end=" ", flush=True)
            try:
                with contextlib.ExitStack() as stack:
                    self._measure(p, cell, stack, latency)
            except BenchError as exc:
                cell.status, cell.reason = "failed", str(exc)
            print(describe(cell), flush=True)
        self.cells.append(cell)
        return cell

    def n_for(self, p: Pipeline, size: int) -> int:
        return max(1000, int(self.plan.n[size] * p.n_scale))

    def _measure(self, p: Pipeline, cell: Cell, stack: contextlib.ExitStack, latency: bool) -> None:
        if p.kind == "idle":
            self._idle(p, cell, stack)
            return
        if p.kind in ("fleet", "pool"):
            self._fleet(p, cell, stack)
            return
        broker_port = 0
        receiver: Child | FileWatcher | None = None
        if p.kind in ("mqtt", "pub"):
            extra = "" if p.default_window else BROKER_UNLIMITED
            broker = Broker(self.celldir, extra + (BROKER_NODELAY if latency else ""))
            stack.callback(broker.close)
            broker_port = broker.port
            # The subscriber takes QoS 0 whatever the pipeline publishes with: the QoS under test
            # is the pipeline's, and the counting instrument should cost the machine little.
            receiver = self.child("subscriber", [PYTHON, str(BENCH / "subscriber.py"),
                                                 "--port", str(broker_port),
                                                 "--topic", SUBSCRIPTION, "--qos", "0"])
            stack.callback(receiver.close)
            receiver.expect("ready", 10)
        if p.kind == "pub":
            assert isinstance(receiver, Child)
            self._mosquitto_pub_runs(cell, broker_port, receiver)
            return
        blaster = self.child("blaster", [PYTHON, str(BENCH / "blaster.py"), "--size",
                                         str(cell.size), "--count", str(0 if latency else cell.n),
                                         "--each", str(p.fanout if p.fanout > 1 else 0),
                                         *p.upstream_args])
        stack.callback(blaster.close)
        ws_url = f"ws://127.0.0.1:{blaster.expect('listening', 60)['port']}/"
        ctx = Ctx(self.celldir, ws_url, broker_port, cell.qos, self.celldir / "sink.jsonl")
        if p.kind == "ws":
            receiver = self.child("ws-discard", [PYTHON, str(BENCH / "peers" / "ws_discard.py"),
                                                 "--ws", ws_url])
            stack.callback(receiver.close)
            procs = [receiver.proc]
            ctx.logs.append(receiver.log)
        else:
            assert p.start is not None
            procs = p.start(ctx)
            stack.callback(stop_all, procs)
        if p.kind == "file":
            receiver = FileWatcher(ctx.out_file)
        assert receiver is not None
        self.logs = ctx.logs
        self._wait_connected(blaster, procs, ctx.logs, 60 if p.name == "node-red" else 30)
        self._prime(blaster, receiver, procs, ctx.logs)
        if latency:
            assert isinstance(receiver, Child)
            self._latency_runs(cell, blaster, receiver, procs)
        elif isinstance(receiver, FileWatcher):
            self._file_runs(cell, blaster, receiver, procs)
        else:
            self._blast_runs(cell, blaster, receiver, procs, p.fanout)
        cell.peak_rss = tree_peak_rss([proc.pid for proc in procs])

    def _idle(self, p: Pipeline, cell: Cell, stack: contextlib.ExitStack) -> None:
        """Open ``cell.n`` idle connections to one upstream and read the resident set."""
        broker = Broker(self.celldir, BROKER_UNLIMITED)
        stack.callback(broker.close)
        blaster = self.child("blaster", [PYTHON, str(BENCH / "blaster.py"), "--count", "0"])
        stack.callback(blaster.close)
        ws_url = f"ws://127.0.0.1:{blaster.expect('listening', 60)['port']}/"
        ctx = Ctx(self.celldir, ws_url, broker.port, 0, self.celldir / "sink.jsonl",
                  sources=cell.n)
        assert p.start is not None
        procs = p.start(ctx)
        stack.callback(stop_all, procs)
        deadline = time.monotonic() + min(90, self.left())
        connected = 0
        while connected < cell.n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{connected} of {cell.n} connections came up in time")
            try:
                connected = blaster.expect("connected", min(1.0, left))["n"]
            except BenchError:
                if blaster.proc.poll() is not None:
                    raise
                check_alive(procs, ctx.logs)
        time.sleep(2.0)  # let start-up garbage be collected and per-source work settle
        check_alive(procs, ctx.logs)
        pids = [proc.pid for proc in procs]
        cell.rss_now, cell.peak_rss = tree_rss(pids), tree_peak_rss(pids)

    def _fleet(self, p: Pipeline, cell: Cell, stack: contextlib.ExitStack) -> None:
        """FLEET_SOURCES upstream connections at FLEET_RATE msgs/s each, steady, into a broker at
        its defaults (with Nagle off, as for the latency cells): one timed round. The pool:
        POOL_ITEMS items subscribed over POOL_CONNECTIONS connections, each item 1 msg/s."""
        pool = p.kind == "pool"
        size, wanted = (POOL_SIZE, POOL_ITEMS) if pool else (FLEET_SIZE, FLEET_SOURCES)
        event, rate = ("subscribed", POOL_ITEMS / POOL_CONNECTIONS) if pool else \
            ("connected", FLEET_RATE)
        broker = Broker(self.celldir, BROKER_NODELAY)
        stack.callback(broker.close)
        receiver = self.child("subscriber", [PYTHON, str(BENCH / "subscriber.py"), "--port",
                                             str(broker.port), "--topic", SUBSCRIPTION,
                                             "--qos", "0"])
        stack.callback(receiver.close)
        receiver.expect("ready", 10)
        upstream = self.child("fleet", [PYTHON, str(BENCH / "fleet_upstream.py"), "--size",
                                        str(size)])
        stack.callback(upstream.close)
        ws_url = f"ws://127.0.0.1:{upstream.expect('listening', 60)['port']}/"
        ctx = Ctx(self.celldir, ws_url, broker.port, cell.qos, self.celldir / "sink.jsonl",
                  sources=wanted)
        assert p.start is not None
        procs = p.start(ctx)
        stack.callback(stop_all, procs)
        self.logs = ctx.logs
        deadline, connected = time.monotonic() + min(90, self.left()), 0
        while connected < wanted:
            if time.monotonic() > deadline:
                raise BenchError(f"{connected} of {wanted} {event} in time"
                                 f" ({last_words(ctx.logs)})")
            try:
                connected = upstream.expect(event, 0.5)["n"]
            except BenchError:
                if upstream.proc.poll() is not None:
                    raise
                check_alive(procs, ctx.logs)
        self._prime(upstream, receiver, procs, ctx.logs)
        seconds = self.plan.fleet_seconds
        pids = [proc.pid for proc in procs]
        done, sent = self._paced_round(cell, upstream, receiver, pids, cell.n, rate, seconds)
        cell.runs[-1].expected = sent["count"]
        cell.latency = {k: done[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")}
        check_alive(procs, ctx.logs)
        cell.peak_rss = tree_peak_rss(pids)

    def _wait_connected(self, blaster: Child, procs: list[Any], logs: list[Path],
                        timeout: float) -> None:
        deadline = time.monotonic() + min(timeout, self.left())
        while time.monotonic() < deadline:
            if blaster.poll_event("connected", 0.2):
                return
            check_alive(procs, logs)
        raise BenchError(f"the pipeline did not connect to the upstream within {timeout:.0f} s"
                         f" ({last_words(logs)})")

    def _prime(self, blaster: Child, receiver: Child | FileWatcher, procs: list[Any],
               logs: list[Path]) -> None:
        """Send seq -1 until it comes out the far end: then every hop is connected."""
        deadline = time.monotonic() + min(20, self.left())
        wait = 3.0 if isinstance(receiver, FileWatcher) else 1.0
        while time.monotonic() < deadline:
            blaster.send("prime")
            if receiver.poll_event("primed", wait):
                time.sleep(0.3)  # let a second, late prime land before counting starts
                return
            check_alive(procs, logs)
        raise BenchError(f"nothing came through the pipeline within 20 s ({last_words(logs)})")

    def _max_wait(self, n: int) -> float:
        return max(5.0, min(10 + n / 2000, self.left() - 5))

    def _blast_runs(self, cell: Cell, blaster: Child, receiver: Child, procs: list[Any],
                    fanout: int = 1) -> None:
        pids = [proc.pid for proc in procs]
        for _ in range(self.plan.runs):
            max_wait = self._max_wait(cell.n * fanout)
            cpu0 = tree_cpu(pids)
            receiver.send(f"arm {cell.n * fanout} 0 {max_wait:.1f} {IDLE}")
            receiver.expect("armed", 10)
            blaster.send("blast")
            done = receiver.expect("done", max_wait + 5)
            run = Run.of(done, tree_cpu(pids) - cpu0)
            cell.runs.append(run)
            if run.delivered == 0:
                raise BenchError("no message came through")
            if run.delivered < run.expected:
                check_alive(procs, self.logs)  # a pipeline that died is "failed", not lossy
                break  # the pipeline lost messages: its state is unknown, stop here
            blaster.expect("sent", 10)

    def _mosquitto_pub_runs(self, cell: Cell, port: int, receiver: Child) -> None:
        lines = b"".join(make_payload(i, 0, cell.size) + b"\n" for i in range(cell.n))
        for _ in range(self.plan.runs):
            max_wait = self._max_wait(cell.n)
            receiver.send(f"arm {cell.n} 0 {max_wait:.1f} {IDLE}")
            receiver.expect("armed", 10)
            pub = subprocess.Popen(
                orphan_proof(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC,
                              "-q", str(cell.qos), "-l", "-M", str(MOSQUITTO_PUB_INFLIGHT)]),
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            try:
                cpu0 = tree_cpu([pub.pid])
                # stdin stays open until the subscriber has everything: at EOF mosquitto_pub
                # disconnects and drops what it has not sent yet (a third of 100k at QoS 1).
                feeder = threading.Thread(target=feed, args=(pub, lines), daemon=True)
                feeder.start()
                done = receiver.expect("done", max_wait + 5)
                cell.runs.append(Run.of(done, tree_cpu([pub.pid]) - cpu0))
                cell.peak_rss = max(cell.peak_rss, tree_peak_rss([pub.pid]))
            finally:
                stop(pub, 2)
            if cell.runs[-1].delivered < cell.n:
                break

    def _file_runs(self, cell: Cell, blaster: Child, watcher: FileWatcher,
                   procs: list[Any]) -> None:
        pids = [proc.pid for proc in procs]
        for _ in range(self.plan.runs):
            max_wait = self._max_wait(cell.n)
            base = watcher.poll()
            cpu0 = tree_cpu(pids)
            blaster.send("blast")
            deadline = time.monotonic() + max_wait
            count, first, first_count, last = base, 0.0, base, 0.0
            while count - base < cell.n and time.monotonic() < deadline:
                time.sleep(0.002)
                now_count, now = watcher.poll(), time.monotonic()
                if now_count != count:
                    count, last = now_count, now
                    if not first:
                        first, first_count = now, now_count
                elif first and now - last > IDLE:
                    break
            run = Run(cell.n, count - base, 0, 0, last - first, tree_cpu(pids) - cpu0,
                      count - first_count)
            cell.runs.append(run)
            if run.delivered == 0:
                raise BenchError("nothing was written to the file")
            if run.delivered < run.expected:
                break
            blaster.expect("sent", 10)

    def _paced_round(self, cell: Cell, upstream: Child, receiver: Child, pids: list[int],
                     total: int, rate: float, seconds: float
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One steady round: the receiver armed for ``total``, the upstream sending ``rate``
        msgs/s for ``seconds``; the run (with its CPU) added to ``cell``. Returns the
        receiver's ``done`` and the upstream's ``sent`` events."""
        cpu0 = tree_cpu(pids)
        receiver.send(f"arm {total} 1 {seconds + 20:.1f} {IDLE}")
        receiver.expect("armed", 10)
        upstream.send(f"pace {rate} {seconds}")
        done = receiver.expect("done", seconds + 25)
        cell.runs.append(Run.of(done, tree_cpu(pids) - cpu0))
        sent = upstream.expect("sent", 10)
        if "p99_ms" not in done:
            raise BenchError("no message came through")
        return done, sent

    def _latency_runs(self, cell: Cell, blaster: Child, receiver: Child,
                      procs: list[Any]) -> None:
        """Medians of the runs' percentiles: one scheduling hiccup should not make the figure."""
        seconds = self.plan.latency_seconds
        total = int(LATENCY_RATE * seconds)
        pids = [proc.pid for proc in procs]
        found: list[dict[str, float]] = []
        for _ in range(self.plan.runs):
            if self.left() < seconds + 10:
                break
            done, _ = self._paced_round(cell, blaster, receiver, pids, total, LATENCY_RATE,
                                        seconds)
            found.append(done)
        if not found:
            raise BenchError("no time left for a latency run")
        cell.latency = {k: statistics.median(d[k] for d in found)
                        for k in ("p50_ms", "p99_ms", "p999_ms")}
        cell.latency["max_ms"] = max(d["max_ms"] for d in found)


class FileWatcher:
    """Counts the lines a file sink has written, leaving out prime messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.lines = 0
        self.primes = 0

    def poll(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(data)
        chunk = self.rest + data
        lines = chunk.split(b"\n")
        self.rest = lines.pop()
        primes = sum(1 for line in lines if b'"seq":-' in line)
        self.primes += primes
        self.lines += len(lines) - primes
        return self.lines

    def poll_event(self, ev: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        before = self.primes
        while time.monotonic() < deadline:
            self.poll()
            if self.primes > before:
                return True
            time.sleep(0.01)
        return False


def stop_all(procs: list[Any]) -> None:
    for proc in procs:
        stop(proc)


def feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.write(data)
        proc.stdin.flush()


def check_alive(procs: list[Any], logs: list[Path]) -> None:
    for proc in procs:
        if proc.poll() is not None:
            raise BenchError(f"the pipeline exited with code {proc.returncode}"
                             f" ({last_words(logs)})")


def last_words(logs: list[Path]) -> str:
    for log in reversed(logs):
        words = tail(log, 2)
        if words:
            return f"{log.name}: {words}"
    return "no output"


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="one small run per cell (< 2 minutes): checks the harness works")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        choices=sorted([*BY_NAME, "fleet", "pool"]),
                        help="run only this pipeline (repeatable; `fleet` is both fleet"
                        " pipelines): " + ", ".join(sorted([*BY_NAME, "fleet"])))
    parser.add_argument("--runs", type=int, help="runs per cell (default 3, quick 1)")
    parser.add_argument("--n", type=int, help="messages per run at 100 B (1 KiB moves half)")
    parser.add_argument("--fleet-seconds", type=float,
                        help="length of the fleet cells' steady round (default 60, quick 5)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (configs and every process's log)")
    args = parser.parse_args(argv)
    n100 = args.n or (5_000 if args.quick else 100_000)
    return Plan(
        quick=args.quick,
        runs=max(1, min(args.runs or (1 if args.quick else 3), 10)),
        n={100: n100, 1024: max(1000, n100 // 2)},
        latency_seconds=1.0 if args.quick else 5.0,
        idle_sources=100 if args.quick else 1000,
        fleet_seconds=max(1.0, min(args.fleet_seconds or (5.0 if args.quick else 60.0), 600.0)),
        budget=150.0 if args.quick else 22 * 60.0,
        only=set(args.only),
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ws-bridge-bench-"))
    out_dir = BENCH / "out"
    out_dir.mkdir(exist_ok=True)
    bench = Bench(plan, workdir)
    chosen = [p for p in [*PIPELINES, *DEFAULT_BROKER_PIPELINES, *AB_PIPELINES]
              if p.name in plan.only or (not plan.only and p not in AB_PIPELINES)]
    with_file = not plan.only or FILE_PIPELINE.name in plan.only
    fleet = [p for p in FLEET_PIPELINES if p.name in plan.only or (
        (not plan.only or "fleet" in plan.only) and p.name != "ws-bridge-fleet-base")]
    try:
        prepare([*chosen, FILE_PIPELINE, *fleet], out_dir / "install.log")
        print(f"bench: {'quick' if plan.quick else 'full'} pass, {plan.runs} run(s) per cell,"
              f" budget {plan.budget:.0f} s, work dir {workdir}", flush=True)
        for size in SIZES:
            for qos in QOSES:
                print(f"{size} B, QoS {qos}:", flush=True)
                for p in chosen:
                    bench.cell(p, size, qos)
        steps = [p for p in STEP_PIPELINES if not plan.only or p.name in plan.only]
        if steps:
            print(f"route steps, {STEP_CELL[0]} B QoS {STEP_CELL[1]}:", flush=True)
        for p in steps:
            bench.cell(p, *STEP_CELL)
        if with_file:
            print("file sink:", flush=True)
            for size in SIZES:
                bench.cell(FILE_PIPELINE, size, 0)
        if fleet:
            print(f"fleet: {FLEET_SOURCES} sources x {FLEET_RATE} msgs/s of {FLEET_SIZE} B,"
                  f" {plan.fleet_seconds:g} s:", flush=True)
        for qos in QOSES:
            for p in fleet:
                bench.cell(p, FLEET_SIZE, qos)
        if not plan.only or POOL_PIPELINE.name in plan.only or "pool" in plan.only:
            print(f"pool: {POOL_ITEMS} items x 1 msg/s over {POOL_CONNECTIONS} connections,"
                  f" {plan.fleet_seconds:g} s:", flush=True)
            bench.cell(POOL_PIPELINE, POOL_SIZE, 0)
        idle = [p for p in IDLE_PIPELINES if not plan.only or p.name in plan.only]
        if idle:
            print("memory with idle connections:", flush=True)
        for p in idle:
            bench.cell(p, 0, 0)
        latency = [BY_NAME[n] for n in LATENCY_PIPELINES if not plan.only or n in plan.only]
        if latency:
            print(f"latency at {LATENCY_RATE}/s:", flush=True)
        for p in latency:
            for qos in QOSES:
                if p.name == "node-red" and qos == 1:
                    continue
                bench.cell(p, 100, qos, latency=True)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what was measured", flush=True)
    finally:
        if not plan.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = render(plan, bench.cells, bench.started, machine())
    print()
    print(report)
    full = not plan.quick and not plan.only
    target = BENCH / "RESULTS.md" if full else out_dir / "RESULTS-partial.md"
    target.write_text(report)
    (out_dir / "results.json").write_text(json.dumps(
        {"plan": {**asdict(plan), "only": sorted(plan.only)},
         "cells": [{**asdict(c), "rate": c.rate, "lost": c.lost, "cpu_per_100k": c.cpu_per_100k}
                   for c in bench.cells]}, indent=1))
    print(f"written to {target.relative_to(BENCH.parent)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
