"""Text frames and refusals, from YAML's point of view: $text, $prefix and $regex read a frame's
text, a string `send` goes out word for word, $close turns a server's close into a rejection
with its reason, and `deliver: true` keeps the data an `expect` waited for. Real loopback
upstreams; the oracle is the upstream's log, the file on disk and the log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.specs import AuthSpec, ReplySpec, Step
from bridge.decoding import INVALID
from bridge.errors import AuthRejected, Rejected
from bridge.routing.compiled import PatternError
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.backoff import BackoffPolicy
from bridge.upstream.state import ConnState
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_client import waits
from tests.test_fuzz import FUZZ
from tests.test_hostile import Bridge, source

GROWING = BackoffPolicy(initial_delay=0.01, max_delay=0.04, multiplier=2.0, jitter=0.0)


async def test_text_pings_are_answered_word_for_word_even_when_the_text_is_json(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send("PING\r\n")  # NATS
        assert await conn.recv() == "PONG\r\n"
        await conn.send("2")  # Engine.IO's ping: valid JSON, matched as text
        assert await conn.recv() == "3"
        await conn.send('42["tick",{"p":1}]')
        await conn.send('{"n":2}')

    upstream.handler = handler
    replies = (ReplySpec(Pattern({"$text": "PING\r\n"}), Template("PONG\r\n")),
               ReplySpec(Pattern({"$regex": "^2$"}), Template("3")))
    cfg = source(upstream.url, picked={"$prefix": "42"}, replies=replies)  # a route's when
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.routed_at_least(4)
    assert upstream.connections[0].received == ["PONG\r\n", "3"]  # the upstream's own log
    assert bridge.delivered("picked") == ['42["tick",{"p":1}]']
    assert bridge.delivered() == ["PING\r\n", 2, '42["tick",{"p":1}]', {"n": 2}]


async def test_a_refusing_close_code_during_auth_is_a_rejection_with_its_reason(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: UpstreamConn) -> None:  # graphql-transport-ws with a bad token
        await conn.recv()
        await conn.close(4403, "Forbidden: bad token")

    upstream.handler = handler
    auth = AuthSpec(send=Template({"type": "connection_init"}),
                    expect=Pattern({"type": "connection_ack"}),
                    reject=Pattern({"$or": [{"type": "auth_invalid"}, {"$close": [4401, 4403]}]}))
    cfg = source(upstream.url, auth=auth, reconnect=GROWING)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Bridge(cfg, tmp_path) as bridge:
            await upstream.wait_connections(5)
            await bridge.until(lambda: bridge.client.stats.rejected >= 4)
    stats = bridge.client.stats
    assert stats.reconnects["auth_rejected"] >= 4 and stats.reconnects["network"] == 0
    assert waits(caplog)[:4] == ["0.01", "0.02", "0.04", "0.04"]  # refusals back off
    assert "after auth rejected: auth rejected by the server with close code 4403: " \
        "Forbidden: bad token" in caplog.text
    assert isinstance(AuthRejected("s"), Rejected)


async def test_a_close_code_the_reject_does_not_name_stays_a_closed_connection(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.recv()
        await conn.close(4500, "internal")

    upstream.handler = handler
    step = Step(Template({"op": "sub"}), expect=Pattern({"ok": True}),
                reject=Pattern({"$close": [4403]}))
    cfg = source(upstream.url, subscribe=(step,), reconnect=GROWING)
    async with Bridge(cfg, tmp_path) as bridge:
        await upstream.wait_connections(2)
        await bridge.until(lambda: sum(bridge.client.stats.reconnects.values()) >= 1)
    assert bridge.client.stats.reconnects["closed"] >= 1
    assert bridge.client.stats.rejected == 0


async def test_a_rejection_frame_is_logged_with_an_excerpt_of_the_server_reason(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = "Invalid access token " + "x" * 300

    async def handler(conn: UpstreamConn) -> None:  # Home Assistant
        await conn.send_json({"type": "auth_required"})
        await conn.recv()
        await conn.send_json({"type": "auth_invalid", "message": reason})

    upstream.handler = handler
    auth = AuthSpec(await_=Pattern({"type": "auth_required"}), send=Template({"type": "auth"}),
                    expect=Pattern({"type": "auth_ok"}), reject=Pattern({"type": "auth_invalid"}))
    cfg = source(upstream.url, auth=auth, reconnect=GROWING)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Bridge(cfg, tmp_path) as bridge:
            await bridge.until(lambda: bridge.client.stats.rejected >= 2)
    line = next(r.getMessage() for r in caplog.records if "auth rejected by" in r.getMessage())
    shown = line.split("auth rejected by the server: ", 1)[1]
    assert shown.startswith('{"type":"auth_invalid","message":"Invalid access token xxx')
    assert len(shown) == 200 and shown.endswith("...")


@pytest.mark.parametrize("deliver", [True, False])
async def test_deliver_keeps_the_event_an_expect_waited_for(
    upstream: Upstream, tmp_path: Path, deliver: bool
) -> None:
    async def handler(conn: UpstreamConn) -> None:  # no ack: the first event is the answer
        await conn.recv()
        for n in range(3):
            await conn.send_json({"type": "trade", "n": n})

    upstream.handler = handler
    step = Step(Template({"op": "subscribe"}), expect=Pattern({"type": "trade"}), deliver=deliver)
    async with Bridge(source(upstream.url, subscribe=(step,)), tmp_path) as bridge:
        await bridge.until(lambda: bridge.client.state is ConnState.CONNECTED)
        await bridge.routed_at_least(3 if deliver else 2)
    first = [{"type": "trade", "n": 0}] if deliver else []  # without deliver: swallowed
    assert bridge.delivered() == [*first, {"type": "trade", "n": 1}, {"type": "trade", "n": 2}]


@FUZZ
@given(spec=st.dictionaries(st.sampled_from(["$text", "$prefix", "$regex"]),
                            st.text(alphabet="ab2^$.*", max_size=6), min_size=1),
       text=st.text(max_size=20), code=st.integers(1000, 4999))
def test_any_text_pattern_against_any_frame_is_a_bool(spec: dict[str, str], text: str,
                                                      code: int) -> None:
    try:
        pattern = Pattern(spec)
    except PatternError:
        return  # an invalid $regex: reported by check, never a crash
    assert isinstance(pattern.matches(INVALID, text), bool)
    assert pattern.closes(code) is False  # a text pattern never matches a close
    if "$text" in spec and len(spec) == 1:
        assert pattern.matches(INVALID, text) is (text == spec["$text"])
