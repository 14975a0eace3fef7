"""Hostile and broken upstreams: garbage, bad UTF-8, huge or deep frames, abrupt and half-open
peers, stalled handshakes. Each runs a real SourceClient and Router into a real FileSink against
a loopback server, and checks that what was sent was delivered, or that drops are counted."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from bridge.config.model import SourceConfig
from bridge.config.specs import RouteSpec
from bridge.messages import INVALID, MAX_JSON_DEPTH, Message
from bridge.routing.pattern import Pattern
from bridge.routing.router import Router
from bridge.routing.template import Template
from bridge.sinks.file import FileSink
from bridge.sinks.settings import FileSinkConfig
from bridge.upstream.backoff import BackoffPolicy
from bridge.upstream.client import SourceClient
from bridge.upstream.state import ConnState
from tests.support.upstream import Upstream, UpstreamConn

# No jitter, so reconnect delays are exact: 50 ms, 100 ms, 200 ms...
FAST = BackoffPolicy(initial_delay=0.05, max_delay=0.4, multiplier=2.0, jitter=0.0)
SLACK = 1.0  # scheduling allowance on a loaded CI machine


def source(url: str, picked: Any = None, **kw: Any) -> SourceConfig:
    """A source whose every frame goes to ``out``; with ``picked``, a second route sends the
    frames matching that pattern to ``picked`` as well (so the router reads their JSON)."""
    routes = [RouteSpec(sink="out")]
    if picked is not None:
        routes.append(RouteSpec(sink="picked", when=Pattern(picked)))
    kw.setdefault("reconnect", FAST)
    return SourceConfig(name="feed", url=url, routes=tuple(routes), **kw)


def numbered(first: int, count: int) -> list[str]:
    return [json.dumps({"n": n}, separators=(",", ":")) for n in range(first, first + count)]


def nested(depth: int) -> str:
    """A JSON text with ``depth`` nested arrays around one number."""
    return "[" * depth + "1" + "]" * depth


class Bridge:
    """One source bridged through the real Router into real FileSinks (envelope lines), one per
    sink its routes name, each writing ``<sink>-<source>.jsonl``."""

    def __init__(self, cfg: SourceConfig, tmp_path: Path) -> None:
        self.dir = tmp_path
        names = dict.fromkeys(route.sink for route in cfg.routes)
        self.sinks = {
            name: FileSink(FileSinkConfig(name, Template(f"{tmp_path}/{name}-{{source}}.jsonl")))
            for name in names
        }
        self.router = Router(cfg, dict(self.sinks))
        self.client = SourceClient(cfg, self._deliver, on_state=self._state)
        self.routed = 0
        self.states: list[ConnState] = []
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _deliver(self, msg: Message) -> Any:
        self.routed += 1
        self._poke()
        return self.router.route(msg)

    def _state(self, name: str, state: ConnState) -> None:
        self.states.append(state)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def routed_at_least(self, n: int) -> None:
        await self.until(lambda: self.routed >= n)

    def delivered(self, sink: str = "out") -> list[Any]:
        """What reached the sink's file: the JSON value, the text of a non-JSON frame, or bytes."""
        out: list[Any] = []
        path = self.dir / f"{sink}-feed.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            record = json.loads(line)
            assert record["source"] == "feed"
            if record.get("encoding") == "base64":
                out.append(base64.b64decode(record["payload"]))
            else:
                out.append(record["payload"])
        return out

    async def __aenter__(self) -> Bridge:
        self._tasks = [asyncio.create_task(sink.run()) for sink in self.sinks.values()]
        self._tasks.append(asyncio.create_task(self.client.run()))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        *sink_tasks, client_task = self._tasks
        self.client.stop()
        await asyncio.wait_for(client_task, 8.0)
        for sink in self.sinks.values():
            sink.close()
        await asyncio.wait_for(asyncio.gather(*sink_tasks), 5.0)


def as_json(frames: list[str]) -> list[Any]:
    return [json.loads(f) for f in frames]


# --- malformed text frames ----------------------------------------------------------------------

GARBAGE = ["{not json", "", "}", "[1, 2", "\x00\x01 control characters", "{'single': 'quotes'}",
           "true false", "é" * 50]


@pytest.mark.parametrize("on_invalid", ["forward", "drop"])
async def test_text_that_is_not_json_is_counted_and_forwarded_or_dropped(
    upstream: Upstream, tmp_path: Path, on_invalid: str
) -> None:
    good = numbered(0, len(GARBAGE) + 1)
    frames = [f for pair in itertools.zip_longest(good, GARBAGE) for f in pair if f is not None]

    async def handler(conn: UpstreamConn) -> None:
        for frame in frames:
            await conn.send(frame)

    upstream.handler = handler
    expected = len(frames) if on_invalid == "forward" else len(good)
    # Archive everything, and pick one kind of message: that route reads each frame's JSON.
    cfg = source(upstream.url, picked={"n": 1}, on_invalid=on_invalid)
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.routed_at_least(expected)
        assert bridge.client.state is ConnState.CONNECTED  # the source keeps running
    stats = bridge.client.stats
    assert stats.invalid == len(GARBAGE)
    assert (stats.received, stats.connects, sum(stats.reconnects.values())) == (len(frames), 1, 0)
    assert len(upstream.connections) == 1
    if on_invalid == "forward":  # sent = delivered, the garbage as its text
        assert bridge.delivered() == [json.loads(f) if f in good else f for f in frames]
    else:  # the documented drop count is the invalid count
        assert bridge.delivered() == as_json(good)
        assert len(frames) - len(bridge.delivered()) == stats.invalid
    assert bridge.delivered("picked") == [{"n": 1}]


async def test_invalid_utf8_in_a_text_frame_reconnects_and_later_messages_arrive(
    upstream: Upstream, tmp_path: Path
) -> None:
    before, after = numbered(0, 3), numbered(3, 3)

    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            for frame in before:
                await conn.send(frame)
            await conn.ws.send(b'{"n": "\xff\xfe"}', text=True)  # a text frame, not UTF-8
        else:
            for frame in after:
                await conn.send(frame)

    upstream.handler = handler
    async with Bridge(source(upstream.url), tmp_path) as bridge:
        await bridge.routed_at_least(6)
    assert await upstream.connections[0].wait_closed() == 1007  # invalid frame payload data
    assert bridge.delivered() == as_json(before + after)
    stats = bridge.client.stats
    assert dict(stats.reconnects) == {"closed": 1}
    assert stats.last_error is not None and "1007" in stats.last_error
    assert stats.connects == 2


@pytest.mark.parametrize("big", ['{"big":"' + "x" * 5000 + '"}', b"\x00" * 5000, ["x" * 100] * 50],
                         ids=["text", "binary", "fragmented"])
async def test_an_oversized_frame_reconnects_and_later_messages_arrive(
    upstream: Upstream, tmp_path: Path, big: Any
) -> None:
    before, after = numbered(0, 2), numbered(2, 2)

    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            for frame in before:
                await conn.send(frame)
            await conn.ws.send(big)  # a list is sent as one message in many fragments
        else:
            for frame in after:
                await conn.send(frame)

    upstream.handler = handler
    async with Bridge(source(upstream.url, max_message_size=1000), tmp_path) as bridge:
        await bridge.routed_at_least(4)
    assert await upstream.connections[0].wait_closed() == 1009  # message too big
    assert bridge.delivered() == as_json(before + after)  # the big one is the one drop
    assert dict(bridge.client.stats.reconnects) == {"too_big": 1}


async def test_a_message_in_too_many_fragments_reconnects(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            await conn.ws.send(["x"] * 5000)  # 5000 one-byte fragments: tiny, a memory attack
        else:
            await conn.send('{"n":1}')

    upstream.handler = handler
    # The client stops reading once thousands of fragments are queued, so it never reads the
    # server's answer to its close frame: the close timeout (= the ping timeout) ends the wait.
    async with Bridge(source(upstream.url, ping_timeout=0.2), tmp_path) as bridge:
        await bridge.routed_at_least(1)
    assert bridge.delivered() == [{"n": 1}]
    assert dict(bridge.client.stats.reconnects) == {"too_big": 1}


async def test_a_fragmented_message_within_the_limit_arrives_whole(
    upstream: Upstream, tmp_path: Path
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.ws.send(['{"parts":', "[1,2,", "3]}"])  # one message in three fragments

    upstream.handler = handler
    async with Bridge(source(upstream.url), tmp_path) as bridge:
        await bridge.routed_at_least(1)
    assert bridge.delivered() == [{"parts": [1, 2, 3]}]


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_the_depth_limit_holds_for_the_shortest_texts_of_each_depth(opening: str) -> None:
    # Short texts skip the bracket count: the shortest text one level too deep must still fail.
    def text(depth: int) -> str:  # a value inside ``depth`` containers
        return opening * depth + "1" + ("]" if opening == "[" else "}") * depth

    assert Message("s", text(MAX_JSON_DEPTH), 0.0).json is not INVALID
    assert Message("s", text(MAX_JSON_DEPTH + 1), 0.0).json is INVALID
    assert len(nested(MAX_JSON_DEPTH + 1)) == 2 * MAX_JSON_DEPTH + 3  # just over the skip


def test_a_long_object_of_scalars_is_kept_and_one_deep_value_in_it_is_not() -> None:
    # A dict of scalars skips the bracket count; one nested field brings the count back.
    flat = {f"k{i}": "[" * 20 + "{" * 50 for i in range(8)}  # brackets in strings: not levels
    assert Message("s", json.dumps(flat), 0.0).json == flat
    deep = json.dumps({**flat, "z": json.loads(nested(MAX_JSON_DEPTH))})  # 1 + 64 levels
    assert Message("s", deep, 0.0).json is INVALID
    ok = json.dumps({**flat, "z": json.loads(nested(MAX_JSON_DEPTH - 1))})
    assert Message("s", ok, 0.0).json is not INVALID


@pytest.mark.parametrize("inspected", [True, False], ids=["route-reads-json", "passthrough"])
async def test_too_deeply_nested_json_is_invalid_never_a_crash(
    upstream: Upstream, tmp_path: Path, inspected: bool
) -> None:
    deepest_ok = nested(MAX_JSON_DEPTH)
    frames = [deepest_ok, nested(MAX_JSON_DEPTH + 1), nested(100_000), '{"after":true}']

    async def handler(conn: UpstreamConn) -> None:
        for frame in frames:
            await conn.send(frame)

    upstream.handler = handler
    picked = {"after": True} if inspected else None
    async with Bridge(source(upstream.url, picked=picked), tmp_path) as bridge:
        await bridge.routed_at_least(len(frames))
        assert bridge.client.state is ConnState.CONNECTED
    # Forwarded as sent (on_invalid: forward): JSON within the limit as JSON, the rest as text
    # (the file sink's envelope decodes each frame, so it meets the deep ones too).
    assert bridge.delivered() == [json.loads(deepest_ok), frames[1], frames[2], {"after": True}]
    if inspected:
        assert bridge.delivered("picked") == [{"after": True}]
        assert bridge.client.stats.invalid == 2  # counted when the picking route read them
    assert sum(bridge.client.stats.reconnects.values()) == 0


async def test_binary_frames_are_forwarded_untouched(upstream: Upstream, tmp_path: Path) -> None:
    rng = random.Random(7)
    frames = [bytes(range(256)), b"", b'{"looks": "like json"}', b"\xff\xfe\xfd not utf-8",
              rng.randbytes(64 * 1024), b"\n\r\n\x00"]

    async def handler(conn: UpstreamConn) -> None:
        for frame in frames:
            await conn.send(frame)

    upstream.handler = handler
    async with Bridge(source(upstream.url), tmp_path) as bridge:
        await bridge.routed_at_least(len(frames))
    assert bridge.delivered() == frames
    assert bridge.client.stats.invalid == 0  # binary is not "invalid JSON"


# --- peers that go away -------------------------------------------------------------------------

async def test_a_peer_that_drops_mid_frame_is_reconnected_without_loss(
    upstream: Upstream, tmp_path: Path
) -> None:
    before, after = numbered(0, 5), numbered(5, 5)
    started = asyncio.Event()

    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            for frame in before:
                await conn.send(frame)
            started.set()
        else:
            for frame in after:
                await conn.send(frame)

    upstream.handler = handler
    async with Bridge(source(upstream.url), tmp_path) as bridge:
        await bridge.routed_at_least(len(before))
        conn = upstream.connections[0]
        # The header of a 1000-byte text frame, 10 bytes of it, then a TCP drop: no close frame.
        conn.ws.transport.write(b"\x81\x7e\x03\xe8" + b"x" * 10)
        conn.kill()
        await bridge.routed_at_least(len(before) + len(after))
    assert bridge.delivered() == as_json(before + after)
    assert dict(bridge.client.stats.reconnects) == {"network": 1}  # 1006: no close frame


async def test_a_half_open_upstream_is_detected_by_ping_timeout_and_reconnected(
    upstream: Upstream, tmp_path: Path
) -> None:
    interval = timeout = 0.1
    before, after = numbered(0, 3), numbered(3, 3)

    async def handler(conn: UpstreamConn) -> None:
        for frame in before if len(upstream.connections) == 1 else after:
            await conn.send(frame)

    upstream.handler = handler
    cfg = source(upstream.url, ping_interval=interval, ping_timeout=timeout)
    loop = asyncio.get_running_loop()
    async with Bridge(cfg, tmp_path) as bridge:
        await bridge.routed_at_least(len(before))
        went_quiet = loop.time()
        upstream.connections[0].go_half_open()  # reads nothing, answers no ping; TCP stays up
        await upstream.wait_handshakes(2)
        detected_in = upstream.handshakes[1].at - went_quiet
        await bridge.routed_at_least(len(before) + len(after))
    # A ping within `interval`, no pong within `timeout`, a close frame nobody answers within
    # the close timeout (= the ping timeout), then the first backoff delay.
    assert detected_in < interval + timeout + timeout + FAST.initial_delay + SLACK
    assert bridge.delivered() == as_json(before + after)
    stats = bridge.client.stats
    assert (sum(stats.reconnects.values()), stats.connects) == (1, 2)
    assert dict(stats.reconnects) == {"timeout": 1}  # a ping timeout, not a server close
    assert stats.last_error is not None and "stopped answering pings" in stats.last_error


async def test_a_stalled_handshake_times_out_then_backs_off(
    upstream: Upstream, tmp_path: Path
) -> None:
    connect_timeout = 0.2
    upstream.stall_handshake = True  # TCP is accepted; the HTTP upgrade is never answered

    async def handler(conn: UpstreamConn) -> None:
        await conn.send('{"n":0}')

    upstream.handler = handler
    async with Bridge(source(upstream.url, connect_timeout=connect_timeout), tmp_path) as bridge:
        handshakes = await upstream.wait_handshakes(3)
        gaps = [b.at - a.at for a, b in itertools.pairwise(handshakes[:3])]
        assert bridge.routed == 0 and not upstream.connections
        upstream.stall_handshake = False
        await bridge.routed_at_least(1)
    for gap, delay in zip(gaps, (FAST.initial_delay, FAST.initial_delay * 2), strict=True):
        assert connect_timeout + delay - 0.02 <= gap < connect_timeout + delay + SLACK
    stats = bridge.client.stats
    assert stats.reconnects["network"] >= 2
    assert ConnState.RECONNECTING in bridge.states
    assert bridge.delivered() == [{"n": 0}]
