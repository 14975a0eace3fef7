"""Frames beyond JSON: compressed binary frames, protobuf, several messages in one frame, text
read through a regex; decoded once, before the session. Loopback upstreams send them to a real
SourceClient and Router into real file sinks: the file on disk and the upstream's log are the
oracle. Every decode path is fuzzed: garbage in, a counted error out, never a crash."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.specs import ReplySpec, RouteSpec
from bridge.frames import FrameDecoder, FramesSpec, ProtobufSpec
from bridge.inflate import Undecodable
from bridge.messages import Message
from bridge.protobuf_frames import protobuf_decoder
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_fuzz import FUZZ
from tests.test_hostile import Bridge, source

TICK = {"ch": "market.btcusdt.trade", "price": 42.5, "ids": [1, 2, 3]}
COMPRESS = {
    "gzip": gzip.compress,
    "zlib": zlib.compress,
    "deflate": lambda data: zlib.compress(data)[2:-4],  # raw deflate: no header, no checksum
}
PROTO = """
syntax = "proto3";
package feed.v1;
message Deal { string price = 1; int64 time = 2; }
message Push { string channel = 1; repeated Deal deals = 2; }
"""


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A descriptor set built by protoc (grpcio-tools), as a user would build it."""
    where = tmp_path_factory.mktemp("proto")
    (where / "feed.proto").write_text(PROTO)
    out = where / "feed.desc"
    code = protoc.main(["protoc", f"-I{where}", "--include_imports",
                        f"--descriptor_set_out={out}", str(where / "feed.proto")])
    assert code == 0
    return out


def push_class(path: Path) -> Any:
    """The Push message class, built independently of the bridge to encode test frames."""
    pool = descriptor_pool.DescriptorPool()
    for proto in descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("feed.v1.Push"))


def proto_spec(path: Path, message: str = "Push") -> ProtobufSpec:
    data = path.read_bytes()
    return ProtobufSpec(str(path), message, "", protobuf_decoder(data, message))


# --- compressed binary frames, with the exchanges' in-band ping -----------------------------


@pytest.mark.parametrize("kind", ["gzip", "zlib", "deflate", "auto"])
async def test_compressed_frames_arrive_decoded_and_their_in_band_ping_is_answered(
    upstream: Upstream, tmp_path: Path, kind: str
) -> None:
    squeeze = COMPRESS["gzip" if kind == "auto" else kind]

    async def handler(conn: UpstreamConn) -> None:
        await conn.send(squeeze(dumps({**TICK, "n": 1})))
        await conn.send(squeeze(dumps({"ping": 1733380000123})))
        assert await conn.recv_json() == {"pong": 1733380000123}  # the upstream's log
        await conn.send(squeeze(dumps({**TICK, "n": 2})))

    upstream.handler = handler
    reply = ReplySpec(Pattern({"ping": {"$exists": True}}), Template({"pong": "{msg.ping}"}))
    cfg = source(upstream.url, frames=FramesSpec(binary=kind), replies=(reply,))
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.routed_at_least(3)
    assert bridge.delivered() == [{**TICK, "n": 1}, {"ping": 1733380000123}, {**TICK, "n": 2}]
    assert upstream.connections[0].received == ['{"pong":1733380000123}']
    assert bridge.client.stats.undecodable == {}


@pytest.mark.parametrize("on_invalid", ["forward", "drop"])
async def test_a_frame_that_does_not_inflate_is_counted_by_reason_and_forwarded_or_dropped(
    upstream: Upstream, tmp_path: Path, on_invalid: str
) -> None:
    bad = [b"\x1f\x8b not gzip at all", gzip.compress(dumps(TICK))[:-9], gzip.compress(b"\xff\xfe")]

    async def handler(conn: UpstreamConn) -> None:
        await conn.send(gzip.compress(dumps({"n": 1})))
        for frame in bad:
            await conn.send(frame)
        await conn.send(gzip.compress(dumps({"n": 2})))

    upstream.handler = handler
    cfg = source(upstream.url, frames=FramesSpec(binary="gzip"), on_invalid=on_invalid)
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.until(lambda: sum(bridge.client.stats.undecodable.values()) == 3)
        await bridge.routed_at_least(5 if on_invalid == "forward" else 2)
        assert bridge.client.state.value == "connected"  # the source keeps running
    assert bridge.client.stats.undecodable == {"gzip": 2, "utf8": 1}
    middle = bad if on_invalid == "forward" else []
    assert bridge.delivered() == [{"n": 1}, *middle, {"n": 2}]  # forwarded as received
    assert sum(bridge.client.stats.reconnects.values()) == 0


async def test_a_gzip_bomb_is_refused_at_max_message_size(tmp_path: Path) -> None:
    decoder = FrameDecoder(FramesSpec(binary="gzip"), "feed", limit=64 * 1024)
    bomb = gzip.compress(b"[" + b" " * (10 << 20) + b"]")  # 10 MiB of blanks in ~10 KiB
    (out,) = decoder.decode(bomb, 0.0)
    assert isinstance(out, Undecodable) and out.reason == "gzip"
    assert "max_message_size" in str(out)


def test_text_frames_pass_as_they_are_and_forward_raw_keeps_the_frame() -> None:
    frame = gzip.compress(dumps(TICK))
    raw = FrameDecoder(FramesSpec(binary="gzip", forward="raw"), "feed", 1 << 20)
    (msg,) = raw.decode(frame, 0.0)
    assert isinstance(msg, Message) and msg.data == frame and msg.json == TICK
    assert msg.text == json.dumps(TICK, separators=(",", ":"))
    (text,) = raw.decode('{"a":1}', 0.0)
    assert isinstance(text, Message) and text.data == '{"a":1}' and text.json == {"a": 1}


# --- several messages in one frame, and text read through a regex ---------------------------


async def test_one_frame_split_into_several_messages_each_routed(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send('{"n":1}\x1e{"n":2}\x1e')  # SignalR: each record ends with 0x1e
        await conn.send('{"n":3}\x1e')

    upstream.handler = handler
    frames = FramesSpec(split="\x1e")
    cfg = source(upstream.url, picked={"n": 2}, frames=frames)
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.routed_at_least(3)
    assert bridge.delivered() == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert bridge.delivered("picked") == [{"n": 2}]
    assert bridge.client.stats.received == 2  # frames


async def test_extract_reads_the_json_group_and_routes_on_the_other_groups(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send('42["tick",{"symbol":"btc"}]\n2\nnot a packet\n43["ack"]')

    upstream.handler = handler
    frames = FramesSpec(split="\n", extract=re.compile(r"^(?P<kind>\d+)(?P<json>.*)$"))
    cfg = source(upstream.url, frames=frames)
    by_kind = RouteSpec(sink="kinds", topic=Template("sio/{match.kind}"))
    cfg = replace(cfg, routes=(*cfg.routes, by_kind))
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.until(lambda: bridge.client.stats.undecodable["extract"] == 1)
        await bridge.routed_at_least(4)
    # "2" has no JSON: its message is null; "not a packet" is forwarded as received
    assert bridge.delivered() == [["tick", {"symbol": "btc"}], None, "not a packet", ["ack"]]
    kinds = [json.loads(line)["topic"] for line in
             (tmp_path / "kinds-feed.jsonl").read_text().splitlines()]
    assert kinds == ["sio/42", "sio/2", "sio/43"]


# --- protobuf frames -------------------------------------------------------------------------


async def test_protobuf_frames_are_decoded_to_json(
    upstream: Upstream, tmp_path: Path, descriptor: Path
) -> None:
    push = push_class(descriptor)
    first = push(channel="spot@deals", deals=[{"price": "1.5", "time": 1733380000123}])

    async def handler(conn: UpstreamConn) -> None:
        await conn.send('{"id":0,"code":0,"msg":"spot@deals"}')  # acks stay JSON text
        await conn.send(first.SerializeToString())
        await conn.send(b"\xff\xff\xff not protobuf")
        await conn.send(gzip.compress(b"also not"))

    upstream.handler = handler
    frames = FramesSpec(protobuf=proto_spec(descriptor))
    async with Bridge(source(upstream.url, frames=frames), tmp_path) as bridge:
        await bridge.until(lambda: bridge.client.stats.undecodable["protobuf"] == 2)
        await bridge.routed_at_least(4)
    delivered = bridge.delivered()
    assert delivered[:2] == [
        {"id": 0, "code": 0, "msg": "spot@deals"},
        {"channel": "spot@deals", "deals": [{"price": "1.5", "time": "1733380000123"}]},
    ]
    assert delivered[2:] == [b"\xff\xff\xff not protobuf", gzip.compress(b"also not")]


def test_gzip_compressed_protobuf_is_inflated_first(descriptor: Path) -> None:
    push = push_class(descriptor)
    frame = gzip.compress(push(channel="c").SerializeToString())
    decoder = FrameDecoder(FramesSpec(binary="gzip", protobuf=proto_spec(descriptor)), "f", 1 << 20)
    (msg,) = decoder.decode(frame, 0.0)
    assert isinstance(msg, Message) and msg.json == {"channel": "c"}
    assert msg.data == '{"channel":"c"}'


def test_a_message_name_the_descriptor_lacks_is_a_clear_error(descriptor: Path) -> None:
    with pytest.raises(ValueError, match=r"no message 'Nope'.*feed\.v1\.Push"):
        protobuf_decoder(descriptor.read_bytes(), "Nope")
    with pytest.raises(ValueError, match="not a descriptor set"):
        protobuf_decoder(b"\xff\x00garbage", "Push")
    assert protobuf_decoder(descriptor.read_bytes(), "feed.v1.Deal")(b"") == {}


# --- every decode path under garbage ---------------------------------------------------------

DECODERS = {
    "gzip": FramesSpec(binary="gzip"),
    "zlib": FramesSpec(binary="zlib"),
    "deflate": FramesSpec(binary="deflate"),
    "auto": FramesSpec(binary="auto"),
    "text": FramesSpec(binary="text"),
    "split+extract": FramesSpec(binary="auto", split="\n",
                                extract=re.compile(r"^(?P<k>\d*)(?P<json>.*)$")),
}
FRAMES = st.binary(max_size=300) | st.text(max_size=200) | st.builds(
    lambda pick, data: COMPRESS[pick](data), st.sampled_from(sorted(COMPRESS)),
    st.binary(max_size=200))


@FUZZ
@given(frame=FRAMES, name=st.sampled_from(sorted(DECODERS)))
def test_any_frame_decodes_to_messages_or_counted_reasons(frame: str | bytes, name: str) -> None:
    decoder = FrameDecoder(DECODERS[name], "fuzz", limit=4096)
    for out in decoder.decode(frame, 0.0):
        if isinstance(out, Undecodable):
            assert out.reason in ("gzip", "zlib", "deflate", "utf8", "extract")
        else:
            assert isinstance(out, Message)
            _ = out.json, out.text, out.match  # reading it never raises


@FUZZ
@given(frame=st.binary(max_size=300))
def test_any_bytes_as_protobuf_decode_or_fail_as_protobuf(descriptor: Path, frame: bytes) -> None:
    spec = FramesSpec(protobuf=proto_spec(descriptor))
    for out in FrameDecoder(spec, "fuzz", limit=4096).decode(frame, 0.0):
        if isinstance(out, Undecodable):
            assert out.reason == "protobuf"
        else:
            assert isinstance(out.json, dict)
