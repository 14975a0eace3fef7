"""contrib/: the Grafana dashboard and the Prometheus alerting rules use only metrics the daemon
exports, read from a real metrics endpoint's /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from dataclasses import replace
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.config.load import load_config
from bridge.metrics import MetricsServer
from bridge.stats.snapshot import Snapshot
from bridge.supervisor import Supervisor
from tests.support.daemon import eventually
from tests.support.upstream import Upstream

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
NAME = re.compile(r"\bws_bridge_[a-z_]+")


async def exported() -> set[str]:
    """The metric names a metrics endpoint serves: every family's TYPE line, counters under
    the names Prometheus stores (``_total``)."""
    async def snapshot() -> Snapshot:
        return Snapshot((), (), 0.0)
    server = MetricsServer(snapshot, "127.0.0.1:0")
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    finally:
        await server.close()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ws_bridge_"):
            _, _, name, kind = line.split()
            names |= {name, f"{name.removesuffix('_total')}_total"} if kind == "counter" else {name}
    return names


def exprs_of_rules() -> list[str]:
    doc = yaml.safe_load((CONTRIB / "prometheus" / "ws-bridge-alerts.yml").read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def exprs_of_dashboard() -> list[str]:
    doc = json.loads((CONTRIB / "grafana" / "ws-bridge-dashboard.json").read_text())
    out = [t["expr"] for panel in doc["panels"] for t in panel["targets"]]
    return out + [v["definition"] for v in doc["templating"]["list"] if "definition" in v]


async def test_every_metric_in_contrib_is_exported() -> None:
    names = await exported()
    assert "ws_bridge_source_state" in names and "ws_bridge_sink_queue_limit" in names
    for where, exprs in (("rules", exprs_of_rules()), ("dashboard", exprs_of_dashboard())):
        used = {name for expr in exprs for name in NAME.findall(expr)}
        assert len(used) >= 6, where  # not vacuous: the files read as expected
        assert used - names == set(), f"{where} uses metrics the daemon does not export"


def test_the_rules_cover_what_operators_are_paged_for() -> None:
    rules = " ".join(exprs_of_rules())
    for metric in ("ws_bridge_source_grace_seconds", "ws_bridge_sink_queue_limit",
                   "ws_bridge_sink_outbox_oldest_age_seconds", "_messages_dropped_total"):
        assert metric in rules


def fires(rule: str, metrics: str) -> set[str]:
    """The sources a rule of the form ``A > B`` fires for, evaluated the way Prometheus does
    (one-to-one on identical label sets) over one scrape's samples."""
    left, op, right = rule.split()
    assert op == ">" and NAME.fullmatch(left) and NAME.fullmatch(right), rule
    values: dict[str, dict[frozenset[tuple[str, str]], float]] = {left: {}, right: {}}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name in values:
                values[sample.name][frozenset(sample.labels.items())] = sample.value
    return {dict(labels)["source"] for labels, value in values[left].items()
            if labels in values[right] and value > values[right][labels]}


async def scrape(snap: Snapshot) -> str:
    async def snapshot() -> Snapshot:
        return snap
    server = MetricsServer(snapshot, "127.0.0.1:0")
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        return await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    finally:
        await server.close()


def down_rule() -> str:
    doc = yaml.safe_load((CONTRIB / "prometheus" / "ws-bridge-alerts.yml").read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r["alert"] == "WsBridgeSourceDown"]
    assert "for" not in rule  # the grace is in the expression, from the running config
    return str(rule["expr"])


async def test_the_source_down_alert_fires_where_readyz_says_the_grace_is_over(
    upstream: Upstream, tmp_path: Path,
) -> None:
    refused = socket.socket()  # a port nothing listens on
    refused.bind(("127.0.0.1", 0))
    path = tmp_path / "bridge.yaml"
    path.write_text(f"""
version: 1
metrics: {{listen: "127.0.0.1:0", ready_grace: 300ms}}
sinks: {{out: {{type: stdout}}}}
sources:
  - {{name: up, url: "{upstream.url}", routes: [{{sink: out}}]}}
  - name: down
    url: ws://127.0.0.1:{refused.getsockname()[1]}/ws
    reconnect: {{initial_delay: 1h, max_delay: 1h}}
    routes: [{{sink: out}}]
""")
    supervisor = Supervisor(load_config(path))
    running = asyncio.create_task(supervisor.run())
    try:
        async def over() -> Snapshot | None:  # /readyz's own verdict, on one snapshot
            snap = await supervisor.snapshot()
            up = any(s.name == "up" and s.state == "connected" for s in snap.sources)
            return snap if up and not snap.ready(snap.taken_at)[0] else None
        snap = await eventually(over, what="the down source's grace period over")
        assert snap.ready(snap.taken_at)[1] == ["source down: reconnecting, grace period over"]
        assert fires(down_rule(), await scrape(snap)) == {"down"}
        within = Snapshot(tuple(replace(s, grace_seconds=3600.0) for s in snap.sources),
                          snap.sinks, snap.taken_at)
        assert fires(down_rule(), await scrape(within)) == set()  # a longer grace: not yet
    finally:
        refused.close()
        supervisor.request_stop()
        assert await asyncio.wait_for(running, 20) == 0
