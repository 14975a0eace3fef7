"""State recovery on the WebSocket side: replays deduplicated, sequence gaps, quiet channels."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.config.load import load_config
from bridge.config.model import Config, SourceConfig
from bridge.config.recovery_specs import DedupSpec, SequenceSpec
from bridge.config.specs import ReplySpec, Step
from bridge.errors import ConfigError, SequenceGap, SessionTimeout
from bridge.messages import Message
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.stats.source import reason_of
from bridge.supervisor import Supervisor
from bridge.upstream.actions import UNREAD, Action, Deliver, Fail, Notice, Send, SetState
from bridge.upstream.dedup import DedupWindow
from bridge.upstream.liveness import Quiet
from bridge.upstream.recovery import Recovery
from bridge.upstream.sequence import LogLimit
from bridge.upstream.session import Session
from bridge.upstream.state import ConnState
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_client import FAST, Running

SUB = Step(Template({"op": "sub"}))
DEDUP = DedupSpec(Template("{msg.id}"), window=100)


def source(**kw: Any) -> SourceConfig:
    kw.setdefault("reconnect", FAST)
    return SourceConfig(name="src", url=kw.pop("url", "ws://127.0.0.1:1/"), **kw)


def seq(key: str = "{msg.seq}", per: str | None = None, on_gap: Any = "log") -> SequenceSpec:
    return SequenceSpec(Template(key), None if per is None else Template(per), on_gap)


def frame(value: Any) -> Message:
    return Message("src", value if isinstance(value, str | bytes) else json.dumps(value), 0.0)


def sent(actions: list[Action]) -> list[Any]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def kept(actions: list[Action]) -> int:
    return sum(isinstance(a, Deliver) for a in actions)


def notes(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Notice)]


def feed(s: Session, values: list[Any], now: float = 1.0) -> list[Action]:
    return [action for v in values for action in s.receive(frame(v), now)]


# -- the atoms ----------------------------------------------------------------------------------


def test_the_dedup_window_remembers_exactly_the_last_n_new_keys() -> None:
    window = DedupWindow(3)
    assert [window.seen(k) for k in (1, 2, 3, 1, 4)] == [False, False, False, True, False]
    assert len(window) == 3  # 1 was forgotten when 4 came in
    assert [window.seen(k) for k in (1, 3, 4)] == [False, True, True]
    assert len(window) == 3


def test_gap_reports_are_limited_to_one_per_subject_per_minute() -> None:
    limit = LogLimit(60.0)
    assert limit.due("a", 0.0) == 0
    assert limit.due("a", 10.0) is None
    assert limit.due("b", 10.0) == 0  # another stream has its own budget
    assert limit.due("a", 59.0) is None
    assert limit.due("a", 60.0) == 2  # two held back since the last line


def test_a_quiet_step_is_due_once_per_period_and_a_busy_one_never() -> None:
    busy = Step(Template("b"), expect_every=10.0, when=Pattern({"ch": "busy"}))
    quiet = Step(Template("q"), expect_every=10.0, when=Pattern({"ch": "quiet"}))
    q = Quiet((busy, quiet), 0.0)
    assert q.next == 10.0
    q.seen({"ch": "busy"}, None, 6.0)
    assert q.due(10.0) == [1]  # lazily moved: busy's deadline slides to 16
    assert q.next == 16.0
    q.seen({"ch": "busy"}, None, 15.0)
    assert q.due(16.0) == []
    assert q.next == 20.0
    assert q.due(20.0) == [1]


# -- dedup in the session (fake times) ----------------------------------------------------------


def test_repeats_are_dropped_and_counted_and_the_window_outlives_the_connection() -> None:
    cfg = source(dedup=DEDUP)
    recovery = Recovery(cfg)
    first = Session(cfg, recovery=recovery)
    first.start(0.0)
    assert first.screen(frame({"id": 0}), 0.5) is not UNREAD  # dedup reads every message
    assert kept(feed(first, [{"id": 1}, {"id": 2}, {"id": 2}, {"id": 3}])) == 3
    second = Session(cfg, recovery=recovery)  # a reconnect: the upstream replays 2 and 3
    second.start(5.0)
    assert kept(feed(second, [{"id": 2}, {"id": 3}, {"id": 4}], 6.0)) == 1
    assert recovery.counts["duplicate"] == 3


def test_a_message_without_a_dedup_key_is_forwarded_counted_and_logged_once_a_minute() -> None:
    s = Session(source(dedup=DEDUP))
    s.start(0.0)
    out = feed(s, [{"x": 1}, "not json", b"\x00"], 1.0)
    assert kept(out) == 3
    assert s.recovery.counts["no_key"] == 3
    assert notes(out) == [  # per frame: {"x": 1}, then the text that is not JSON
        "a message without a dedup key: forwarded unchecked",
        "received a text frame that is not valid JSON, forwarding it raw "
        "(further ones are counted and summarised every 60s)"]
    assert notes(s.receive(frame({"x": 2}), 61.0)) == [
        "a message without a dedup key: forwarded unchecked (2 more since the last report)"
    ]


def test_a_message_without_a_sequence_number_is_delivered_and_counted() -> None:
    s = Session(source(sequence=seq(per="{msg.ch}")))
    s.start(0.0)
    out = feed(s, [{"seq": 1}, {"ch": "a"}, {"ch": "a", "seq": "x"}, {"ch": "a", "seq": "7"}])
    assert kept(out) == 4
    assert s.recovery.counts["no_seq"] == 3
    assert notes(out) == ["a message without a sequence number: not checked for gaps"]
    out = feed(s, [{"ch": "a", "seq": 9.0}])  # numbers may come as text or integral floats
    assert notes(out) == ["sequence gap in stream 'a': expected 8, got 9 (1 missing)"]


def test_screen_says_none_for_data_to_deliver_and_otherwise_what_receive_says() -> None:
    """The driver's fast path: ``screen`` is ``receive`` without a list for a message to deliver,
    whether the session checks only recovery or also has a reply to match."""
    reply = ReplySpec(Pattern({"q": True}), Template({"a": 1}))
    for cfg in (source(dedup=DEDUP, sequence=seq("{msg.id}")),
                source(dedup=DEDUP, sequence=seq("{msg.id}"), replies=(reply,))):
        s = Session(cfg)
        s.start(0.0)
        assert s.screen(frame({"id": 1}), 1.0) is None
        assert s.screen(frame({"id": 1}), 1.0) == []  # a repeat: dropped, counted
        out = s.screen(frame({"id": 3}), 1.0)
        assert out is not None and kept(out) == 1
        assert notes(out) == ["sequence gap: expected 2, got 3 (1 missing)"]
        assert s.recovery.counts == {"duplicate": 1, "gap": 1}
        out = s.screen(frame({"id": 4, "q": True}), 1.0)
        assert (sent(out or []), kept(out or [])) == (([{"a": 1}], 1) if cfg.replies else ([], 0))
        out = s.screen(frame("not json"), 1.0)  # forwarded raw, unchecked, and counted
        assert out is not None and kept(out) == 1 and s.stats.invalid == 1


def test_without_recovery_settings_frames_pass_through_unparsed() -> None:
    s = Session(source(subscribe=(SUB,)))
    s.start(0.0)
    assert s.screen(frame({"x": 1}), 1.0) is UNREAD
    for cfg in (source(dedup=DEDUP), source(sequence=seq()),
                source(subscribe=(Step(Template("s"), expect_every=5.0),))):
        s = Session(cfg)
        s.start(0.0)
        assert s.screen(frame({"x": 1}), 1.0) is not UNREAD, cfg


# -- sequence in the session (fake times) -------------------------------------------------------


def test_a_gap_is_counted_and_logged_with_its_size_but_repeats_and_late_ones_are_not_gaps() -> None:
    s = Session(source(sequence=seq()))
    s.start(0.0)
    out = feed(s, [{"seq": 1}, {"seq": 2}, {"seq": 2}, {"seq": 1}, {"seq": 3}, {"seq": 7}])
    assert kept(out) == 6  # sequence checks never drop: dedup does
    assert s.recovery.counts["gap"] == 1
    assert notes(out) == ["sequence gap: expected 4, got 7 (3 missing)"]
    assert s.deadline() is None


def test_gaps_are_tracked_per_stream_and_reported_once_per_stream_per_minute() -> None:
    s = Session(source(sequence=seq("{msg.n}", per="{msg.ch}")))
    s.start(0.0)
    out = feed(s, [{"ch": "a", "n": 1}, {"ch": "b", "n": 10}, {"ch": "a", "n": 2},
                   {"ch": "b", "n": 11}, {"ch": "a", "n": 5}, {"ch": "b", "n": 13}], 1.0)
    assert notes(out) == ["sequence gap in stream 'a': expected 3, got 5 (2 missing)",
                          "sequence gap in stream 'b': expected 12, got 13 (1 missing)"]
    out = feed(s, [{"ch": "a", "n": 9}], 30.0)
    assert notes(out) == []  # held back: a's last report was 29 s ago
    out = feed(s, [{"ch": "a", "n": 20}], 61.0)
    assert notes(out) == ["sequence gap in stream 'a': expected 10, got 20 (10 missing)"
                          " (1 more since the last report)"]
    assert s.recovery.counts["gap"] == 4


def test_on_gap_resubscribe_sends_the_subscriptions_again_and_resets_the_expected_number() -> None:
    unsub = Step(Template({"op": "unsub"}))
    s = Session(source(subscribe=(SUB,), unsubscribe=(unsub,), sequence=seq(on_gap="resubscribe")))
    s.start(0.0)
    feed(s, [{"seq": 1}, {"seq": 2}])
    out = s.receive(frame({"seq": 5}), 2.0)
    assert kept(out) == 1  # the message that showed the gap is still delivered
    assert sent(out) == [{"op": "unsub"}, {"op": "sub"}]
    assert [a.state for a in out if isinstance(a, SetState)] == [
        ConnState.SUBSCRIBING, ConnState.CONNECTED]
    assert notes(out) == ["sequence gap: expected 3, got 5 (2 missing), resubscribing"]
    # The upstream numbers afresh after the resubscribe: neither 1 nor 2 is a gap.
    out = feed(s, [{"seq": 1}, {"seq": 2}, {"seq": 3}], 3.0)
    assert (kept(out), notes(out), sent(out)) == (3, [], [])
    assert s.recovery.counts["gap"] == 1


def test_numbering_restarts_from_the_acknowledged_resubscription() -> None:
    acked = Step(Template({"op": "sub"}), expect=Pattern({"ack": True}))
    s = Session(source(subscribe=(acked,), sequence=seq(on_gap="resubscribe")))
    s.start(0.0)
    feed(s, [{"ack": True}, {"seq": 1}, {"seq": 3}])  # a gap: subscribing again
    assert s.state is ConnState.SUBSCRIBING
    out = feed(s, [{"seq": 4}, {"seq": 6}, {"ack": True}], 2.0)  # still the old subscription's
    assert (kept(out), sent(out), s.state) == (2, [], ConnState.CONNECTED)
    out = feed(s, [{"seq": 1}, {"seq": 2}, {"seq": 4}], 70.0)
    assert notes(out) == ["sequence gap: expected 3, got 4 (1 missing), resubscribing"]
    assert sent(out) == [{"op": "sub"}]
    assert s.recovery.counts["gap"] == 2


def test_on_gap_resubscribe_without_unsubscribe_steps_still_subscribes_again() -> None:
    s = Session(source(subscribe=(SUB,), sequence=seq(on_gap="resubscribe")))
    s.start(0.0)
    out = feed(s, [{"seq": 1}, {"seq": 3}])
    assert sent(out) == [{"op": "sub"}]
    assert s.state is ConnState.CONNECTED


def test_on_gap_reconnect_delivers_the_message_then_fails_with_reason_gap() -> None:
    s = Session(source(sequence=seq(on_gap="reconnect")))
    s.start(0.0)
    out = feed(s, [{"seq": 1}, {"seq": 4}])
    assert kept(out) == 2
    fails = [a.error for a in out if isinstance(a, Fail)]
    assert len(fails) == 1 and isinstance(fails[0], SequenceGap)
    assert reason_of(fails[0]) == "gap"
    assert "expected 2, got 4" in str(fails[0])
    assert notes(out) == []  # the client logs the reconnect, with this reason, once
    assert s.deadline() is None


def test_the_expected_number_resets_on_a_new_connection() -> None:
    cfg = source(sequence=seq())
    recovery = Recovery(cfg)
    s = Session(cfg, recovery=recovery)
    s.start(0.0)
    feed(s, [{"seq": 41}, {"seq": 42}])
    again = Session(cfg, recovery=recovery)
    again.start(5.0)
    feed(again, [{"seq": 1}, {"seq": 2}], 6.0)
    assert recovery.counts["gap"] == 0


# -- expect_every in the session (fake times) ---------------------------------------------------


def watched(every: float = 10.0, **kw: Any) -> tuple[Step, Step]:
    busy = Step(Template({"op": "sub", "ch": "busy"}), expect_every=every,
                when=Pattern({"ch": "busy"}), **kw)
    quiet = Step(Template({"op": "sub", "ch": "quiet"}), expect_every=every,
                 when=Pattern({"ch": "quiet"}), **kw)
    return busy, quiet


def test_a_quiet_subscription_is_sent_again_on_the_live_socket_and_a_busy_one_is_not() -> None:
    s = Session(source(subscribe=watched(10.0)))
    s.start(0.0)
    assert s.deadline() == 10.0  # counted from CONNECTED
    for t in range(1, 30, 2):
        assert kept(s.receive(frame({"ch": "busy"}), float(t))) == 1
        out = s.tick(float(t))
        if t in (11, 21):
            assert sent(out) == [{"op": "sub", "ch": "quiet"}]
            assert notes(out) == ["subscribe[1] quiet for 10s; sending it again"]
        else:
            assert out == []
    assert s.recovery.counts["resubscribe"] == 2
    assert s.state is ConnState.CONNECTED


def test_a_resent_step_waits_for_its_ack_again_and_its_timeout_still_applies() -> None:
    step = Step(Template({"op": "sub"}), expect=Pattern({"ack": True}), timeout=2.0,
                expect_every=10.0)
    s = Session(source(subscribe=(step,)))
    s.start(0.0)
    assert s.receive(frame({"ack": True}), 1.0) == [SetState(ConnState.CONNECTED)]
    assert sent(s.tick(11.0)) == [{"op": "sub"}]
    assert s.deadline() == 13.0
    assert s.receive(frame({"ack": True}), 12.0) == []  # the ack is the session's, not data
    assert s.deadline() == 21.0  # timed from the resend; lazily moved when it comes
    assert s.tick(21.0) == []  # the ack is a message: it kept a step without `when` alive
    assert s.deadline() == 22.0
    assert sent(s.tick(22.0)) == [{"op": "sub"}]
    fails = [a.error for a in s.tick(24.0) if isinstance(a, Fail)]
    assert isinstance(fails[0], SessionTimeout) and fails[0].stage == "subscribe"


def test_expect_every_is_not_armed_before_connected() -> None:
    step = Step(Template({"op": "sub"}), expect=Pattern({"ack": True}), timeout=60.0,
                expect_every=1.0)
    s = Session(source(subscribe=(step,)))
    s.start(0.0)
    assert s.deadline() == 60.0
    assert s.tick(5.0) == []


# -- against a real loopback upstream -----------------------------------------------------------


def ids(run: Running) -> list[Any]:
    return [p["id"] for p in run.payloads()]


async def test_replays_after_a_reconnect_are_dropped_exactly_once_each_and_counted(
    upstream: Upstream,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        first = conn is upstream.connections[0]
        for i in range(1, 6) if first else range(3, 9):  # the second replays 3, 4 and 5
            await conn.send_json({"id": i})

    upstream.handler = handler
    async with Running(source(url=upstream.url, dedup=DEDUP)) as run:
        await run.until(lambda: len(run.messages) == 5)
        await upstream.kill()
        await run.until(lambda: 8 in ids(run))
        assert ids(run) == [1, 2, 3, 4, 5, 6, 7, 8]
        stats = run.client.stats
        assert stats.recovery["duplicate"] == 3
        assert dict(stats.reconnects) == {"network": 1}


async def test_a_gap_resubscribes_on_the_same_connection_and_numbering_restarts(
    upstream: Upstream,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        assert await conn.recv_json() == {"op": "sub"}
        for n in (1, 2, 3, 6):
            await conn.send_json({"id": n, "seq": n})
        assert await conn.recv_json() == {"op": "sub"}  # on this very connection
        for n in (1, 2):  # a fresh subscription numbers from 1 again: no gap
            await conn.send_json({"id": 100 + n, "seq": n})

    upstream.handler = handler
    cfg = source(url=upstream.url, subscribe=(SUB,), sequence=seq(on_gap="resubscribe"))
    async with Running(cfg) as run:
        await run.until(lambda: 102 in ids(run))
        assert ids(run) == [1, 2, 3, 6, 101, 102]
        assert run.client.stats.recovery["gap"] == 1
        assert len(upstream.connections) == 1
        assert run.client.stats.reconnects == {}


async def test_a_gap_reconnects_when_configured_and_the_new_connection_starts_afresh(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        numbers = (1, 2, 4) if conn is upstream.connections[0] else (50, 51)
        for n in numbers:
            await conn.send_json({"id": n, "seq": n})

    upstream.handler = handler
    cfg = source(url=upstream.url, sequence=seq(on_gap="reconnect"))
    with caplog.at_level(logging.WARNING, logger="bridge.upstream"):
        async with Running(cfg) as run:
            await run.until(lambda: 51 in ids(run))
    assert ids(run) == [1, 2, 4, 50, 51]  # 4 showed the gap and was still delivered
    assert dict(run.client.stats.reconnects) == {"gap": 1}
    assert run.client.stats.recovery["gap"] == 1
    assert len(upstream.connections) == 2
    reconnecting = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert len(reconnecting) == 1
    assert "sequence gap: expected 3, got 4 (1 missing)" in reconnecting[0]


async def test_a_quiet_channel_is_resubscribed_while_a_busy_one_is_not_without_reconnecting(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        for _ in range(250):  # bounded: 10 s at most; the test stops the client far sooner
            await conn.send_json({"ch": "busy"})
            await asyncio.sleep(0.04)

    def subs(conn: UpstreamConn, channel: str) -> int:
        return sum(json.loads(m).get("ch") == channel for m in conn.received)

    upstream.handler = handler
    with caplog.at_level(logging.WARNING, logger="bridge.upstream"):
        async with Running(source(url=upstream.url, subscribe=watched(0.4))) as run:
            conn = (await upstream.wait_connections(1))[0]
            await run.until(lambda: subs(conn, "quiet") >= 3)
            assert subs(conn, "busy") == 1
            assert run.client.stats.recovery["resubscribe"] == subs(conn, "quiet") - 1
    assert len(upstream.connections) == 1
    assert run.client.stats.reconnects == {}
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("source src: subscribe[1] quiet for 0.4s; sending it again") >= 2
    assert not any("subscribe[0]" in line for line in lines)


# -- config and readiness -----------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "bridge.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, env={})


def test_the_loader_builds_dedup_sequence_expect_every_and_ready_grace(tmp_path: Path) -> None:
    config = load(tmp_path, """\
        version: 1
        metrics: {listen: "127.0.0.1:0", ready_grace: 2s}
        sinks: {console: {type: stdout}}
        sources:
          - name: feed
            url: ws://127.0.0.1:1/ws
            subscribe:
              - send: {op: sub, ch: trades}
                expect_every: 30s
                when: {ch: trades}
            dedup: {key: "{msg.id}"}
            sequence: {key: "{msg.seq}", per: "{msg.ch}", on_gap: resubscribe}
            routes: [{sink: console}]
        """)
    assert config.ready_grace == 2.0
    src = config.sources[0]
    assert src.subscribe[0].expect_every == 30.0
    assert src.subscribe[0].when == Pattern({"ch": "trades"})
    assert src.dedup == DedupSpec(Template("{msg.id}"), 10_000)
    assert src.sequence == seq(per="{msg.ch}", on_gap="resubscribe")


def test_ready_grace_defaults_to_30s_and_the_recovery_settings_to_off(tmp_path: Path) -> None:
    config = load(tmp_path, """\
        version: 1
        sinks: {console: {type: stdout}}
        sources: [{name: feed, url: "ws://127.0.0.1:1/ws", routes: [{sink: console}]}]
        """)
    assert config.ready_grace == 30.0
    assert (config.sources[0].dedup, config.sources[0].sequence) == (None, None)


async def test_readyz_grace_comes_from_the_config() -> None:
    src = source(url="ws://127.0.0.1:1/ws")  # nothing listens: the source keeps retrying
    supervisor = Supervisor(Config(path="-", sources=(src,), sinks={}, ready_grace=2.5))
    task = asyncio.create_task(supervisor.run())
    try:
        async with asyncio.timeout(5):
            while not supervisor.sources:
                await asyncio.sleep(0.01)  # the TaskGroup starts the sources; nothing to await
        snapshot = await supervisor.snapshot()
        entry = supervisor.sources["src"]
        assert snapshot.sources[0].grace_until == entry.since + 2.5
        assert snapshot.ready(entry.since + 2.0)[0]
        assert not snapshot.ready(entry.since + 2.5)[0]
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 10)


def test_a_bad_placeholder_in_a_recovery_key_is_reported_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, """\
            version: 1
            sinks: {console: {type: stdout}}
            sources:
              - name: feed
                url: ws://127.0.0.1:1/ws
                dedup: {key: "{message.id}"}
                sequence: {key: "{msg.seq}", per: "{chan}"}
                routes: [{sink: console}]
            """)
    found = {(i.path, i.line) for i in caught.value.issues}
    assert found == {("sources[0].dedup.key", 6), ("sources[0].sequence.per", 7)}
