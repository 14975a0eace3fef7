"""Snapshots: readiness rules, the JSON form `ws-bridge status` reads, and the status table."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.stats.snapshot import SinkSnapshot, Snapshot, SourceSnapshot
from bridge.status_table import format_status_table


def source(name: str = "ticker", **changes: Any) -> SourceSnapshot:
    fields: dict[str, Any] = {
        "name": name, "state": "connected", "connected_since": 100.0, "received": 0, "bytes": 0,
        "invalid": 0, "forwarded": {}, "dropped": {}, "reconnects": {},
        "last_message_age": None, "handshake_seconds": None, "grace_until": None,
    }
    return SourceSnapshot(**{**fields, **changes})


def sink(name: str = "broker", **changes: Any) -> SinkSnapshot:
    fields: dict[str, Any] = {
        "name": name, "type": "mqtt", "up": True, "queue_depth": 0, "published": 0, "errors": 0,
        "dropped": {}, "publish_latency": None,
    }
    return SinkSnapshot(**{**fields, **changes})


def test_ready_when_every_source_is_connected_and_every_sink_up() -> None:
    snap = Snapshot((source("a"), source("b")), (sink(),), taken_at=500.0)
    assert snap.ready(500.0) == (True, [])


def test_a_reconnecting_source_is_ready_until_its_grace_period_ends() -> None:
    snap = Snapshot((source(state="reconnecting", grace_until=510.0),), (sink(),), taken_at=500.0)
    assert snap.ready(509.9) == (True, [])
    assert snap.ready(510.0) == (False, ["source ticker: reconnecting, grace period over"])


def test_not_ready_lists_every_source_and_sink_that_is_not() -> None:
    snap = Snapshot(
        (source("a", state="connecting"), source("b"), source("c", state="failed")),
        (sink("broker", up=False), sink("out", type="file")),
        taken_at=1.0,
    )
    ready, why = snap.ready(1.0)
    assert not ready
    assert why == ["source a: connecting", "source c: failed", "sink broker: down"]


def test_snapshot_survives_json_with_counters_as_plain_objects() -> None:
    snap = Snapshot(
        (source(received=7, forwarded=Counter(broker=5, out=2), reconnects=Counter(network=3),
                last_message_age=0.25, handshake_seconds=0.031, grace_until=99.0),),
        (sink(dropped=Counter(queue_full=4), publish_latency=0.002),),
        taken_at=123.5,
    )
    doc = json.loads(json.dumps(snap.to_json()))
    assert doc["sources"][0]["forwarded"] == {"broker": 5, "out": 2}
    assert Snapshot.from_json(doc) == snap


def test_a_newer_daemon_with_extra_fields_still_reads() -> None:
    doc = Snapshot((source(),), (sink(),), taken_at=1.0).to_json()
    doc["sources"][0]["added_later"] = 1
    doc["sinks"][0]["also_new"] = "x"
    assert Snapshot.from_json(doc).sources[0].name == "ticker"


def test_recovery_and_upstream_counters_survive_json() -> None:
    snap = Snapshot(
        (source(recovery=Counter(duplicate=4, gap=1, resubscribe=1), sent=12,
                outgoing_dropped=Counter(expired=2, overflow=3)),),
        (), taken_at=7.0,
    )
    doc = json.loads(json.dumps(snap.to_json()))
    assert doc["sources"][0]["recovery"] == {"duplicate": 4, "gap": 1, "resubscribe": 1}
    assert doc["sources"][0]["sent"] == 12
    assert doc["sources"][0]["outgoing_dropped"] == {"expired": 2, "overflow": 3}
    assert Snapshot.from_json(doc) == snap


def test_an_older_daemon_without_the_upstream_counters_still_reads() -> None:
    doc = Snapshot((source(received=3),), (), taken_at=1.0).to_json()
    for key in ("recovery", "sent", "outgoing_dropped"):
        del doc["sources"][0][key]
    old = Snapshot.from_json(doc).sources[0]
    assert (old.received, old.recovery, old.sent, old.outgoing_dropped) == (3, {}, 0, {})


names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
counts = st.dictionaries(names, st.integers(0, 2**53), max_size=3)
maybe = st.none() | st.floats(0, 1e9, allow_nan=False)


@given(st.lists(st.builds(source, names, received=st.integers(0, 2**53), forwarded=counts,
                          dropped=counts, reconnects=counts, last_message_age=maybe,
                          grace_until=maybe, recovery=counts, sent=st.integers(0, 2**53),
                          outgoing_dropped=counts, rollovers=st.integers(0, 2**53)),
                 max_size=3),
       st.lists(st.builds(sink, names, up=st.booleans(), dropped=counts,
                          publish_latency=maybe), max_size=3))
def test_any_snapshot_round_trips_through_json(
    sources: list[SourceSnapshot], sinks: list[SinkSnapshot]
) -> None:
    snap = Snapshot(tuple(sources), tuple(sinks), taken_at=42.0)
    assert Snapshot.from_json(json.loads(json.dumps(snap.to_json()))) == snap


def test_status_table_shows_rate_between_two_snapshots() -> None:
    before = Snapshot((source("ticker", received=1000), source("trades", received=50)), (sink(),),
                      taken_at=100.0)
    after = Snapshot(
        (source("ticker", received=1100, last_message_age=0.3,
                reconnects={"network": 2, "closed": 1}, rollovers=1),
         source("trades", state="reconnecting", received=50, last_message_age=125.0),
         source("fresh", state="connecting")),
        (sink("broker", queue_depth=12), sink("archive", type="file", up=False)),
        taken_at=102.0,
    )
    assert format_status_table(before, after) == (
        "SOURCE  STATE         MSGS/S  LAST MSG  RECONNECTS  ROLLOVERS\n"
        "ticker  connected       50.0      0.3s           3          1\n"
        "trades  reconnecting     0.0        2m           0          0\n"
        "fresh   connecting         -         -           0          0\n"
        "\n"
        "SINK     TYPE  STATE  QUEUE\n"
        "broker   mqtt  up        12\n"
        "archive  file  down       0\n"
    )


def test_status_table_without_an_earlier_snapshot_shows_no_rate() -> None:
    table = format_status_table(None, Snapshot((source(received=10),), (), taken_at=5.0))
    assert table.splitlines()[1].split() == ["ticker", "connected", "-", "-", "0", "0"]


def test_status_table_shows_no_rate_after_a_daemon_restart() -> None:
    before = Snapshot((source(received=500),), (), taken_at=10.0)
    after = Snapshot((source(received=20),), (), taken_at=12.0)
    assert format_status_table(before, after).splitlines()[1].split()[2] == "-"


def test_ages_read_at_a_glance() -> None:
    ages = [0.04, 9.94, 42.0, 61.0, 7300.0, 3 * 86400 + 5]
    snap = Snapshot(tuple(source(f"s{i}", last_message_age=a) for i, a in enumerate(ages)), (), 1.0)
    column = [line.split()[3] for line in format_status_table(None, snap).splitlines()[1:7]]
    assert column == ["0.0s", "9.9s", "42s", "1m", "2h", "3d"]
