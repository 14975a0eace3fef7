"""The websocket sink served to real websockets clients and to a headless Chromium page."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from bridge.config.load import load_config
from bridge.messages import Delivery, Message
from bridge.sinks.settings import WebSocketSinkConfig
from bridge.sinks.websocket import WebSocketSink

TOKEN = "s3cret-token-for-tests"
T0 = 1795784400.123

MakeSink = Callable[..., Awaitable[WebSocketSink]]


@pytest_asyncio.fixture
async def make_sink() -> AsyncIterator[MakeSink]:
    """Starts sinks on 127.0.0.1, port 0, and stops each one (bounded) after the test."""
    running: list[tuple[WebSocketSink, asyncio.Task[None]]] = []

    async def make(**options: Any) -> WebSocketSink:
        sink = WebSocketSink(WebSocketSinkConfig("dash", TOKEN, port=0, **options),
                             close_timeout=2.0)
        await sink.start()
        running.append((sink, asyncio.create_task(sink.run())))
        return sink

    yield make
    for sink, task in running:
        sink.close()
        await asyncio.wait_for(task, 10)


@pytest_asyncio.fixture
async def sink(make_sink: MakeSink) -> WebSocketSink:
    return await make_sink()


def delivery(payload: str | bytes, topic: str | None = None, source: str = "binance") -> Delivery:
    return Delivery(Message(source, payload, T0), payload, topic)


@contextlib.asynccontextmanager
async def client(
    sink: WebSocketSink, *, token: str | None = TOKEN, bearer: str | None = None,
    origin: str | None = None, compression: str | None = "deflate", path: str = "/",
) -> AsyncIterator[ClientConnection]:
    url = f"ws://127.0.0.1:{sink.port}{path}" + (f"?token={token}" if token else "")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    async with connect(url, additional_headers=headers, origin=Origin(origin) if origin else None,
                       compression=compression, open_timeout=5, close_timeout=2) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await recv(ws))


async def subscribe(ws: ClientConnection, *filters: str) -> None:
    await ws.send(json.dumps({"subscribe": list(filters)}))
    assert await recv_json(ws) == {"subscribed": list(filters)}


async def refused(sink: WebSocketSink, **options: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with client(sink, **options):
            pass
    return caught.value.response.status_code


# -- handshake: token, origin, address -------------------------------------------------------


async def test_a_client_without_the_right_token_gets_http_401(sink: WebSocketSink) -> None:
    assert await refused(sink, token=None) == 401
    assert await refused(sink, token="wrong-token") == 401
    assert await refused(sink, token=None, bearer="wrong-token") == 401
    assert sink.stats.rejected == 3
    assert sink.clients == 0


async def test_the_token_is_accepted_in_the_query_or_as_a_bearer_header(
    sink: WebSocketSink,
) -> None:
    async with client(sink) as by_query, client(sink, token=None, bearer=TOKEN) as by_header:
        for ws in (by_query, by_header):
            await subscribe(ws, "#")
        sink.send(delivery('{"p":1}'))
        for ws in (by_query, by_header):
            assert (await recv_json(ws))["payload"] == {"p": 1}


async def test_a_browser_page_from_an_origin_not_allowed_gets_http_403(
    make_sink: MakeSink,
) -> None:
    sink = await make_sink(allowed_origins=("http://localhost:3000",))
    assert await refused(sink, origin="http://evil.example") == 403
    assert await refused(sink, origin="http://localhost:3001") == 403
    # The origin is checked first: a foreign page learns nothing about the token.
    assert await refused(sink, origin="http://evil.example", token=None) == 403
    async with client(sink, origin="http://localhost:3000") as browser, client(sink) as script:
        for ws in (browser, script):  # a client without an Origin header is not a browser
            await subscribe(ws, "#")


async def test_another_path_gets_http_404(sink: WebSocketSink) -> None:
    assert await refused(sink, path="/other") == 404


async def test_the_sink_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    assert WebSocketSinkConfig("dash", TOKEN).host == "127.0.0.1"
    config = tmp_path / "bridge.yaml"
    config.write_text(textwrap.dedent("""\
        version: 1
        sinks:
          dash: {type: websocket, token: "${env:DASH_TOKEN}"}
        sources:
          - {name: feed, url: "ws://127.0.0.1:1/ws", routes: [{sink: dash}]}
        """))
    loaded = load_config(config, env={"DASH_TOKEN": TOKEN})
    built = loaded.sinks["dash"]
    assert built == WebSocketSinkConfig("dash", TOKEN, host="127.0.0.1", port=8766)
    assert TOKEN in loaded.secrets  # redacted from every log line and error message
    sink = WebSocketSink(dataclasses.replace(built, port=0))
    await sink.start()
    task = asyncio.create_task(sink.run())
    try:
        assert sink.url.startswith("ws://127.0.0.1:")
    finally:
        sink.close()
        await asyncio.wait_for(task, 5)


async def test_the_listen_address_and_options_come_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(textwrap.dedent("""\
        version: 1
        sinks:
          dash:
            type: websocket
            listen: "[::1]:9001"
            path: /stream
            token: at-least-8-chars
            allowed_origins: [http://localhost:3000]
            format: raw
            client_queue: 10
            compression: false
            queue: {max_messages: 50, overflow: drop_newest}
        sources:
          - {name: feed, url: "ws://127.0.0.1:1/ws", routes: [{sink: dash}]}
        """))
    built = load_config(config, env={}).sinks["dash"]
    assert isinstance(built, WebSocketSinkConfig)
    assert (built.host, built.port, built.path, built.format) == ("::1", 9001, "/stream", "raw")
    assert (built.allowed_origins, built.client_queue, built.compression) == (
        ("http://localhost:3000",), 10, False)
    assert (built.queue.max_messages, built.queue.overflow) == (50, "drop_newest")


class _LogWaiter(logging.Handler):
    """Wakes the test on a log line containing ``text``: lifecycle events announce themselves."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


async def test_a_taken_port_is_retried_until_it_is_free(
    make_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    first = await make_sink()
    config = WebSocketSinkConfig("second", TOKEN, port=first.port)
    second = WebSocketSink(config, retry_delay=0.05)
    failed, listening = _LogWaiter("cannot listen on"), _LogWaiter("sink second: listening")
    for waiter in (failed, listening):
        logging.getLogger("bridge").addHandler(waiter)
    task = asyncio.create_task(second.run())
    try:
        await asyncio.wait_for(failed.seen.wait(), 5)
        first.close()  # frees the port; the fixture's teardown still awaits its run
        await asyncio.wait_for(listening.seen.wait(), 5)
        assert second.port == config.port and second.stats.errors >= 1
        async with client(second) as ws:
            await subscribe(ws, "#")
    finally:
        for waiter in (failed, listening):
            logging.getLogger("bridge").removeHandler(waiter)
        second.close()
        await asyncio.wait_for(task, 5)
    assert sum("cannot listen" in r.getMessage() for r in caplog.records) == 1  # not per retry


# -- subscriptions and formats -----------------------------------------------------------------


async def test_clients_get_only_the_topics_their_filters_match(sink: WebSocketSink) -> None:
    async with client(sink) as trades, client(sink) as everything, client(sink) as idle:
        await subscribe(trades, "feeds/+/trades")
        await subscribe(everything, "#")
        sink.send(delivery('{"n":1}', "feeds/btc/trades"))
        sink.send(delivery('{"n":2}', "feeds/btc/book"))
        sink.send(delivery('{"n":3}'))  # no route topic: the source name is the topic
        sink.send(delivery('{"n":4}', "feeds/eth/trades"))
        assert [(await recv_json(trades))["payload"]["n"] for _ in range(2)] == [1, 4]
        got = [await recv_json(everything) for _ in range(4)]
        assert [m["payload"]["n"] for m in got] == [1, 2, 3, 4]
        assert [m.get("topic") for m in got] == [
            "feeds/btc/trades", "feeds/btc/book", None, "feeds/eth/trades"]
        await trades.send(json.dumps({"unsubscribe": "feeds/+/trades", "subscribe": "binance"}))
        assert await recv_json(trades) == {"subscribed": ["binance"]}
        assert await recv_json(trades) == {"unsubscribed": ["feeds/+/trades"]}
        sink.send(delivery('{"n":5}', "feeds/btc/trades"))
        sink.send(delivery('{"n":6}'))
        assert (await recv_json(trades))["payload"] == {"n": 6}
        assert [(await recv_json(everything))["payload"]["n"] for _ in range(2)] == [5, 6]
        await idle.send(json.dumps({"subscribe": ["x"]}))
        assert await recv_json(idle) == {"subscribed": ["x"]}  # and nothing was queued before it
    assert sink.stats.written == 2 + 4 + 1 + 2


async def test_a_bad_request_gets_an_error_and_the_connection_survives(
    sink: WebSocketSink,
) -> None:
    async with client(sink) as ws:
        for bad in ("not json", "[1]", '{"hello": 1}', '{"subscribe": [1]}',
                    '{"subscribe": ["a/#/b"]}', '{"subscribe": ["a+"]}'):
            await ws.send(bad)
            assert "error" in await recv_json(ws), bad
        await ws.send(json.dumps({"subscribe": [f"t/{i}" for i in range(101)]}))
        assert "at most 100" in (await recv_json(ws))["error"]
        await subscribe(ws, "ok/+")
        sink.send(delivery("plain text", "ok/1"))
        assert (await recv_json(ws))["payload"] == "plain text"


async def test_the_envelope_carries_time_source_topic_and_payload(sink: WebSocketSink) -> None:
    async with client(sink) as ws:
        await subscribe(ws, "#")
        sink.send(delivery('{"s":"BTCUSDT","p":"1.5"}', "feeds/btc"))
        sink.send(delivery(b"\x00\xffbin", "feeds/bin"))
        text = await recv(ws)
        assert isinstance(text, str)
        assert json.loads(text) == {"received_at": "2026-11-27T13:00:00.123Z",
                                    "source": "binance", "topic": "feeds/btc",
                                    "payload": {"s": "BTCUSDT", "p": "1.5"}}
        assert json.loads(await recv(ws)) == {
            "received_at": "2026-11-27T13:00:00.123Z", "source": "binance",
            "topic": "feeds/bin", "payload": "AP9iaW4=", "encoding": "base64"}


async def test_raw_sends_the_payload_itself_and_binary_as_binary_frames(
    make_sink: MakeSink,
) -> None:
    sink = await make_sink(format="raw")
    async with client(sink) as ws:
        await subscribe(ws, "#")
        pretty = '{\n  "p": 1\n}'
        sink.send(delivery(pretty))
        sink.send(delivery(bytes(range(256))))
        assert await recv(ws) == pretty  # exactly as routed: not reformatted, not one line
        assert await recv(ws) == bytes(range(256))  # a binary frame, untouched


async def test_permessage_deflate_is_negotiated_unless_switched_off(make_sink: MakeSink) -> None:
    on, off = await make_sink(), await make_sink(compression=False)
    for sink, expected in ((on, True), (off, False)):
        async with client(sink) as ws:
            assert ws.response is not None
            offered = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in offered) is expected
            await subscribe(ws, "#")
            sink.send(delivery("x" * 10_000))
            assert json.loads(await recv(ws))["payload"] == "x" * 10_000


# -- slow clients and shutdown -----------------------------------------------------------------


async def test_a_slow_client_is_cut_off_with_1008_while_others_get_everything(
    make_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    sink = await make_sink(client_queue=8, format="raw", compression=False)
    big = "x" * 32_000
    # Without compression the big payloads really fill the slow client's TCP buffers.
    async with client(sink, compression=None) as slow, client(sink, compression=None) as fast:
        for ws in (slow, fast):
            await subscribe(ws, "#")
        slow.transport.pause_reading()
        sent = 0
        while not sink.stats.cut_off and sent < 2000:
            sink.send(delivery(f"{sent:06d}{big}"))
            sent += 1
            assert (await recv(fast))[:6] == f"{sent - 1:06d}"  # never delayed by the slow one
        assert sink.stats.cut_off == 1, sent
        slow.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as caught:
            for _ in range(sent + 1):
                await recv(slow)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
        sink.send(delivery("still here"))
        assert await recv(fast) == "still here"
    assert sink.stats.dropped == {}
    cut = [r.getMessage() for r in caplog.records if "cut off" in r.getMessage()]
    assert len(cut) == 1 and "8 messages behind" in cut[0]
    assert "xxxx" not in caplog.text  # payloads never reach the log


async def test_closing_the_sink_delivers_what_is_queued_then_says_going_away(
    make_sink: MakeSink, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    sink = await make_sink()
    async with client(sink) as ws:
        await subscribe(ws, "#")
        for n in range(50):
            sink.send(delivery(json.dumps({"n": n})))
        sink.close()
        got = [(await recv_json(ws))["payload"]["n"] for _ in range(50)]
        assert got == list(range(50))
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bridge")]
    assert any("listening on ws://127.0.0.1:" in line for line in lines)
    assert any("connected (1 now)" in line for line in lines)
    assert len(lines) <= 6  # lifecycle only: never a line per message
    assert TOKEN not in caplog.text


async def test_a_client_that_stopped_reading_cannot_hold_up_shutdown() -> None:
    config = WebSocketSinkConfig("dash", TOKEN, port=0, client_queue=10_000, format="raw",
                                 compression=False)
    sink = WebSocketSink(config, close_timeout=0.2)
    await sink.start()
    task = asyncio.create_task(sink.run())
    clock = asyncio.get_running_loop().time
    async with client(sink, compression=None) as stuck:
        await subscribe(stuck, "#")
        stuck.transport.pause_reading()
        for n in range(400):  # ~13 MB: more than the socket buffers hold
            sink.send(delivery(f"{n:06d}" + "x" * 32_000))
        start = clock()
        sink.close()
        await asyncio.wait_for(task, 5)
        assert clock() - start < 3.0
        assert sink.stats.written < 400  # it really was stuck behind a full socket
        stuck.transport.resume_reading()


# -- a real browser ----------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><body><ol id="got"></ol>
<script>
const ws = new WebSocket("ws://127.0.0.1:%(port)d/?token=%(token)s");
ws.onopen = () => ws.send(JSON.stringify({subscribe: ["feeds/+/trades"]}));
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  if (msg.subscribed) { fetch("/subscribed"); return; }
  const li = document.createElement("li");
  li.textContent = msg.topic + " " + JSON.stringify(msg.payload);
  document.getElementById("got").appendChild(li);
  if (document.querySelectorAll("li").length === 3) { ws.close(); fetch("/done"); }
};
ws.onerror = () => fetch("/done");
</script>
<script async src="/hold.js"></script>
</body></html>
"""


class _Page:
    """A page server: the page, ``/subscribed`` and ``/done`` signals, and a ``/hold.js`` that
    keeps the page loading (so Chromium does not dump the DOM) until ``/done``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.subscribed = asyncio.Event()
        self.done = threading.Event()
        self.html = ""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = b"", "text/plain"
                if self.path == "/index.html":
                    body, kind = page.html.encode(), "text/html"
                elif self.path == "/subscribed":
                    loop.call_soon_threadsafe(page.subscribed.set)
                elif self.path == "/done":
                    page.done.set()
                elif self.path == "/hold.js":
                    page.done.wait(20)
                    kind = "text/javascript"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @contextlib.contextmanager
    def serving(self) -> Iterator[_Page]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.done.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.access(found, os.X_OK), "chromium is missing: run tests/support/ensure-tools.sh"
    return found


async def test_a_headless_browser_page_receives_the_messages_it_subscribed_to(
    make_sink: MakeSink, tmp_path: Path
) -> None:
    page = _Page(asyncio.get_running_loop())
    origin = f"http://127.0.0.1:{page.port}"
    sink = await make_sink(allowed_origins=(origin,))
    page.html = PAGE % {"port": sink.port, "token": TOKEN}
    with page.serving():
        browser = await asyncio.create_subprocess_exec(
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom", f"{origin}/index.html",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(page.subscribed.wait(), 20)
            sink.send(delivery('{"p":"1.50"}', "feeds/btc/trades"))
            sink.send(delivery('{"p":"not-subscribed"}', "feeds/btc/book"))
            sink.send(delivery('{"p":"2.25"}', "feeds/eth/trades"))
            sink.send(delivery('{"p":"3.00"}', "feeds/btc/trades"))
            out, _ = await asyncio.wait_for(browser.communicate(), 20)
        finally:
            if browser.returncode is None:
                browser.kill()
                await browser.wait()
    dom = out.decode()
    assert (
        '<li>feeds/btc/trades {"p":"1.50"}</li><li>feeds/eth/trades {"p":"2.25"}</li>'
        '<li>feeds/btc/trades {"p":"3.00"}</li>'
    ) in dom
    assert "not-subscribed" not in dom
