"""The NATS preset reads a connection's frames as one byte stream, as nats.ws does: an
operation split across frames (nats-server splits its output for browsers at 4 KiB, whatever
the operations) is decoded whole once its rest arrives, in order; what is kept is bounded; and
a new connection starts with nothing of the last one's."""

from __future__ import annotations

import itertools
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.load import load_config
from bridge.config.model import SourceConfig
from bridge.errors import OperationTooBig
from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.protocols.nats_stream import DEFAULT_MAX_PAYLOAD, MAX_LINE, Stream
from bridge.protocols.text import Parts
from bridge.protocols.wire import PresetFrames
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_client import Running

INFO = b'INFO {"server_id":"x","max_payload":1048576}\r\n'
PAYLOAD = '{"n":1,"text":"caf\u00e9 \u2713"}'.encode()  # multi-byte UTF-8: lengths are bytes
HEADERS = b"NATS/1.0\r\nX-Id: 7\r\n\r\n"
STREAM = b"".join([
    INFO,
    b"+OK\r\n",
    b"MSG ticks.a 1 %d\r\n%s\r\n" % (len(PAYLOAD), PAYLOAD),
    b"PING\r\n",
    b"HMSG ticks.h 2 _INBOX.r %d %d\r\n%s%s\r\n" % (len(HEADERS), len(HEADERS) + 2, HEADERS,
                                                    b"hi"),
    b"PONG\r\n",
    b"MSG ticks.b 1 _INBOX.x 0\r\n\r\n",  # an empty payload
    b"-ERR 'Slow Consumer'\r\n",
])
WHOLE = [
    ({"nats": "INFO", "info": {"server_id": "x", "max_payload": 1048576}}, False),
    ({"nats": "+OK"}, False),
    ({"subject": "ticks.a", "reply": None, "data": {"n": 1, "text": "caf\u00e9 \u2713"}}, True),
    ({"nats": "PING"}, False),
    ({"subject": "ticks.h", "reply": "_INBOX.r", "data": "hi"}, True),
    ({"nats": "PONG"}, False),
    ({"subject": "ticks.b", "reply": "_INBOX.x", "data": ""}, True),
    ({"nats": "-ERR", "error": "Slow Consumer"}, False),
]


def fed(chunks: list[bytes]) -> Parts:
    stream, out = Stream("src"), []
    for chunk in chunks:
        out += stream.feed(chunk)
    return out


def test_a_stream_in_one_frame_is_every_operation_in_order() -> None:
    assert fed([STREAM]) == WHOLE


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_a_stream_split_at_any_byte_is_decoded_whole_and_in_order(cut: int) -> None:
    assert fed([STREAM[:cut], STREAM[cut:]]) == WHOLE


def test_a_stream_one_byte_per_frame_is_decoded_whole_and_in_order() -> None:
    assert fed([STREAM[i : i + 1] for i in range(len(STREAM))]) == WHOLE


@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=12))
def test_a_stream_split_anywhere_any_number_of_times(cuts: list[int]) -> None:
    edges = [0, *sorted(set(cuts)), len(STREAM)]
    assert fed([STREAM[a:b] for a, b in itertools.pairwise(edges)]) == WHOLE


def test_each_operation_comes_out_with_the_frame_that_ends_it() -> None:
    stream = Stream("src")
    msg = b"MSG big 1 10000\r\n" + b"x" * 10000 + b"\r\nPING\r\n"
    assert stream.feed(msg[:4096]) == []
    assert stream.feed(msg[4096:8192]) == []
    assert stream.feed(msg[8192:]) == [({"subject": "big", "reply": None, "data": "x" * 10000},
                                        True), ({"nats": "PING"}, False)]


def test_an_unfinished_line_that_no_server_operation_starts_with_is_undecodable_at_once() -> None:
    [item] = Stream("src").feed(b"HELLO wor")
    assert isinstance(item, Undecodable) and item.reason == "nats"
    assert Stream("src").feed(b"PI") == []  # PING's start: waits for the rest


def test_a_message_over_max_payload_is_not_kept_and_the_connection_is_renewed() -> None:
    stream = Stream("src")
    too_big = b"MSG big 1 %d\r\n" % (DEFAULT_MAX_PAYLOAD + 1)
    with pytest.raises(OperationTooBig, match="1048577 bytes spans frames, over max_payload"):
        stream.feed(too_big + b"x" * 4000)


def test_the_servers_info_sets_the_bound_of_what_is_kept() -> None:
    stream = Stream("src")
    stream.feed(b'INFO {"max_payload":8000}\r\n')
    assert stream.max_payload == 8000
    assert stream.feed(b"MSG a 1 8000\r\n" + b"x" * 100) == []  # at the bound: kept
    with pytest.raises(OperationTooBig, match="8001 bytes"):
        Stream("src").feed(b'INFO {"max_payload":8000}\r\nMSG a 1 8001\r\n' + b"x" * 100)


def test_a_message_whole_in_its_frame_is_decoded_whatever_its_size() -> None:
    body = b"x" * (DEFAULT_MAX_PAYLOAD + 10)  # nothing kept: nothing to bound
    [(value, data)] = Stream("src").feed(b"MSG a 1 %d\r\n%s\r\n" % (len(body), body))
    assert data and len(value["data"]) == len(body)


def test_a_control_line_without_its_end_is_kept_up_to_its_bound() -> None:
    stream = Stream("src")
    assert stream.feed(b"INFO " + b"x" * (MAX_LINE - 5)) == []
    with pytest.raises(OperationTooBig, match="control line"):
        stream.feed(b"y")


def test_a_new_connections_decoding_starts_empty() -> None:
    frames = PresetFrames("nats", "src")
    assert frames.decode(b"MSG a 1 7\r\n{", 0.0) == []
    fresh = frames.fresh()
    [msg] = fresh.decode(b'MSG b 1 7\r\n{"n":2}\r\n', 0.0)  # not glued to the old "{"
    assert isinstance(msg, Message) and msg.json == {"subject": "b", "reply": None,
                                                     "data": {"n": 2}}
    [old] = frames.decode(b'"n":1}\r\n', 0.0)  # the old one's goes on, apart
    assert isinstance(old, Message) and old.json["data"] == {"n": 1}


# --- a new connection in the middle of a split operation -----------------------------------------

def nats_source(tmp_path: Path, url: str, more: str = "") -> SourceConfig:
    path = tmp_path / "bridge.yaml"
    path.write_text("version: 1\nsinks:\n  out: {type: stdout}\nsources:\n" + textwrap.indent(
        textwrap.dedent(f"""\
            - name: src
              url: "{url}"
              protocol: {{type: nats, token: T}}
              subscribe: [{{subject: ticks.>}}]
              reconnect: {{initial_delay: 20ms, max_delay: 100ms, jitter: 0}}
            """) + textwrap.indent(more, "  "), "  "))
    return load_config(path, env={}).sources[0]


async def greet(conn: UpstreamConn) -> None:
    """A NATS server's side of the handshake: INFO, the CONNECT and PING, PONG, the SUB."""
    await conn.send(INFO)
    connect = await conn.recv()
    assert isinstance(connect, str) and connect.startswith("CONNECT ")
    await conn.send(b"PONG\r\n")
    assert await conn.recv() == "SUB ticks.> 1\r\n"


async def test_a_reconnect_in_the_middle_of_a_split_message_starts_the_stream_clean(
    upstream: Upstream, tmp_path: Path,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await greet(conn)
        if len(upstream.connections) == 1:
            await conn.send(b'MSG ticks.a 1 7\r\n{"n":1}\r\nMSG ticks.a 1 200\r\n{"n":')
            conn.kill()  # gone with 200 bytes announced: what came of them is not kept
            return
        await conn.send(b'MSG ticks.a 1 7\r\n{"n":2}\r\nMSG ticks.a 1 7\r\n{"n":3}\r\n')

    upstream.handler = handler
    async with Running(nats_source(tmp_path, upstream.url)) as run:
        await run.until(lambda: len(run.messages) >= 3)
    data: list[Any] = [json.loads(m.data)["data"] for m in run.messages]
    assert data == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert len(upstream.connections) == 2


async def test_a_rollover_gives_the_successor_a_stream_of_its_own_and_keeps_it_on_takeover(
    upstream: Upstream, tmp_path: Path,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) > 2:
            return  # a next rollover, after the test's end
        await greet(conn)
        if len(upstream.connections) == 1:  # its last message never ends: closed by the rollover
            await conn.send(b'MSG ticks.a 1 7\r\n{"n":1}\r\nMSG ticks.a 1 7\r\n{"n"')
            return
        await conn.send(b'MSG ticks.b 1 7\r\n{"n":')  # the successor's, split around the takeover
        await upstream.connections[0].wait_closed()
        await conn.send(b"3}\r\n")

    upstream.handler = handler
    cfg = nats_source(tmp_path, upstream.url, "max_connection_age: 300ms\nrollover: overlap\n")
    async with Running(cfg) as run:
        await run.until(lambda: len(run.messages) >= 2)
    assert [json.loads(m.data)["data"] for m in run.messages] == [{"n": 1}, {"n": 3}]
    assert run.client.stats.rollovers == 1 and run.client.stats.reconnects == {}


async def test_a_split_message_over_max_payload_renews_the_connection_with_its_reason(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await greet(conn)  # its INFO says max_payload 1048576
        if len(upstream.connections) == 1:
            await conn.send(b"MSG ticks.a 1 2000000\r\n" + b"x" * 4000)  # 2 MB announced
            return
        await conn.send(b'MSG ticks.a 1 7\r\n{"n":2}\r\n')

    upstream.handler = handler
    with caplog.at_level(logging.INFO, logger="bridge"):
        async with Running(nats_source(tmp_path, upstream.url)) as run:
            await run.until(lambda: len(run.messages) >= 1)
    assert [json.loads(m.data)["data"] for m in run.messages] == [{"n": 2}]
    assert run.client.stats.reconnects == {"too_big": 1}
    assert "after message too big: NATS: a message of 2000000 bytes spans frames, over " \
           "max_payload 1048576: not kept" in caplog.text
