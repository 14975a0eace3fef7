"""The reconnecting source client against real loopback WebSocket servers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest

from bridge.config.model import SourceConfig
from bridge.config.specs import AuthSpec, HeartbeatSpec, ReplySpec, Step
from bridge.messages import Message
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.upstream.backoff import BackoffPolicy
from bridge.upstream.client import SourceClient
from bridge.upstream.state import ConnState
from tests.support.upstream import Upstream, UpstreamConn

FAST = BackoffPolicy(initial_delay=0.02, max_delay=0.5, multiplier=2.0, jitter=0.0)

HA_AUTH = AuthSpec(
    await_=Pattern({"type": "auth_required"}),
    send=Template({"type": "auth", "access_token": "good"}),
    expect=Pattern({"type": "auth_ok"}),
    reject=Pattern({"type": "auth_invalid"}),
    timeout=2.0,
)
HA_SUBSCRIBE = (
    Step(
        Template({"id": "{seq}", "type": "subscribe_events"}),
        expect=Pattern({"type": "result", "success": True}),
    ),
)


def source(url: str, **kw: Any) -> SourceConfig:
    kw.setdefault("reconnect", FAST)
    return SourceConfig(name="src", url=url, **kw)


async def home_assistant(conn: UpstreamConn) -> None:
    """Greets, checks the token, acks the subscription, then sends one event."""
    await conn.send_json({"type": "auth_required"})
    auth = await conn.recv_json()
    if auth != {"type": "auth", "access_token": "good"}:
        await conn.send_json({"type": "auth_invalid", "message": "Invalid access token"})
        return
    await conn.send_json({"type": "auth_ok"})
    sub = await conn.recv_json()
    await conn.send_json({"id": sub["id"], "type": "result", "success": True})
    await conn.send_json({"id": sub["id"], "type": "event", "n": len(conn.received)})


class Running:
    """Runs a SourceClient in a task and records what a user would see: states and messages."""

    def __init__(self, cfg: SourceConfig, *, inspect: bool = False, **kw: Any) -> None:
        self.inspect = inspect  # like a route with `when`: it reads each message's JSON
        self.messages: list[Message] = []
        self.states: list[ConnState] = []
        self._changed = asyncio.Event()
        self.client = SourceClient(cfg, self._deliver, on_state=self._state, **kw)
        self.task: asyncio.Task[None] | None = None

    def _deliver(self, msg: Message) -> None:
        if self.inspect:
            _ = msg.json
        self.messages.append(msg)
        self._poke()

    def _state(self, name: str, state: ConnState) -> None:
        assert name == "src"
        self.states.append(state)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def payloads(self) -> list[Any]:
        return [json.loads(m.data) for m in self.messages]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def stop(self, timeout: float = 8.0) -> None:
        assert self.task is not None
        self.client.stop()
        await asyncio.wait_for(self.task, timeout)

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.client.run())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The backoff delays the source logged, in order ("reconnecting in 0.05s after ...")."""
    return re.findall(r"reconnecting in ([0-9.]+)s", caplog.text)


def handshake_gaps(upstream: Upstream) -> list[float]:
    times = [h.at for h in upstream.handshakes]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_connects_with_headers_and_delivers_every_message(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send_json({"n": 1})
        await conn.send(b"\x00binary")

    upstream.handler = handler
    cfg = source(upstream.url + "?stream=a", headers={"X-Api-Key": "k1"})
    async with Running(cfg) as run:
        await run.until(lambda: len(run.messages) == 2)
        assert run.client.state is ConnState.CONNECTED
        assert run.states == [ConnState.CONNECTING, ConnState.CONNECTED]
    assert run.messages[0].data == '{"n":1}'
    assert run.messages[1].data == b"\x00binary"
    hs = upstream.handshakes[0]
    assert (hs.path, hs.query, hs.headers["X-Api-Key"]) == ("/ws", {"stream": "a"}, "k1")
    assert run.client.stats.received == 2
    assert run.states[-1] is ConnState.STOPPED


async def test_authenticates_and_subscribes_before_delivering(upstream: Upstream) -> None:
    upstream.handler = home_assistant
    async with Running(source(upstream.url, auth=HA_AUTH, subscribe=HA_SUBSCRIBE)) as run:
        await run.until(lambda: len(run.messages) == 1)
    conn = upstream.connections[0]
    assert [json.loads(m) for m in conn.received[:2]] == [
        {"type": "auth", "access_token": "good"},
        {"id": 1, "type": "subscribe_events"},
    ]
    # The greeting, auth_ok and the subscribe ack are the session's own, not the user's.
    assert run.payloads() == [{"id": 1, "type": "event", "n": 2}]
    assert run.states[:4] == [
        ConnState.CONNECTING, ConnState.AUTHENTICATING, ConnState.SUBSCRIBING, ConnState.CONNECTED,
    ]


async def test_auth_rejection_is_retried_with_growing_backoff(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.handler = home_assistant
    bad = AuthSpec(
        await_=HA_AUTH.await_, send=Template({"type": "auth", "access_token": "s3cret-wrong"}),
        expect=HA_AUTH.expect, reject=HA_AUTH.reject,
    )
    policy = BackoffPolicy(initial_delay=0.05, max_delay=1.0, multiplier=2.0, jitter=0.0)
    with caplog.at_level(logging.DEBUG, logger="bridge"):
        async with Running(source(upstream.url, auth=bad, reconnect=policy)) as run:
            await upstream.wait_connections(4)
            await run.until(lambda: run.client.stats.reconnects["auth_rejected"] >= 3)
    assert set(run.client.stats.reconnects) == {"auth_rejected"}
    assert ConnState.CONNECTED not in run.states
    assert waits(caplog)[:3] == ["0.05", "0.10", "0.20"]  # what the log tells the user
    gaps = handshake_gaps(upstream)[:3]  # and it did wait them: a wait is never shorter
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert "reconnecting in 0.05s after auth rejected" in caplog.text
    assert "s3cret-wrong" not in caplog.text


async def test_http_401_counts_as_auth_rejection_not_network_error(upstream: Upstream) -> None:
    upstream.reject_next(401, times=2)
    async with Running(source(upstream.url)) as run:
        await run.until(lambda: run.client.state is ConnState.CONNECTED)
    assert dict(run.client.stats.reconnects) == {"auth_rejected": 2}


async def test_reauthenticates_and_resubscribes_after_a_server_side_close(
    upstream: Upstream,
) -> None:
    upstream.handler = home_assistant
    async with Running(source(upstream.url, auth=HA_AUTH, subscribe=HA_SUBSCRIBE)) as run:
        await run.until(lambda: len(run.messages) == 1)
        await upstream.connections[0].close(1012, "service restart")
        await run.until(lambda: len(run.messages) == 2)
    second = upstream.connections[1]
    assert [json.loads(m)["type"] for m in second.received[:2]] == ["auth", "subscribe_events"]
    assert json.loads(second.received[1])["id"] == 1  # {seq} restarts on every connection
    assert dict(run.client.stats.reconnects) == {"closed": 1}
    assert run.states.count(ConnState.CONNECTED) == 2


async def test_resubscribes_after_server_restart(upstream: Upstream) -> None:
    upstream.handler = home_assistant
    async with Running(source(upstream.url, auth=HA_AUTH, subscribe=HA_SUBSCRIBE)) as run:
        await run.until(lambda: len(run.messages) == 1)
        await upstream.restart()
        await run.until(lambda: len(run.messages) == 2)
    assert run.client.stats.reconnects["network"] >= 1


async def test_a_server_that_greets_then_closes_meets_delays_growing_to_max_delay(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: UpstreamConn) -> None:  # nats-server with a wrong token, say
        await conn.send('INFO {"server_id":"x"}\r\n')  # a frame: it proves nothing
        await conn.close()

    upstream.handler = handler
    policy = BackoffPolicy(initial_delay=0.01, max_delay=0.08, multiplier=2.0, jitter=0.0)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Running(source(upstream.url, reconnect=policy)) as run:
            await upstream.wait_connections(7)
    delays = [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert waits(caplog)[:6] == [f"{d:.2f}" for d in delays]
    gaps = handshake_gaps(upstream)[:6]  # the upstream's own log of the attempts
    assert all(gap >= wait for gap, wait in zip(gaps, delays, strict=True))
    assert len(run.messages) >= 6  # each greeting was delivered; none reset the backoff


async def test_backoff_resets_only_after_a_connection_stayed_connected_reset_after(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    async def handler(conn: UpstreamConn) -> None:
        await conn.send_json({"hello": True})
        if upstream.connections.index(conn) == 3:  # the one healthy connection
            await release.wait()
        await conn.close()

    upstream.handler = handler
    skew = [0.0]  # the injected clock runs ahead of the loop's by this much

    def clock() -> float:
        return time.monotonic() + skew[0]

    policy = BackoffPolicy(initial_delay=0.04, max_delay=1.0, multiplier=2.0, jitter=0.0,
                           reset_after=10.0)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Running(source(upstream.url, reconnect=policy), clock=clock) as run:
            await upstream.wait_connections(4)
            await run.until(lambda: run.client.state is ConnState.CONNECTED)
            skew[0] += policy.reset_after  # it stays CONNECTED ten seconds
            release.set()
            await upstream.wait_connections(6)
    # reset: back to the initial delay after the connection that stayed up; data never did
    assert waits(caplog)[:5] == ["0.04", "0.08", "0.16", "0.04", "0.08"]
    gaps = handshake_gaps(upstream)
    assert gaps[0] >= 0.04 and gaps[1] >= 0.08 and gaps[2] >= 0.16 and gaps[4] >= 0.08


async def test_idle_timeout_reconnects(upstream: Upstream) -> None:
    async with Running(source(upstream.url, idle_timeout=0.15)) as run:
        conns = await upstream.wait_connections(2)
        assert await conns[0].wait_closed() == 1000
    assert run.client.stats.reconnects["timeout"] >= 1


async def test_heartbeat_keeps_a_responsive_connection_and_drops_a_silent_one(
    upstream: Upstream,
) -> None:
    answering = True

    async def handler(conn: UpstreamConn) -> None:
        while answering:
            ping = await conn.recv_json()
            await conn.send_json({"type": "pong", "id": ping["id"]})

    upstream.handler = handler
    # The pong may take up to a second: far more than a loaded machine delays a loopback
    # answer, so the responsive connection is never the one dropped.
    beat = HeartbeatSpec(
        Template({"id": "{seq}", "type": "ping"}), interval=0.03,
        expect=Pattern({"type": "pong"}), timeout=1.0,
    )
    async with Running(source(upstream.url, heartbeat=beat)) as run:
        conns = await upstream.wait_connections(1)
        await conns[0].wait_received(6)
        assert len(upstream.connections) == 1
        assert run.messages == []  # pongs are the session's own
        answering = False
        upstream.handler = None
        conns[0].go_half_open()  # stop reading: pings now go unanswered
        await upstream.wait_connections(2)
    assert run.client.stats.reconnects["timeout"] == 1


async def test_replies_answer_server_test_requests(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send_json({"jsonrpc": "2.0", "method": "heartbeat",
                              "params": {"type": "test_request"}})

    upstream.handler = handler
    reply = ReplySpec(
        when=Pattern({"method": "heartbeat", "params": {"type": "test_request"}}),
        send=Template({"jsonrpc": "2.0", "id": "{seq}", "method": "public/test"}),
    )
    async with Running(source(upstream.url, replies=(reply,))) as run:
        conns = await upstream.wait_connections(1)
        answer = await conns[0].recv_json()
        await run.until(lambda: len(run.messages) == 1)
    assert answer == {"jsonrpc": "2.0", "id": 1, "method": "public/test"}
    assert run.payloads()[0]["method"] == "heartbeat"


async def test_seq_is_strictly_increasing_across_the_whole_session(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        auth = await conn.recv_json()
        await conn.send_json({"ok": True, "id": auth["id"]})
        for _ in range(3):
            await conn.send_json({"q": True})

    upstream.handler = handler
    cfg = source(
        upstream.url,
        auth=AuthSpec(send=Template({"id": "{seq}", "op": "auth"}), expect=Pattern({"ok": True})),
        subscribe=(Step(Template({"id": "{seq}", "op": "sub"})),
                   Step(Template({"id": "{seq}", "op": "sub"}))),
        heartbeat=HeartbeatSpec(Template({"id": "{seq}", "op": "ping"}), interval=0.02),
        replies=(ReplySpec(Pattern({"q": True}), Template({"id": "{seq}", "op": "answer"})),),
    )
    async with Running(cfg):
        conns = await upstream.wait_connections(1)
        received = await conns[0].wait_received(9)
    sent = [json.loads(m) for m in received]
    ids = [m["id"] for m in sent if "id" in m]
    assert ids == list(range(1, len(ids) + 1))
    assert {m["op"] for m in sent} >= {"auth", "sub", "ping", "answer"}


async def test_stop_sends_unsubscribe_and_a_close_frame(upstream: Upstream) -> None:
    upstream.handler = home_assistant
    cfg = source(
        upstream.url, auth=HA_AUTH, subscribe=HA_SUBSCRIBE,
        unsubscribe=(Step(Template({"id": "{seq}", "type": "unsubscribe_events",
                                    "subscription": 1})),),
    )
    run = Running(cfg)
    async with run:
        await run.until(lambda: len(run.messages) == 1)
    conn = upstream.connections[0]
    assert await conn.wait_closed() == 1000
    assert json.loads(conn.received[-1]) == {
        "id": 2, "type": "unsubscribe_events", "subscription": 1,
    }
    assert run.client.state is ConnState.STOPPED
    assert run.states[-1] is ConnState.STOPPED


async def test_stop_during_backoff_returns_promptly(upstream: Upstream) -> None:
    upstream.reject_next(500, times=100)
    slow = BackoffPolicy(initial_delay=30.0, max_delay=30.0, jitter=0.0)
    async with Running(source(upstream.url, reconnect=slow)) as run:
        await run.until(lambda: run.client.state is ConnState.RECONNECTING)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await run.stop(timeout=1.0)
        assert loop.time() - started < 0.5
    assert dict(run.client.stats.reconnects) == {"handshake_rejected": 1}
    assert run.client.state is ConnState.STOPPED


async def test_stop_while_the_handshake_stalls_returns_promptly(upstream: Upstream) -> None:
    upstream.stall_handshake = True
    async with Running(source(upstream.url, connect_timeout=30.0)) as run:
        await upstream.wait_handshakes(1)
        await run.stop(timeout=1.0)
    upstream.stall_handshake = False
    assert run.client.state is ConnState.STOPPED


async def test_gives_up_after_max_attempts(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = BackoffPolicy(initial_delay=0.01, max_delay=0.05, jitter=0.0, max_attempts=2)
    run = Running(source(f"ws://127.0.0.1:{port}/", reconnect=policy))
    with caplog.at_level(logging.INFO, logger="bridge"):
        await asyncio.wait_for(run.client.run(), 5.0)
    assert run.client.state is ConnState.FAILED
    assert run.states[-1] is ConnState.FAILED
    assert dict(run.client.stats.reconnects) == {"network": 2}
    assert "giving up after 3 attempts" in caplog.text


async def test_invalid_json_is_forwarded_counted_and_logged_once(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        for _ in range(3):
            await conn.send("{not json")
        await conn.send_json({"ok": 1})

    upstream.handler = handler
    with caplog.at_level(logging.INFO, logger="bridge"):
        async with Running(source(upstream.url), inspect=True) as run:
            await run.until(lambda: len(run.messages) == 4)
    assert [m.data for m in run.messages[:3]] == ["{not json"] * 3
    assert run.client.stats.invalid == 3
    assert caplog.text.count("not valid JSON") == 1
    assert upstream.connections[0].close_code == 1000  # no reconnect because of garbage


async def test_frames_no_route_inspects_are_forwarded_byte_for_byte_without_parsing(
    upstream: Upstream,
) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send("{not json")
        await conn.send_json({"ok": 1})

    upstream.handler = handler
    async with Running(source(upstream.url)) as run:
        await run.until(lambda: len(run.messages) == 2)
    assert [m.data for m in run.messages] == ["{not json", '{"ok":1}']
    assert [m.parsed for m in run.messages] == [None, None]  # nobody needed the JSON
    assert run.client.stats.invalid == 0


async def test_invalid_json_is_dropped_when_configured(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        await conn.send("garbage")
        await conn.send_json({"ok": 1})

    upstream.handler = handler
    async with Running(source(upstream.url, on_invalid="drop")) as run:
        await run.until(lambda: len(run.messages) == 1)
    assert run.payloads() == [{"ok": 1}]
    assert run.client.stats.invalid == 1


async def test_an_oversized_frame_reconnects(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        if len(upstream.connections) == 1:
            await conn.send("x" * 500)
        else:
            await conn.send_json({"small": True})

    upstream.handler = handler
    async with Running(source(upstream.url, max_message_size=100)) as run:
        await run.until(lambda: len(run.messages) == 1)
    assert dict(run.client.stats.reconnects) == {"too_big": 1}
    assert run.payloads() == [{"small": True}]


async def test_a_half_open_peer_is_detected_by_ping_timeout(upstream: Upstream) -> None:
    async with Running(source(upstream.url, ping_interval=0.05, ping_timeout=0.1)) as run:
        conns = await upstream.wait_connections(1)
        conns[0].go_half_open()
        await upstream.wait_connections(2)
        await run.until(lambda: run.client.state is ConnState.CONNECTED)
    assert sum(run.client.stats.reconnects.values()) == 1


async def test_async_deliver_is_awaited_in_order(upstream: Upstream) -> None:
    async def handler(conn: UpstreamConn) -> None:
        for n in range(20):
            await conn.send_json({"n": n})

    upstream.handler = handler
    got: list[int] = []
    done = asyncio.Event()

    async def deliver(msg: Message) -> None:
        await asyncio.sleep(0)
        got.append(json.loads(msg.data)["n"])
        if len(got) == 20:
            done.set()

    client = SourceClient(source(upstream.url), deliver)
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(done.wait(), 5.0)
    client.stop()
    await asyncio.wait_for(task, 5.0)
    assert got == list(range(20))


async def test_an_error_in_deliver_ends_run_with_that_error(upstream: Upstream) -> None:
    # Messages are delivered in websockets' data callback while the task waits: an error there
    # (a bug in a route) must still end the source's task with it, as one raised in the task.
    async def handler(conn: UpstreamConn) -> None:
        for n in range(5):
            await conn.send_json({"n": n})
        await conn.wait_closed()

    upstream.handler = handler
    got: list[int] = []

    def deliver(msg: Message) -> None:
        got.append(json.loads(msg.data)["n"])
        if len(got) == 3:
            raise RuntimeError("a route's bug")

    client = SourceClient(source(upstream.url), deliver)
    with pytest.raises(RuntimeError, match="a route's bug"):
        await asyncio.wait_for(client.run(), 5.0)
    assert got == [0, 1, 2]


async def test_a_message_waiting_for_room_holds_back_the_messages_after_it(
    upstream: Upstream,
) -> None:
    # Back-pressure found in websockets' data callback: the frames that come with it or after
    # it wait in order until the task has awaited the room, as when the task read them.
    sent = asyncio.Event()

    async def handler(conn: UpstreamConn) -> None:
        for n in range(30):
            await conn.send_json({"n": n})
        sent.set()
        await conn.wait_closed()

    upstream.handler = handler
    got: list[int] = []
    room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    early: list[int] = []
    done = asyncio.Event()

    def deliver(msg: Message) -> asyncio.Future[None] | None:
        n = json.loads(msg.data)["n"]
        if got and not room.done():
            early.append(n)  # delivered while the first still waits for room
        got.append(n)
        if len(got) == 30:
            done.set()
        return room if n == 0 else None

    client = SourceClient(source(upstream.url), deliver)
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(sent.wait(), 5.0)
    for _ in range(20):  # loop turns for the frames to come in behind the first
        await asyncio.sleep(0)
    room.set_result(None)
    await asyncio.wait_for(done.wait(), 5.0)
    client.stop()
    await asyncio.wait_for(task, 5.0)
    assert (got, early) == (list(range(30)), [])
