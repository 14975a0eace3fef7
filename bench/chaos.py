"""The chaos soak (``make chaos``): three numbered streams through the real bridge into a
persistent broker while faults arrive at random: upstream kills and restarts, broker SIGKILLs,
bridge SIGKILLs, network partitions and reloads (tests/support/chaos.py has the world and the
claim).

``CHAOS_MINUTES`` (default 10) of stream and faults; ``CHAOS_SEED`` (random when unset, always
printed) replays a run's draws: the faults, their order, their targets and the pauses between
them (their exact moments follow the recoveries, which are events). ``CHAOS_RATE`` numbers per
second per source (default 20); ``CHAOS_KEEP=1`` keeps the work dir (every bridge process's log,
the broker's, the config) of a run that passed too. It reports sent, delivered, duplicates, the
longest delivery gap, the bridge's RSS over time and every fault, to bench/CHAOS.md for a run of
ten minutes or more, else bench/out/CHAOS-partial.md. Exit status 1 on any loss, a break in
first-seen order, a bridge that died by itself or did not recover, or an unclean final stop.
Needs root (network namespaces).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from report import machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.chaos import SOURCES, ChaosRun, Plan, Result  # noqa: E402

MB = 1024  # kB per MB


def rss_table(result: Result) -> list[str]:
    """RSS of the bridge per minute (min-max of the samples), and the processes behind it."""
    rows = ["| minute | RSS min-max (MB) | RSS last sample (MB) | bridge pids sampled |",
            "|---|---|---|---|"]
    by_minute: dict[int, list[tuple[int, int]]] = {}
    for t, pid, kb in result.rss:
        by_minute.setdefault(int(t // 60), []).append((pid, kb))
    for minute, samples in sorted(by_minute.items()):
        kbs = [kb for _, kb in samples if kb]
        pids = list(dict.fromkeys(pid for pid, _ in samples))
        span = f"{min(kbs) / MB:.1f}-{max(kbs) / MB:.1f}" if kbs else "n/a"
        last = f"{kbs[-1] / MB:.1f}" if kbs else "n/a"
        rows.append(f"| {minute}-{minute + 1} | {span} | {last} | {', '.join(map(str, pids))} |")
    return rows


def during(result: Result) -> str:
    """The faults that began within the longest delivery gap."""
    length, ended, _ = result.gap
    inside = [f"{f.kind} at {f.at:.0f} s" for f in result.faults
              if ended - length - 1 <= f.at <= ended]
    return f"; during {', '.join(inside)}" if inside else ""


CLAIM = """\
## What is checked

A number is *sent* once its upstream has made it, whether or not the bridge is connected then;
the run fails unless every number sent reaches the subscriber at least once, first seen in order
per source. Numbers in flight on the WebSocket, or in the bridge's memory (at most 5 ms of puts
not yet committed to the outbox), when the bridge is SIGKILLed are not lost: every upstream
replays its last two minutes of numbers on each new connection, as exchanges do, and `dedup`
drops those already delivered (a new bridge process starts with an empty dedup window, so the
replay after a bridge kill shows up as duplicates, nothing else does). What the outbox holds
survives bridge kills and broker outages. For the broker: Mosquitto 2.0 writes a QoS 1 publish
to each connected subscriber's socket before its PUBACK, and with `max_inflight_messages 0` it
holds none back in memory, so a SIGKILL loses nothing the bridge was told was taken; the
subscriber's persistent session (QoS 1, clean start off) is in the broker's persistence file,
saved by one clean stop at set-up, so a broker restarted after a SIGKILL queues for it from its
first publish on, and no broker kill comes before the subscriber is connected again.
"""


def render(result: Result, command: str) -> str:
    plan, info = result.plan, machine()
    sent, got = sum(result.sent.values()), sum(result.delivered.values())
    copies = sum(result.copies.values())
    lines = [
        "# ws-bridge chaos soak", "",
        f"- {info['date']}; {info['nproc']} cores, {info['cpu']}; Python {info['python']},"
        f" websockets {info['websockets']}, gmqtt {info['gmqtt']}, Mosquitto"
        f" {info['mosquitto']}",
        f"- command: `{command}`",
        f"- seed **{plan.seed}**; {plan.minutes:g} min of stream and faults"
        f" ({result.seconds:.0f} s with set-up and drain); {len(SOURCES)} sources at"
        f" {plan.rate:g} numbers/s each, replaying their last {plan.replay} on every"
        f" connection; QoS 1 MQTT sink with a durable outbox; partitions of"
        f" {plan.partition:g} s; pauses between faults {plan.pause[0]:g}-{plan.pause[1]:g} s",
        "",
    ]
    if not result.ok:
        lines += ["**FAILED**: " + "; ".join(result.failures()), ""]
    recov = sorted(f.recovered for f in result.faults if f.recovered is not None)
    rows = [
        ("sent (numbers made by the upstreams)", f"{sent:,}"
         + " (" + ", ".join(f"{s} {n:,}" for s, n in result.sent.items()) + ")"),
        ("delivered (distinct, at the subscriber)", f"{got:,}"),
        ("lost", f"{result.lost:,}"),
        ("first-seen order broken", str(sum(len(v) for v in result.out_of_order.values()))),
        ("duplicates (copies beyond the first)", f"{copies - got:,}"),
        ("duplicates after each kind of fault (until the next fault)",
         ", ".join(f"{k} {n:,}" for k, n in result.duplicates_by_kind().items())),
        ("longest delivery gap (between two new numbers of one source)",
         f"{result.gap[0]:.1f} s ({result.gap[2]}, ended {result.gap[1]:.0f} s into the run"
         f"{during(result)})"),
        ("faults", f"{len(result.faults)}: "
         + ", ".join(f"{k} {n}" for k, n in result.kinds().items())),
        ("recovery after a fault (every source delivering again)",
         f"median {recov[len(recov) // 2]:.1f} s, longest {recov[-1]:.1f} s" if recov
         else "n/a"),
        ("bridge processes / upstream connections",
         f"{result.bridges} / {result.replays}"),
        ("final SIGTERM", f"exit {result.exit_code}"),
    ]
    lines += ["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    lines += [CLAIM]
    lines += ["## RSS of the bridge over time", "", "Sampled every"
              f" {plan.sample_every:g} s from /proc; a minute with a bridge kill includes the"
              " new process's first samples.", "", *rss_table(result), ""]
    lines += ["## Fault schedule", "",
              "| at (s) | fault | detail | recovered after (s) | duplicates until the next |",
              "|---|---|---|---|---|"]
    lines += [f"| {f.at:.1f} | {f.kind} | {f.detail} | "
              f"{'-' if f.recovered is None else f'{f.recovered:.1f}'} | {f.duplicates:,} |"
              for f in result.faults]
    return "\n".join(lines) + "\n"


def main() -> int:
    minutes = float(os.environ.get("CHAOS_MINUTES") or 10)
    seed_text = os.environ.get("CHAOS_SEED")
    seed = int(seed_text) if seed_text else secrets.randbelow(2**31)
    rate = float(os.environ.get("CHAOS_RATE") or 20)
    command = (f"CHAOS_SEED={seed} CHAOS_MINUTES={minutes:g}"
               f"{f' CHAOS_RATE={rate:g}' if rate != 20 else ''} make chaos")
    logging.getLogger("gmqtt").setLevel(logging.CRITICAL)  # its reconnects give up: known
    workdir = Path(tempfile.mkdtemp(prefix="ws-bridge-chaos-"))
    print(f"chaos: seed {seed}; replay with: {command}; work dir {workdir}", flush=True)

    async def go() -> Result:
        return await ChaosRun(Plan(minutes, seed, rate), workdir,
                              lambda line: print(line, flush=True)).run()

    result = asyncio.run(go())
    report = render(result, command)
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    target = REPO / "bench" / "CHAOS.md" if minutes >= 10 else out / "CHAOS-partial.md"
    target.write_text(report)
    print(f"\n{result.summary()}\n\nwritten to {target.relative_to(REPO)}", flush=True)
    if result.ok and not os.environ.get("CHAOS_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
