"""``ws-bridge replay``: a file sink recording served back as an upstream, paced as recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.config.load import load_config
from bridge.config.model import SourceConfig
from bridge.messages import Delivery, Message
from bridge.routing.router import Router
from bridge.routing.template import Context
from bridge.server.feed import FeedServer
from bridge.server.replay import ReplayServer, serve_replay
from bridge.sinks.file import FileSink
from bridge.sinks.formats import envelope
from bridge.sinks.settings import FileSinkConfig
from bridge.upstream.client import SourceClient

T0 = 1795784400.0  # 2026-11-27T13:00:00Z


def record(path: Path, *entries: tuple[float, str, str | bytes], extra: str = "") -> Path:
    """Writes envelope lines exactly as the file sink formats them: (offset, source, frame)."""
    lines = [envelope(Delivery(Message(src, data, T0 + at), data)) for at, src, data in entries]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@contextlib.asynccontextmanager
async def replaying(path: Path, **options: Any) -> AsyncIterator[ReplayServer]:
    async with ReplayServer(path, **options) as server:
        yield server


@contextlib.asynccontextmanager
async def client(server: ReplayServer) -> AsyncIterator[ClientConnection]:
    async with connect(server.url + "/ws", open_timeout=5, close_timeout=2) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def test_replay_keeps_the_recorded_pace_scaled_by_speed(tmp_path: Path) -> None:
    offsets = [0.0, 1.0, 2.0, 4.0, 6.0]  # seconds apart in the recording
    path = record(tmp_path / "rec.jsonl", *((at, "feed", f'{{"n":{n}}}')
                                            for n, at in enumerate(offsets)))
    clock = asyncio.get_running_loop().time
    async with replaying(path, speed=20) as server:
        connecting = clock()  # the server's schedule starts after this, once connected
        async with client(server) as ws:
            arrivals = []
            for n in range(len(offsets)):
                assert await recv(ws) == f'{{"n":{n}}}'
                arrivals.append(clock() - connecting)
    for n, at in enumerate(offsets):
        assert arrivals[n] >= at / 20, (n, arrivals)  # never early: 20x the recorded pace
    # 0.3 s at 20x, with room for a busy machine; the recorded pace would have taken 6 s.
    assert arrivals[-1] < 2.0


async def test_speed_zero_sends_as_fast_as_possible(tmp_path: Path) -> None:
    path = record(tmp_path / "rec.jsonl", *((n * 3600.0, "feed", f"m{n}") for n in range(200)))
    async with replaying(path, speed=0) as server, client(server) as ws:
        got = [await recv(ws) for _ in range(200)]  # recorded over 200 hours
    assert got == [f"m{n}" for n in range(200)]


async def test_loop_starts_the_recording_over_after_its_end(tmp_path: Path) -> None:
    path = record(tmp_path / "rec.jsonl", (0, "feed", "a"), (0.1, "feed", "b"), (0.2, "feed", "c"))
    async with replaying(path, speed=10, loop=True) as server, client(server) as ws:
        got = [await recv(ws) for _ in range(7)]
    assert got == ["a", "b", "c", "a", "b", "c", "a"]


async def test_payloads_come_back_as_recorded_binary_as_binary_frames(tmp_path: Path) -> None:
    path = record(
        tmp_path / "rec.jsonl",
        (0, "a", '{"p":1.5,"s":"BTC"}'), (0, "b", '{"from":"b"}'), (0, "a", b"\x00\x01\xff"),
        (0, "a", "plain text"), (0, "a", '{"last":true}'),
        extra="this line is not an envelope\n",
    )
    async with replaying(path, speed=0, source="a") as server, client(server) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "x"}))  # read and ignored
        got = [await recv(ws) for _ in range(4)]
        assert got == ['{"p":1.5,"s":"BTC"}', b"\x00\x01\xff", "plain text", '{"last":true}']
        with pytest.raises(TimeoutError):  # the end: the connection stays open and quiet
            await recv(ws, timeout=0.1)
        assert server.skipped == 1


async def test_every_client_gets_the_whole_recording_from_its_start(tmp_path: Path) -> None:
    path = record(tmp_path / "rec.jsonl", *((n * 0.01, "feed", f"m{n}") for n in range(20)))
    async with replaying(path, speed=1) as server, client(server) as first:
        assert [await recv(first) for _ in range(10)] == [f"m{n}" for n in range(10)]
        async with client(server) as second:
            assert server.clients == 2
            assert [await recv(second) for _ in range(20)] == [f"m{n}" for n in range(20)]
        assert [await recv(first) for _ in range(10)] == [f"m{n}" for n in range(10, 20)]


async def test_a_missing_file_fails_before_listening(tmp_path: Path) -> None:
    server = ReplayServer(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError):
        await server.start(port=0)
    with pytest.raises(ValueError, match="speed"):
        ReplayServer(tmp_path / "missing.jsonl", speed=-1)


class _Listening(logging.Handler):
    """Wakes the test when the server logs that it listens: no polling of the port."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "listening on" in record.getMessage():
            self.event.set()


async def test_serve_replay_serves_until_cancelled(tmp_path: Path) -> None:
    path = record(tmp_path / "rec.jsonl", (0, "feed", "hello"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listening = _Listening()
    logger = logging.getLogger("bridge.server")
    logger.addHandler(listening)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        task = asyncio.create_task(serve_replay(path, "127.0.0.1", port, speed=0))
        await asyncio.wait_for(listening.event.wait(), 5)
    finally:
        logger.removeHandler(listening)
        logger.setLevel(level)
    async with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
        assert await recv(ws) == "hello"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001


# -- record -> replay -> the same output -------------------------------------------------------

SESSION = """\
    auth:
      send: {type: auth, data: {token: demo-token}}
      expect: {type: auth_ok}
    subscribe:
      - send: {type: subscribe, id: "{seq}", data: {channel: ticks.btc}}
        expect: {type: subscribed}
"""


def bridge_config(tmp_path: Path, name: str, url: str, session: str = "") -> tuple[
    SourceConfig, FileSinkConfig
]:
    """A real config file: one source into a file sink writing ``<name>/<source>.jsonl``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        sinks:
          rec: {{type: file, path: "{tmp_path / name}/{{source}}.jsonl", flush_interval: 50ms}}
        sources:
          - name: demo
            url: {url}
            reconnect: {{initial_delay: 50ms, max_delay: 100ms}}
        """) + session + "    routes:\n      - {when: {type: tick}, sink: rec}\n")
    config = load_config(path, env={})
    sink = config.sinks["rec"]
    assert isinstance(sink, FileSinkConfig)
    return config.sources[0], sink


async def run_bridge(source: SourceConfig, sink_config: FileSinkConfig, count: int) -> Path:
    """Runs source -> router -> file sink until ``count`` messages are routed; the file."""
    sink = FileSink(sink_config)
    router = Router(source, {"rec": sink})
    enough = asyncio.Event()
    routed = 0

    def deliver(msg: Message) -> Any:
        nonlocal routed
        if routed >= count:
            return None
        routed += 1
        if routed == count:
            enough.set()
        return router.route(msg)

    client = SourceClient(source, deliver)
    sink_task = asyncio.create_task(sink.run())
    client_task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        client.stop()
        await asyncio.wait_for(client_task, 5)
        sink.close()
        await asyncio.wait_for(sink_task, 5)
    return Path(sink_config.path.render_str(Context("demo")))


def envelopes(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_recording_replayed_through_the_bridge_gives_the_same_output(
    tmp_path: Path,
) -> None:
    async with FeedServer(rate=200, seed=3) as feed:
        recorded = await run_bridge(*bridge_config(tmp_path, "first", feed.url + "/ws", SESSION),
                                    count=25)
    async with replaying(recorded, speed=5) as server:
        replayed = await run_bridge(*bridge_config(tmp_path, "second", server.url + "/ws"),
                                    count=25)
    first, second = envelopes(recorded), envelopes(replayed)
    assert len(first) == len(second) == 25
    assert [(e["source"], e["payload"]) for e in second] == [
        (e["source"], e["payload"]) for e in first]
    assert [e["payload"]["data"]["seq"] for e in second] == list(range(1, 26))
