"""contrib/: the Grafana dashboard and the Prometheus alerting rules use only metrics the daemon
exports, read from a real metrics endpoint's /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import yaml

from bridge.metrics import MetricsServer
from bridge.stats.snapshot import Snapshot

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
    for metric in ("ws_bridge_source_state", "ws_bridge_sink_queue_limit",
                   "ws_bridge_sink_outbox_oldest_age_seconds", "_messages_dropped_total"):
        assert metric in rules
