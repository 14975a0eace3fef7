"""The bench's figures (plan, runs, cells) and the markdown report made of them."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from harness import PYTHON, mosquitto_binary
from pipelines import (
    AB_PIPELINES,
    DEFAULT_BROKER_PIPELINES,
    FILE_PIPELINE,
    FLEET_PIPELINES,
    IDLE_PIPELINES,
    LATENCY_ONLY,
    PIPELINES,
    POOL_PIPELINE,
    RED_JS,
    STEP_CELL,
    STEP_PIPELINES,
    Pipeline,
    node_binary,
)

SIZES = (100, 1024)
QOSES = (0, 1)
LATENCY_PIPELINES = ("ws-bridge", "ws-bridge-c0", "minimal", "node-red")
LATENCY_RATE = 10_000
FLEET_SOURCES, FLEET_RATE, FLEET_SIZE = 100, 100, 200  # sources, msgs/s each, bytes
# The pool: one source, items over connections, each item 1 msg/s (10k msgs/s in all)
POOL_ITEMS, POOL_CONNECTIONS, POOL_SIZE = 10_000, 20, 100


@dataclass
class Plan:
    quick: bool
    runs: int
    n: dict[int, int]  # messages per run, by payload size
    latency_seconds: float
    idle_sources: int
    fleet_seconds: float
    budget: float  # seconds for the whole bench, installs included
    only: set[str] = field(default_factory=set)
    keep: bool = False


@dataclass
class Run:
    expected: int
    delivered: int
    duplicates: int
    reordered: int
    seconds: float  # from the first arrival to the last
    cpu: float
    counted: int = 0  # messages that arrived after the first arrival: they took ``seconds``

    @classmethod
    def of(cls, done: dict[str, Any], cpu: float) -> Run:
        return cls(done["expected"], done["unique"], done["duplicates"], done["reordered"],
                   done["last"] - done["first"], cpu, done["unique"] - done["first_n"])

    @property
    def rate(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Cell:
    pipeline: str
    size: int
    qos: int
    n: int
    runs: list[Run] = field(default_factory=list)
    peak_rss: int = 0
    rss_now: int = 0  # idle cells: the resident set once every connection is up and settled
    mode: str = "throughput"  # or "latency"
    status: str = "ok"  # ok | failed | unavailable | skipped | n/a
    reason: str = ""
    latency: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs) if self.runs else 0.0

    @property
    def lost(self) -> int:
        return sum(r.expected - r.delivered for r in self.runs)

    @property
    def cpu_per_100k(self) -> float:
        if not self.runs:
            return 0.0
        return statistics.median(r.cpu * 100_000 / max(1, r.delivered) for r in self.runs)


def describe(cell: Cell) -> str:
    if cell.status != "ok":
        return f"{cell.status}{': ' + cell.reason if cell.reason else ''}"
    if cell.rss_now:
        return f"RSS {cell.rss_now / 1e6:.0f} MB, peak {cell.peak_rss / 1e6:.0f} MB"
    if cell.mode in ("fleet", "pool") and cell.runs:
        run = cell.runs[0]
        text = (f"{run.delivered}/{run.expected} delivered, CPU {run.cpu:.1f} s, p50"
                f" {cell.latency['p50_ms']:.2f} ms, p99 {cell.latency['p99_ms']:.2f} ms")
    elif cell.latency:
        text = f"p50 {cell.latency['p50_ms']:.2f} ms, p99 {cell.latency['p99_ms']:.2f} ms"
    else:
        text = f"{cell.rate / 1000:.1f}k msgs/s, {cell.cpu_per_100k:.2f} CPU s/100k"
    text += f", peak RSS {cell.peak_rss / 1e6:.0f} MB"
    if cell.lost:
        text += f", LOST {cell.lost}"
    return text


def kilo(rate: float) -> str:
    return f"{rate / 1000:.1f}k" if rate < 100_000 else f"{rate / 1000:.0f}k"


def find(cells: list[Cell], name: str, size: int, qos: int,
         mode: str = "throughput") -> Cell | None:
    for c in cells:
        if (c.pipeline, c.size, c.qos, c.mode) == (name, size, qos, mode):
            return c
    return None


def throughput_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    if cell.status != "ok":
        return cell.status
    text = kilo(cell.rate)
    if cell.lost:
        text += f" (lost {cell.lost})"
    return text


def steps_table(cells: list[Cell]) -> list[str]:
    """Issue 17's route steps, each on its own against the plain ws-bridge row (target: at most
    25 % slower; for ``each``, per delivered element)."""
    size, qos = STEP_CELL
    steps = [(p, find(cells, p.name, size, qos)) for p in STEP_PIPELINES]
    if not any(c for _, c in steps):
        return []
    plain = find(cells, "ws-bridge", size, qos)
    out = ["", f"## Route steps, {size} B QoS {qos} (msgs/s delivered, median)", "",
           "| route | msgs/s | cost against the plain route | CPU s/100k |", "|---|---|---|---|",
           f"| plain route (the **ws-bridge** row) | {throughput_text(plain)} | - |"
           f" {plain.cpu_per_100k:.2f} |" if plain and plain.status == "ok" else
           "| plain route (the **ws-bridge** row) | not run | - | - |"]
    for p, c in steps:
        if c is None:
            continue
        ok = c.status == "ok" and plain is not None and plain.status == "ok" and plain.rate
        cost = f"{(1 - c.rate / plain.rate) * 100:.0f} %" if ok and plain else "-"
        cpu = f"{c.cpu_per_100k:.2f}" if c.status == "ok" else "-"
        out.append(f"| {p.label} | {throughput_text(c)} | {cost} | {cpu} |")
    return out


def ratio(cell: Cell | None, ref: Cell | None) -> str:
    if cell is None or ref is None or cell.status != "ok" or ref.status != "ok" or not ref.rate:
        return "-"
    return f"{cell.rate / ref.rate:.2f}x"


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    info["mosquitto"] = version([mosquitto_binary(), "-h"], 0, 2)
    info["node"] = version([node_binary(), "--version"], 0, 0)
    with contextlib.suppress(OSError, ValueError):
        package = json.loads((RED_JS.parent / "package.json").read_text())
        info["node-red"] = package["version"]
    for module in ("websockets", "gmqtt", "aiomqtt", "uvloop", "orjson"):
        probe = subprocess.run([PYTHON, "-c", f"import {module}; print({module}.__version__)"],
                               capture_output=True, text=True, check=False)
        info[module] = probe.stdout.strip() if probe.returncode == 0 else "not installed"
    return info


def version(cmd: list[str], line: int, word: int) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        return (out.stdout or out.stderr).splitlines()[line].split()[word]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def render(plan: Plan, cells: list[Cell], started: float, info: dict[str, str]) -> str:
    chosen = [p for p in [*PIPELINES, *AB_PIPELINES[:1]] if p.name in plan.only
              or (not plan.only and p not in AB_PIPELINES)]
    labels = {p.name: p.label for p in [*PIPELINES, *AB_PIPELINES[:1], FILE_PIPELINE,
                                        *IDLE_PIPELINES]}
    labels.update({p.name: p.label for p in [*FLEET_PIPELINES, POOL_PIPELINE, *LATENCY_ONLY]})
    labels.update({p.name: f"{p.label}, broker at defaults"
                   for p in [*DEFAULT_BROKER_PIPELINES, *AB_PIPELINES[1:]]})
    combos = [(s, q) for s in SIZES for q in QOSES]
    heads = [f"{'100 B' if s == 100 else '1 KiB'} QoS {q}" for s, q in combos]
    out = [f"# ws-bridge bench results{' (quick smoke pass, not figures)' if plan.quick else ''}",
           "",
           f"- date: {info['date']}",
           f"- machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}",
           f"- Python {info['python']}, websockets {info['websockets']}, gmqtt {info['gmqtt']},"
           f" aiomqtt {info['aiomqtt']}, uvloop {info['uvloop']}, orjson {info['orjson']}",
           f"- Mosquitto {info['mosquitto']}, node {info['node']},"
           f" Node-RED {info.get('node-red', 'not installed')}",
           f"- {plan.runs} run(s) per cell, median shown; messages per run: "
           + ", ".join(f"{plan.n[s]:,} at {s} B" for s in SIZES)
           + " (the naive peer moves a fifth of that); loopback, a private Mosquitto per cell",
           f"- bench wall time: {time.monotonic() - started:.0f} s",
           "- the broker has no Receive Maximum and unbounded queues (`max_inflight_messages 0`),"
           " except in the \"broker at its defaults\" tables; the counting subscriber"
           " takes QoS 0; the QoS columns are the pipeline's publishes (see bench/README.md)",
           "", "## Throughput, one source → MQTT (msgs/s, median)", "",
           "| pipeline | " + " | ".join(heads) + " |",
           "|---|" + "---|" * len(heads)]
    for p in chosen:
        row = [throughput_text(find(cells, p.name, s, q)) for s, q in combos]
        out.append(f"| {p.label} | " + " | ".join(row) + " |")
    refs = (("node-red", "Node-RED"), ("mosquitto-pub", "the `mosquitto_pub` ceiling"))
    for ref_name, title in refs:
        if ref_name not in {p.name for p in chosen}:
            continue
        out += ["", f"### Ratio to {title}", "", "| pipeline | " + " | ".join(heads) + " |",
                "|---|" + "---|" * len(heads)]
        for p in chosen:
            if p.name == ref_name:
                continue
            row = [ratio(find(cells, p.name, s, q), find(cells, ref_name, s, q))
                   for s, q in combos]
            out.append(f"| {p.label} | " + " | ".join(row) + " |")
    defaults = [p for p in [*DEFAULT_BROKER_PIPELINES, *AB_PIPELINES[1:]]
                if p.name in plan.only or (not plan.only and p not in AB_PIPELINES)]
    if defaults:
        out += default_broker_tables(defaults, cells, heads, combos)
    out += ["", "## CPU seconds per 100k messages (all processes of the pipeline) and peak RSS",
            "", "| pipeline | " + " | ".join(heads) + " | peak RSS |",
            "|---|" + "---|" * (len(heads) + 1)]
    for p in [*chosen, *defaults, FILE_PIPELINE]:
        found = [find(cells, p.name, s, q) for s, q in combos]
        if not any(found):
            continue
        row = [f"{c.cpu_per_100k:.2f}" if c and c.status == "ok" else "-" for c in found]
        rss = max((c.peak_rss for c in found if c), default=0)
        out.append(f"| {labels[p.name]} | " + " | ".join(row)
                   + (f" | {rss / 1e6:.0f} MB |" if rss else " | - |"))
    file_cells = [c for c in cells if c.pipeline == FILE_PIPELINE.name]
    if file_cells:
        out += ["", "## Throughput, one source → file sink (ws-bridge)", "",
                "| payload | msgs/s | MB/s | CPU s/100k | peak RSS |", "|---|---|---|---|---|"]
        for c in file_cells:
            if c.status == "ok":
                out.append(f"| {c.size} B | {throughput_text(c)} | {c.rate * c.size / 1e6:.1f}"
                           f" | {c.cpu_per_100k:.2f} | {c.peak_rss / 1e6:.0f} MB |")
            else:
                out.append(f"| {c.size} B | {c.status} | - | - | - |")
    out += steps_table(cells)
    if any(c.mode == "latency" for c in cells):
        out += ["", f"## End-to-end latency at a steady {LATENCY_RATE:,} msgs/s, 100 B (ms; medians"
                f" of {plan.runs} run(s) of {plan.latency_seconds:g} s, max of all)", "",
                "| pipeline | QoS 0 p50 | QoS 0 p99 | QoS 0 max"
                " | QoS 1 p50 | QoS 1 p99 | QoS 1 max |",
                "|---|---|---|---|---|---|---|"]
        for name in LATENCY_PIPELINES:
            row = []
            for q in QOSES:
                lc = find(cells, name, 100, q, "latency")
                if lc is None:
                    row += ["-"] * 3
                elif lc.status != "ok" or not lc.latency:
                    row += [lc.status, "-", "-"]
                else:
                    row += [f"{lc.latency['p50_ms']:.2f}", f"{lc.latency['p99_ms']:.2f}",
                            f"{lc.latency['max_ms']:.1f}"]
            if any(x != "-" for x in row):
                out.append(f"| {labels[name]} | " + " | ".join(row) + " |")
    out += fleet_table(plan, cells)
    out += pool_table(plan, cells)
    idle = [c for c in cells if c.pipeline in {p.name for p in IDLE_PIPELINES}]
    if idle:
        out += ["", "## Memory with idle connections", "",
                "| process | connections | RSS once settled | peak RSS |", "|---|---|---|---|"]
        for c in idle:
            if c.status == "ok":
                out.append(f"| {labels[c.pipeline]} | {c.n} | {c.rss_now / 1e6:.0f} MB"
                           f" | {c.peak_rss / 1e6:.0f} MB |")
            else:
                out.append(f"| {labels[c.pipeline]} | {c.n} | {c.status} | - |")
    out += ["", "## Targets (issue 7)", ""]
    if plan.quick:
        out += ["(a quick pass: too few messages, cold pipelines; these say nothing)", ""]
    out += targets(cells)
    grouped: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        where = f"{c.size} B QoS {c.qos}{' latency' if c.mode == 'latency' else ''}"
        if c.pipeline in {p.name for p in IDLE_PIPELINES}:
            where = f"{c.n} connections"
        if c.reason:
            grouped.setdefault((labels[c.pipeline], f"{c.status}: {c.reason}"), []).append(where)
        if c.lost:
            what = f"LOST {c.lost} of {sum(r.expected for r in c.runs)} messages"
            grouped.setdefault((labels[c.pipeline], what), []).append(where)
    if grouped:
        out += ["", "## Notes", ""]
        out += [f"- {label} ({', '.join(where)}): {what}"
                for (label, what), where in grouped.items()]
    return "\n".join(out) + "\n"


def fleet_table(plan: Plan, cells: list[Cell]) -> list[str]:
    """The fleet cells: many sources at a steady rate each, the pipeline's cost over the round."""
    found = [c for c in cells if c.mode == "fleet"]
    if not found:
        return []
    out = ["", f"## The fleet: {FLEET_SOURCES} sources, each its own upstream connection at"
           f" {FLEET_RATE} msgs/s of {FLEET_SIZE} B JSON, steady for {plan.fleet_seconds:g} s",
           "", "Broker at its defaults (Receive Maximum 20), Nagle off in the broker as for the"
           " latency cells. CPU: user + system seconds of the pipeline's processes over the"
           " round; peak RSS: VmHWM, start-up included; latency from the upstream's write to"
           " the subscriber's read.", "",
           "| pipeline | QoS | delivered / sent | CPU s | CPU % of a core | peak RSS | p50 ms"
           " | p99 ms | max ms |", "|---|---|---|---|---|---|---|---|---|"]
    labels = {p.name: p.label for p in FLEET_PIPELINES}
    order = [p.name for p in FLEET_PIPELINES]
    for c in sorted(found, key=lambda c: (c.qos, order.index(c.pipeline))):
        if c.status != "ok" or not c.runs:
            out.append(f"| {labels[c.pipeline]} | {c.qos} | {c.status} {c.reason[:80]}"
                       " | - | - | - | - | - | - |")
            continue
        run, lat = c.runs[0], c.latency
        out.append(f"| {labels[c.pipeline]} | {c.qos} | {run.delivered:,} / {run.expected:,}"
                   f" | {run.cpu:.1f} | {100 * run.cpu / plan.fleet_seconds:.0f} %"
                   f" | {c.peak_rss / 1e6:.0f} MB | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f}"
                   f" | {lat['max_ms']:.1f} |")
    return out


def pool_table(plan: Plan, cells: list[Cell]) -> list[str]:
    """The pool cell against issue 16's targets: one pooled source, POOL_ITEMS items over
    POOL_CONNECTIONS connections, each item 1 msg/s, into MQTT at QoS 0."""
    pool = find(cells, POOL_PIPELINE.name, POOL_SIZE, 0, "pool")
    if pool is None:
        return []
    out = ["", f"## The pool: one source, {POOL_ITEMS:,} items over {POOL_CONNECTIONS}"
           f" connections, each item 1 msg/s of {POOL_SIZE} B ({POOL_ITEMS:,} msgs/s), QoS 0,"
           f" {plan.fleet_seconds:g} s", ""]
    if pool.status != "ok" or not pool.runs:
        return [*out, f"- {pool.status}: {pool.reason}"]
    run, lat = pool.runs[0], pool.latency
    per_msg = run.cpu / max(1, run.delivered) * 1e6
    out += ["| delivered / sent | CPU s | CPU µs per message | peak RSS | p50 ms | p99 ms |"
            " max ms |", "|---|---|---|---|---|---|---|",
            f"| {run.delivered:,} / {run.expected:,} | {run.cpu:.1f} | {per_msg:.1f}"
            f" | {pool.peak_rss / 1e6:.0f} MB | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f}"
            f" | {lat['max_ms']:.1f} |", "", "Targets (issue 16):", ""]
    out.append(f"- all delivered: {'met' if run.delivered == run.expected else 'NOT met'}")
    out.append(f"- peak RSS {pool.peak_rss / 1e6:.0f} MB (target ≤ 120 MB):"
               f" {'met' if pool.peak_rss <= 120e6 else 'NOT met'}")
    out.append(f"- p99 {lat['p99_ms']:.2f} ms (target ≤ 5 ms):"
               f" {'met' if lat['p99_ms'] <= 5 else 'NOT met'}")
    single = find(cells, "ws-bridge", 100, 0, "latency")
    if single is not None and single.status == "ok" and single.runs:
        base = single.runs[0].cpu / max(1, single.runs[0].delivered) * 1e6
        out.append(f"- CPU per message {per_msg:.1f} µs, {per_msg / base:.2f}x the single"
                   f" source's {base:.1f} µs at {LATENCY_RATE:,} msgs/s 100 B QoS 0 (target ≤"
                   f" 1.5x): {'met' if per_msg <= 1.5 * base else 'NOT met'}")
    return out


def default_broker_tables(chosen: list[Pipeline], cells: list[Cell], heads: list[str],
                          combos: list[tuple[int, int]]) -> list[str]:
    """The same pipelines against Mosquitto at its defaults (Receive Maximum 20 for MQTT 5)."""
    out = ["", "## Throughput with the broker at its defaults (`max_inflight_messages 20`)", "",
           "Mosquitto announces Receive Maximum 20 to MQTT 5 clients (ws-bridge, gmqtt); MQTT"
           " 3.1.1 clients (Node-RED's MQTT.js, mosquitto_pub) get no window.", "",
           "| pipeline | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for p in chosen:
        row = [throughput_text(find(cells, p.name, s, q)) for s, q in combos]
        out.append(f"| {p.label} | " + " | ".join(row) + " |")
    if any(p.name == "node-red-rm20" for p in chosen):
        out += ["", "### Ratio to Node-RED, broker at its defaults", "",
                "| pipeline | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
        for p in chosen:
            if p.name != "node-red-rm20":
                row = [ratio(find(cells, p.name, s, q), find(cells, "node-red-rm20", s, q))
                       for s, q in combos]
                out.append(f"| {p.label} | " + " | ".join(row) + " |")
    return out


def targets(cells: list[Cell]) -> list[str]:
    def ok(c: Cell | None) -> bool:
        return c is not None and c.status == "ok" and not c.lost

    lines = []
    against = (("ws-bridge", "node-red", "", "target ≥ 1.2x", 1.2),
               ("ws-bridge-rm20", "node-red-rm20", "broker at its defaults, ",
                "issue 13: ahead", 1.0 + 1e-9))
    for name, ref, where, target, least in against:
        for s, q in [(s, q) for s in SIZES for q in QOSES]:
            mine, red = find(cells, name, s, q), find(cells, ref, s, q)
            if ok(mine) and ok(red):
                assert mine is not None and red is not None
                r = mine.rate / red.rate
                lines.append(f"- {where}{s} B QoS {q}: {r:.2f}x Node-RED ({target}):"
                             f" {'met' if r >= least else 'NOT met'}")
    mine, pub = find(cells, "ws-bridge", 100, 0), find(cells, "mosquitto-pub", 100, 0)
    if ok(mine) and ok(pub):
        assert mine is not None and pub is not None
        r = mine.rate / pub.rate
        lines.append(f"- 100 B QoS 0: {r:.2f}x the mosquitto_pub ceiling (target ≥ 0.6x):"
                     f" {'met' if r >= 0.6 else 'NOT met'}")
    for s, q in [(s, q) for s in SIZES for q in QOSES]:
        plain, rich = find(cells, "ws-bridge", s, q), find(cells, "ws-bridge-features", s, q)
        if ok(plain) and ok(rich):
            assert plain is not None and rich is not None
            cost = 1 - rich.rate / plain.rate
            lines.append(f"- cost of `when` + templated topic + MQTT 5 properties + dedup +"
                         f" sequence, {s} B QoS {q}: {cost:.0%} (target ≤ 25 %):"
                         f" {'met' if cost <= 0.25 else 'NOT met'}")
    lines += fleet_targets(cells)
    f = find(cells, FILE_PIPELINE.name, 100, 0)
    if ok(f):
        assert f is not None
        lines.append(f"- file sink 100 B: {kilo(f.rate)} msgs/s (target ≥ 200k):"
                     f" {'met' if f.rate >= 200_000 else 'NOT met'}")
        # The issue set 200k on a machine whose websockets ceiling was 326k: 0.61x of it.
        ceiling = find(cells, "ws-discard", 100, 0)
        if ok(ceiling):
            assert ceiling is not None
            r = f.rate / ceiling.rate
            lines.append(f"- file sink 100 B: {r:.2f}x this run's websockets ceiling (the 200k"
                         f" target was 0.61x of it in the issue's run): "
                         f"{'met' if r >= 0.61 else 'NOT met'}")
    for q, limit in ((0, 1.0), (1, 2.0)):
        c = find(cells, "ws-bridge", 100, q, "latency")
        if c is not None and c.latency:
            p99 = c.latency["p99_ms"]
            lines.append(f"- latency p99 QoS {q}: {p99:.2f} ms (target ≤ {limit:g} ms):"
                         f" {'met' if p99 <= limit else 'NOT met'}")
    mine, minimal = find(cells, "ws-bridge", 100, 0), find(cells, "minimal", 100, 0)
    if ok(mine) and ok(minimal):
        assert mine is not None and minimal is not None
        lines.append(f"- CPU per 100k (100 B QoS 0): {mine.cpu_per_100k:.2f} s vs the minimal"
                     f" gmqtt bridge's {minimal.cpu_per_100k:.2f} s:"
                     f" {'met' if mine.cpu_per_100k <= minimal.cpu_per_100k else 'NOT met'}")
        lines.append(f"- RSS with one busy source: {mine.peak_rss / 1e6:.0f} MB (target ≤ 50 MB):"
                     f" {'met' if mine.peak_rss <= 50e6 else 'NOT met'}")
        row = [c for c in cells if c.pipeline == "ws-bridge" and c.mode == "throughput" and ok(c)]
        if worst := max(row, key=lambda c: c.peak_rss, default=None):
            lines.append(f"- RSS peak over the ws-bridge row: {worst.peak_rss / 1e6:.0f} MB at"
                         f" {worst.size} B QoS {worst.qos}, a burst that outran the broker"
                         " waiting in the sink's queue (bounded by its queue settings)")
    idle = find(cells, "ws-bridge-idle", 0, 0)
    if ok(idle):
        assert idle is not None
        lines.append(f"- {idle.n} idle sources: {idle.rss_now / 1e6:.0f} MB (target ≤ 80 MB at"
                     f" 1000): {'met' if idle.rss_now <= 80e6 else 'NOT met'}")
    return lines or ["- ws-bridge did not produce figures in this run"]


def fleet_targets(cells: list[Cell]) -> list[str]:
    """Issue 13's fleet targets: all delivered, CPU and RSS below Node-RED's, p99 <= 2 ms."""
    lines = []
    for q in QOSES:
        mine = find(cells, "ws-bridge-fleet", FLEET_SIZE, q, "fleet")
        red = find(cells, "node-red-fleet", FLEET_SIZE, q, "fleet")
        if mine is None or mine.status != "ok" or not mine.runs:
            continue
        run = mine.runs[0]
        lines.append(f"- fleet QoS {q}: {run.delivered:,} of {run.expected:,} delivered (target:"
                     f" all): {'met' if run.delivered == run.expected else 'NOT met'}")
        p99 = mine.latency["p99_ms"]
        lines.append(f"- fleet QoS {q}: p99 {p99:.2f} ms (target ≤ 2 ms):"
                     f" {'met' if p99 <= 2.0 else 'NOT met'}")
        if red is not None and red.status == "ok" and red.runs:
            cpu, rss = run.cpu / max(red.runs[0].cpu, 1e-9), mine.peak_rss / max(red.peak_rss, 1)
            lines.append(f"- fleet QoS {q}: CPU {cpu:.2f}x and peak RSS {rss:.2f}x Node-RED's"
                         f" (target < 1x, aim 0.5x): {'met' if cpu < 1 and rss < 1 else 'NOT met'}")
    return lines
