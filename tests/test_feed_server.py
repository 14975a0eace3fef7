"""The demo upstream served to real websockets clients: auth, channels, ticks, RPC, publish."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.server.feed import FeedServer

MakeFeed = Callable[..., Awaitable[FeedServer]]


@pytest_asyncio.fixture
async def make_feed() -> AsyncIterator[MakeFeed]:
    servers: list[FeedServer] = []

    async def make(**kwargs: Any) -> FeedServer:
        server = FeedServer(seed=7, **kwargs)
        await server.start(port=0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest_asyncio.fixture
async def feed(make_feed: MakeFeed) -> FeedServer:
    return await make_feed(rate=50)


async def send(ws: ClientConnection, obj: Any) -> None:
    await ws.send(json.dumps(obj))


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def expect(ws: ClientConnection, kind: str, limit: int = 500) -> Any:
    """The next message of type ``kind``, skipping others (ticks) up to ``limit``."""
    for _ in range(limit):
        msg = await recv(ws)
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind!r} within {limit} messages")


@contextlib.asynccontextmanager
async def session(
    feed: FeedServer, token: str | None = "demo-token", compression: str | None = "deflate"
) -> AsyncIterator[ClientConnection]:
    async with connect(feed.url, proxy=None, compression=compression) as ws:
        if token is not None:
            await send(ws, {"type": "auth", "data": {"token": token}})
            assert await recv(ws) == {"type": "auth_ok"}
        yield ws


async def test_auth_with_the_demo_token_is_accepted(feed: FeedServer) -> None:
    async with session(feed, token=None) as ws:
        await send(ws, {"type": "auth", "id": 1, "data": {"token": "demo-token"}})
        assert await recv(ws) == {"type": "auth_ok", "id": 1}


async def test_wrong_token_fails_and_leaves_the_connection_open(feed: FeedServer) -> None:
    async with session(feed, token=None) as ws:
        await send(ws, {"type": "auth", "data": {"token": "nope"}})
        assert await recv(ws) == {"type": "auth_failed", "data": {"reason": "invalid token"}}
        await send(ws, {"type": "auth", "data": {"token": "demo-token"}})
        assert await recv(ws) == {"type": "auth_ok"}


async def test_a_configured_token_replaces_the_demo_token(make_feed: MakeFeed) -> None:
    feed = await make_feed(token="s3cret")
    async with session(feed, token="s3cret") as ws:
        await send(ws, {"type": "ping", "id": 1})
        assert await recv(ws) == {"type": "pong", "id": 1}


async def test_requests_before_auth_are_refused(feed: FeedServer) -> None:
    async with session(feed, token=None) as ws:
        await send(ws, {"type": "subscribe", "id": 3, "data": {"channel": "ticks.btc"}})
        assert await recv(ws) == {"type": "error", "id": 3, "data": {"reason": "not authenticated"}}


async def test_subscribe_is_acknowledged_with_its_id(feed: FeedServer) -> None:
    async with session(feed) as ws:
        await send(ws, {"type": "subscribe", "id": 7, "data": {"channel": "ticks.btc"}})
        assert await recv(ws) == {"type": "subscribed", "id": 7, "data": {"channel": "ticks.btc"}}


async def test_ticks_arrive_with_increasing_seq_per_channel(feed: FeedServer) -> None:
    async with session(feed) as ws:
        for n, channel in enumerate(["ticks.btc", "ticks.eth"]):
            await send(ws, {"type": "subscribe", "id": n, "data": {"channel": channel}})
        seqs: dict[str, list[int]] = {"ticks.btc": [], "ticks.eth": []}
        for _ in range(200):
            msg = await recv(ws)
            if msg["type"] != "tick":
                continue
            tick = msg["data"]
            assert isinstance(tick["price"], float) and tick["price"] > 0
            assert isinstance(tick["ts"], int)
            seqs[tick["channel"]].append(tick["seq"])
            if min(len(s) for s in seqs.values()) >= 5:
                break
        for seq in seqs.values():
            assert len(seq) >= 5
            assert seq == list(range(seq[0], seq[0] + len(seq)))


async def test_ping_gets_a_pong_with_the_same_id(feed: FeedServer) -> None:
    async with session(feed) as ws:
        await send(ws, {"type": "ping", "id": 42})
        assert await recv(ws) == {"type": "pong", "id": 42}


async def test_rpc_echo_time_and_unknown_method(feed: FeedServer) -> None:
    async with session(feed) as ws:
        echo = {"method": "echo", "params": {"a": [1, 2]}}
        await send(ws, {"type": "rpc", "id": 1, "data": echo})
        assert await recv(ws) == {"type": "rpc_result", "id": 1, "data": {"params": {"a": [1, 2]}}}
        await send(ws, {"type": "rpc", "id": 2, "data": {"method": "time"}})
        reply = await recv(ws)
        assert reply["type"] == "rpc_result" and reply["id"] == 2
        assert isinstance(reply["data"]["ts"], int)
        await send(ws, {"type": "rpc", "id": 3, "data": {"method": "nope"}})
        error = {"type": "rpc_error", "id": 3, "data": {"reason": "unknown method"}}
        assert await recv(ws) == error


async def test_publish_fans_out_to_the_channel_subscribers_only(make_feed: MakeFeed) -> None:
    feed = await make_feed(rate=0)
    async with session(feed) as alice, session(feed) as bob, session(feed) as carol:
        for ws, channel in [(alice, "chat"), (bob, "chat"), (carol, "other")]:
            await send(ws, {"type": "subscribe", "id": 1, "data": {"channel": channel}})
            await expect(ws, "subscribed")
        publish = {"channel": "chat", "payload": {"t": "hi"}}
        await send(alice, {"type": "publish", "id": 2, "data": publish})
        message = {"type": "message", "data": {"channel": "chat", "payload": {"t": "hi"}}}
        assert await recv(alice) == message
        assert await recv(alice) == {"type": "published", "id": 2,
                                     "data": {"channel": "chat", "receivers": 2}}
        assert await recv(bob) == message
        # The fan-out happened before the receipt; carol's next message must be her own pong.
        await send(carol, {"type": "ping", "id": 3})
        assert await recv(carol) == {"type": "pong", "id": 3}


async def test_unsubscribe_stops_ticks(feed: FeedServer) -> None:
    async with session(feed) as ws:
        await send(ws, {"type": "subscribe", "id": 1, "data": {"channel": "ticks.btc"}})
        await expect(ws, "tick")
        await send(ws, {"type": "unsubscribe", "id": 2, "data": {"channel": "ticks.btc"}})
        assert await expect(ws, "unsubscribed") == {
            "type": "unsubscribed", "id": 2, "data": {"channel": "ticks.btc"}}
        # Ten tick periods at rate 50 without a single tick.
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=0.2)


async def test_invalid_json_gets_an_error_and_the_connection_survives(feed: FeedServer) -> None:
    async with session(feed) as ws:
        await ws.send("{not json")
        assert await recv(ws) == {"type": "error", "data": {"reason": "invalid JSON"}}
        await send(ws, {"type": "ping", "id": 1})
        assert await recv(ws) == {"type": "pong", "id": 1}


async def test_a_slow_client_is_dropped_without_stalling_the_others(make_feed: MakeFeed) -> None:
    feed = await make_feed(rate=0, outbox=8)
    payload = {"channel": "big", "payload": "x" * 32_000}
    # Without compression the big payloads really fill the slow client's TCP buffers.
    async with session(feed, compression=None) as slow, session(feed, compression=None) as fast:
        for ws in (slow, fast):
            await send(ws, {"type": "subscribe", "id": 1, "data": {"channel": "big"}})
            await expect(ws, "subscribed")
        slow.transport.pause_reading()
        for n in range(1000):
            await send(fast, {"type": "publish", "id": n, "data": payload})
            assert (await recv(fast))["type"] == "message"
            assert (await recv(fast))["id"] == n
            if feed.dropped_clients:
                break
        assert feed.dropped_clients == 1
        slow.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            for _ in range(1000):
                await recv(slow)
        await send(fast, {"type": "ping", "id": "still here"})
        assert await recv(fast) == {"type": "pong", "id": "still here"}


async def test_cancelling_serve_forever_closes_clients_with_going_away() -> None:
    feed = FeedServer()
    await feed.start(port=0)
    serving = asyncio.create_task(feed.serve_forever())
    async with session(feed) as ws:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001
    assert feed.clients == 0
