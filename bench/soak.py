"""Soak test: RSS of ws-bridge with one busy source over a long steady run.

ws-bridge (one source, one MQTT route) gets a steady stream from the blaster's ``pace``: 100 B
messages, by default 10,000 msgs/s at QoS 1 for 10 minutes, sent in rounds of a minute that the
counting subscriber checks for loss behind a private Mosquitto. The ws-bridge process's VmRSS is
sampled every few seconds; the report gives RSS after the warm-up (a minute, or a quarter of a
shorter run), at the end, the peak (VmHWM), the least-squares slope over the post-warm-up samples
in KB/minute, messages sent and delivered, and ws-bridge's CPU seconds. It goes to bench/SOAK.md
for a complete run of 10 minutes or more, else bench/out/SOAK-partial.md; the samples go to
bench/out/soak-samples.csv. Exit status 1 if ws-bridge died, a message was lost (the run stops)
or the rate was not sustained (a round's last message came LAG_MAX after the upstream sent it).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import BENCH, PYTHON, BenchError, Broker, Child, tree_cpu, tree_peak_rss, tree_rss
from pipelines import SUBSCRIPTION, Ctx, start_ws_bridge, start_ws_bridge_features
from report import machine
from run import BROKER_UNLIMITED, IDLE, check_alive, last_words, stop_all

SAMPLE_EVERY = 5.0  # seconds between RSS samples
CHUNK = 60.0  # seconds of stream per subscriber round (one progress line each)
LAG_MAX = 2.0  # the last message of a chunk may arrive this long after the upstream sent it
TARGET_MB = 50.0  # the target: RSS with one busy source at or below 50 MB
MB = 1 << 20


class Soak:
    """One soak run: its processes, RSS samples and figures (kept when the run fails midway)."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.procs: list[Any] = []
        self.logs: list[Path] = []
        self.pid = 0
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int]] = []  # (seconds into the stream, RSS bytes)
        self.next_sample = 0.0
        self.completed = False  # the stream ran to its end
        self.fig: dict[str, float] = dict.fromkeys(
            ("sent", "delivered", "duplicates", "worst_lag", "slow"), 0)

    def tick(self) -> None:
        """Check ws-bridge is alive and take an RSS sample when one is due."""
        check_alive(self.procs, self.logs)
        now = time.monotonic() - self.t0
        if now >= self.next_sample:
            self.samples.append((now, tree_rss([self.pid])))
            self.next_sample = now + SAMPLE_EVERY

    def wait(self, child: Child, ev: str, timeout: float) -> dict[str, Any]:
        """The next ``ev`` event of ``child``, sampling meanwhile; BenchError on timeout/exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick()
            try:
                event = child.events.get(timeout=0.5)
            except queue.Empty:
                continue
            if event is None:
                raise BenchError(f"{child.name} exited ({last_words([child.log])})")
            if event.get("ev") == "error":
                raise BenchError(f"{child.name}: {event.get('reason')}")
            if event.get("ev") == ev:
                return event
        raise BenchError(f"{child.name}: no {ev!r} within {timeout:.0f} s")

    def go(self, stack: contextlib.ExitStack) -> None:
        args, workdir, fig = self.args, self.workdir, self.fig
        broker = Broker(workdir, BROKER_UNLIMITED)
        stack.callback(broker.close)
        sub = self.child(stack, "subscriber", "--port", str(broker.port), "--topic",
                         SUBSCRIPTION, "--qos", "0")
        sub.expect("ready", 10)
        blaster = self.child(stack, "blaster", "--size", "100", "--count", "0")
        ws_url = f"ws://127.0.0.1:{blaster.expect('listening', 60)['port']}/"
        ctx = Ctx(workdir, ws_url, broker.port, args.qos, workdir / "sink.jsonl")
        self.procs = (start_ws_bridge_features if args.features else start_ws_bridge)(ctx)
        stack.callback(stop_all, self.procs)
        self.logs, self.pid = ctx.logs, self.procs[0].pid
        self.wait(blaster, "connected", 30)
        for _ in range(20):  # seq -1 until it comes out of the far end: every hop is connected
            blaster.send("prime")
            if sub.poll_event("primed", 1.0):
                break
            check_alive(self.procs, self.logs)
        else:
            raise BenchError(f"nothing came through within 20 s ({last_words(self.logs)})")
        time.sleep(0.3)  # let a second, late prime land before counting starts
        total, done_s = args.minutes * 60, 0.0
        self.t0, self.next_sample = time.monotonic(), 0.0
        self.samples.clear()  # only the stream's samples count
        cpu0 = tree_cpu([self.pid])
        while done_s < total - 0.5:
            seconds = min(CHUNK, total - done_s)
            sub.send(f"arm {int(args.rate * seconds)} 0 {seconds + 30:.1f} {IDLE}")
            sub.expect("armed", 10)
            cpu_a, wall_a = tree_cpu([self.pid]), time.monotonic()
            blaster.send(f"pace {args.rate} {seconds}")
            sent = self.wait(blaster, "sent", seconds * 1.5 + 10)
            got = self.wait(sub, "done", 40)
            cpu = 100 * (tree_cpu([self.pid]) - cpu_a) / (time.monotonic() - wall_a)
            lag = max(0.0, got["last"] - sent["t1"])  # both are CLOCK_MONOTONIC on Linux
            slow = lag > LAG_MAX or sent["t1"] - sent["t0"] > seconds * 1.05 + 0.5
            done_s += seconds
            for key, value in (("sent", sent["count"]), ("delivered", got["unique"]),
                               ("duplicates", got["duplicates"]), ("slow", slow)):
                fig[key] += value
            fig["worst_lag"] = max(fig["worst_lag"], lag)
            rate = got["unique"] / max(1e-9, got["last"] - got["first"])
            print(f"  {done_s / 60:5.1f}/{args.minutes:g} min: delivered {got['unique']:,}/"
                  f"{sent['count']:,} ({rate:,.0f}/s), lag {lag:.2f} s, RSS"
                  f" {self.samples[-1][1] / MB:.1f} MB, ws-bridge CPU {cpu:.0f} %"
                  f"{'  SLOW' if slow else ''}", flush=True)
            if got["unique"] < sent["count"]:  # stragglers would blur the next count: stop
                raise BenchError(f"{sent['count'] - got['unique']:,} messages lost")
        self.next_sample = 0.0
        self.tick()  # the final sample
        fig["cpu"] = tree_cpu([self.pid]) - cpu0
        fig["seconds"] = time.monotonic() - self.t0
        fig["hwm"] = tree_peak_rss([self.pid])
        self.completed = True

    def child(self, stack: contextlib.ExitStack, name: str, *args: str) -> Child:
        child = Child(name, [PYTHON, str(BENCH / f"{name}.py"), *args],
                      self.workdir / f"{name}.log")
        stack.callback(child.close)
        return child


def slope_kb_per_min(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time, in KB per minute."""
    with contextlib.suppress(statistics.StatisticsError):  # fewer than 2 samples
        fit = statistics.linear_regression([t for t, _ in points], [r for _, r in points])
        return fit.slope * 60 / 1024
    return None


def render(run: Soak, error: str) -> str:
    args, f, info = run.args, run.fig, machine()
    what = "`when`, templated topic, MQTT 5 properties" if args.features else "static topic"
    lines = ["# ws-bridge soak: one busy source", "",
             f"- {info['date']}; {info['nproc']} cores, {info['cpu']}; Python {info['python']},"
             f" websockets {info['websockets']}, gmqtt {info['gmqtt']}, uvloop {info['uvloop']},"
             f" orjson {info['orjson']}, Mosquitto {info['mosquitto']}",
             f"- {args.minutes:g} min at {args.rate:,.0f} msgs/s, 100 B, QoS {args.qos}, {what};"
             f" private Mosquitto, counting subscriber; ws-bridge's VmRSS sampled every"
             f" {SAMPLE_EVERY:g} s (bench/soak.py)", ""]
    if error:
        lines += [f"**FAILED**: {error}", ""]
        if not run.completed:
            lines += ["Figures up to the failure; an unfinished minute is not counted.", ""]
    if not run.samples:
        return "\n".join(lines) + "\n"
    warmup = min(60.0, args.minutes * 15)
    post = [(t, r) for t, r in run.samples if t >= warmup] or run.samples[-1:]
    slope = slope_kb_per_min(post)
    peak = max(f.get("hwm", 0), *(r for _, r in run.samples))
    sent, delivered, cpu = int(f["sent"]), int(f["delivered"]), f.get("cpu")
    rows = [
        (f"RSS after {warmup:g} s of warm-up", f"{post[0][1] / MB:.1f} MB"),
        ("RSS at the end", f"{run.samples[-1][1] / MB:.1f} MB"),
        ("peak RSS (VmHWM, start-up included)" if "hwm" in f else "peak RSS (sampled)",
         f"{peak / MB:.1f} MB"),
        (f"RSS slope after warm-up ({len(post)} samples)",
         "n/a" if slope is None else f"{slope:+.1f} KB/min"),
        ("messages sent / delivered", f"{sent:,} / {delivered:,}"
         + (f" (**lost {sent - delivered:,}**)" if delivered < sent else "")
         + (f", {int(f['duplicates']):,} duplicates" if f["duplicates"] else "")),
        ("worst lag of a minute's last message", f"{f['worst_lag']:.2f} s"),
        ("ws-bridge CPU during the stream", "n/a" if cpu is None else
         f"{cpu:.1f} s ({100 * cpu / f['seconds']:.0f} % of a core)"),
        (f"target: RSS at or below {TARGET_MB:g} MB",
         "met" if peak <= TARGET_MB * MB else "**not met**"),
    ]
    lines += ["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10_000.0, help="msgs/s (default 10000)")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--features", action="store_true",
                        help="the route with `when`, a templated topic and MQTT 5 properties")
    args = parser.parse_args(argv)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ws-bridge-soak-"))
    print(f"soak: {args.minutes:g} min at {args.rate:,.0f} msgs/s, 100 B, QoS {args.qos}"
          f"{', features' if args.features else ''}; work dir {workdir}", flush=True)
    run, error = Soak(args, workdir), ""
    try:
        with contextlib.ExitStack() as stack:
            run.go(stack)
    except BenchError as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error = "interrupted"
    if not error and run.fig["slow"]:
        error = f"the rate was not sustained in {run.fig['slow']:.0f} minute(s)"
    report = render(run, error)
    full = args.minutes >= 10 and run.completed
    target = BENCH / "SOAK.md" if full else out / "SOAK-partial.md"
    target.write_text(report)
    (out / "soak-samples.csv").write_text(
        "seconds,rss_kb\n" + "".join(f"{t:.1f},{r // 1024}\n" for t, r in run.samples))
    print(f"\n{report}\nwritten to {target.relative_to(BENCH.parent)}", flush=True)
    if error:
        print(f"logs kept in {workdir}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
