"""The connection adapter against a real loopback upstream: handshake, limits, errors, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.config.model import SourceConfig
from bridge.config.specs import TLSConfig
from bridge.errors import (
    AuthRejected,
    ConnectFailed,
    ConnectionLost,
    HandshakeRejected,
    MessageTooBig,
    SessionTimeout,
)
from bridge.tls import source_context
from bridge.upstream.connection import HAND_OVER, Connection, open_connection
from bridge.upstream.urls import safe_url
from tests.support.upstream import Upstream, UpstreamConn

Opened = list[Connection]
SECRET_TOKEN = "tok-SUPERSECRET-123"
SECRET_HEADER = "Bearer hdr-SUPERSECRET-456"


def source(url: str, **kwargs: object) -> SourceConfig:
    kwargs.setdefault("connect_timeout", 2.0)
    return SourceConfig(name="feed", url=url, **kwargs)  # type: ignore[arg-type]


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture
async def opened() -> AsyncIterator[list[Connection]]:
    """Connections a test opened; closed at teardown so no socket outlives its test."""
    conns: list[Connection] = []
    yield conns
    for conn in conns:
        await conn.close()



async def connect(opened: list[Connection], cfg: SourceConfig) -> Connection:
    conn = await open_connection(cfg, source_context(cfg))
    opened.append(conn)
    return conn


async def test_sends_configured_headers_and_query(upstream: Upstream, opened: Opened) -> None:
    headers = {"X-Api-Key": "k1", "User-Agent": "ws-bridge"}
    cfg = source(f"{upstream.url}?token=abc&v=2", headers=headers)
    conn = await connect(opened, cfg)
    (server,) = await upstream.wait_connections(1)
    assert server.path == "/ws"
    assert server.query == {"token": "abc", "v": "2"}
    assert server.headers["X-Api-Key"] == "k1"
    assert server.headers["User-Agent"] == "ws-bridge"
    assert conn.handshake_seconds > 0


async def test_text_and_binary_frames_round_trip(upstream: Upstream, opened: Opened) -> None:
    async def echo(server: UpstreamConn) -> None:
        while True:
            await server.send(await server.recv())

    upstream.handler = echo
    conn = await connect(opened, source(upstream.url))
    await conn.send('{"type":"hello"}')
    await conn.send(b"\x00\x01binary")
    assert await conn.recv() == '{"type":"hello"}'
    assert await conn.recv() == b"\x00\x01binary"


async def test_a_burst_of_whole_and_fragmented_messages_arrives_whole_and_in_order(
    upstream: Upstream, opened: Opened,
) -> None:
    # Whole messages already buffered are taken straight from websockets' buffer; fragmented
    # ones go through its reassembly. Mixed in one burst, none may be split, merged or reordered.
    burst: list[str | bytes | list[str] | list[bytes]] = []
    for n in range(300):
        burst.append(f'{{"n":{n}}}' if n % 3 else [f'{{"n":{n},', '"frag":true}'])
        if n % 50 == 7:
            burst.append(b"\x00bin" + bytes([n % 256]))

    async def blast(server: UpstreamConn) -> None:
        for message in burst:
            await server.ws.send(message)
        await server.wait_closed()

    upstream.handler = blast
    conn = await connect(opened, source(upstream.url))
    expected = ["".join(m) if isinstance(m, list) else m for m in burst]
    assert [await conn.recv() for _ in expected] == expected


async def test_messages_that_come_one_at_a_time_arrive_whole_after_a_cancelled_wait(
    upstream: Upstream, opened: Opened,
) -> None:
    # Each message is sent only when asked for, so every recv() finds websockets' buffer empty
    # and waits; a wait cut short (as the driver's timer does) must lose nothing.
    replies: list[str | bytes | list[str]] = ['{"n":1}', ['{"n":2,', '"frag":true}'], b"\x00b",
                                              '{"n":4}']

    async def on_request(server: UpstreamConn) -> None:
        for reply in replies:
            await server.recv()
            await server.ws.send(reply)
        await server.wait_closed()

    upstream.handler = on_request
    conn = await connect(opened, source(upstream.url))
    waiting = asyncio.create_task(conn.recv())
    await asyncio.sleep(0)  # one loop turn: the task is now waiting for a frame
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    received = []
    for _ in replies:
        await conn.send("next")
        received.append(await conn.recv())
    assert received == ["".join(r) if isinstance(r, list) else r for r in replies]


async def test_a_consumer_is_handed_whole_messages_and_recv_gets_the_rest_in_order(
    upstream: Upstream, opened: Opened,
) -> None:
    # Whole messages go to the consumer in websockets' data callback while none waits in the
    # buffer; fragmented ones, and everything after the consumer is taken off, wait for recv.
    # Whoever gets them, they arrive in order, and invalid UTF-8 still fails with 1007.
    first = [f'{{"n":{n}}}' for n in range(12)]
    mixed: list[str | bytes | list[str]] = []
    for n in range(12, 60):
        mixed.append(f'{{"n":{n}}}' if n % 7 else [f'{{"n":{n},', '"frag":true}'])
        if n % 20 == 3:
            mixed.append(b"\x00bin" + bytes([n]))
    mixed.append(['{"last":', "true}"])  # fragmented: recv's, so the loop below ends
    seen: list[str | bytes] = []
    taken: list[str | bytes] = []

    def stepping_down(data: str | bytes) -> None:
        taken.append(data)
        seen.append(data)
        if len(taken) == 10:  # the 10th is kept, then the consumer is called no more
            conn.consume(None)

    def staying(data: str | bytes) -> None:
        taken.append(data)
        seen.append(data)

    async def blast(server: UpstreamConn) -> None:
        await server.recv()
        for message in first:
            await server.ws.send(message)
        await server.recv()
        for part in mixed:
            await server.ws.send(part)
        await server.recv()
        await server.ws.send(b"\xff not UTF-8", text=True)
        await server.wait_closed()

    upstream.handler = blast
    conn = await connect(opened, source(upstream.url))
    assert conn.consume(stepping_down)
    await conn.send("go")
    seen.append(await conn.recv())
    seen.append(await conn.recv())
    assert seen == first and len(taken) == 10
    assert conn.consume(staying)
    await conn.send("go")
    expected = [*first, *("".join(m) if isinstance(m, list) else m for m in mixed)]
    while seen[-1] != '{"last":true}':
        seen.append(await conn.recv())
    assert seen == expected
    assert 10 < len(taken) < len(expected) - 7  # the consumer had some; fragments went to recv
    await conn.send("go")
    with pytest.raises(ConnectionLost) as lost:
        await conn.recv()
    assert lost.value.code == 1007


async def test_a_burst_in_one_read_is_handed_over_in_part_and_the_rest_read_in_order(
    upstream: Upstream, opened: Opened,
) -> None:
    # At most HAND_OVER messages of one socket read go to the consumer; the rest of the burst
    # waits in websockets' buffer (its flow control bounds the memory a burst takes) for recv.
    burst = [f'{{"n":{n}}}'.encode() for n in range(200)]
    seen: list[str | bytes] = []
    taken: list[str | bytes] = []

    def consumer(data: str | bytes) -> None:
        taken.append(data)
        seen.append(data)

    async def blast(server: UpstreamConn) -> None:
        await server.recv()
        server.ws.transport.write(b"".join(b"\x81" + bytes([len(m)]) + m for m in burst))
        await server.wait_closed()

    upstream.handler = blast
    conn = await connect(opened, source(upstream.url))
    assert conn.consume(consumer)
    await conn.send("go")
    while len(seen) < len(burst):
        seen.append(await conn.recv())
    assert seen == [m.decode() for m in burst]
    assert 0 < len(taken) <= HAND_OVER  # one read, one loopback write of 2 KB


def _frames(messages: list[bytes], fin: bool = True, opcode: int = 0x1) -> bytes:
    """Server frames (unmasked, short), as a socket read delivers them."""
    return b"".join(bytes([0x80 * fin | opcode, len(m)]) + m for m in messages)


@pytest.mark.parametrize("first_read", ["hand-over limit", "fragmented"])
async def test_a_message_recv_took_comes_before_those_of_the_next_read(
    upstream: Upstream, opened: Opened, first_read: str,
) -> None:
    # Found by the chaos soak (one number of a replay delivered after the next): a read leaves
    # its last message in websockets' buffer (past HAND_OVER, or fragmented), the pump's recv
    # takes it, and before the task has it the next read comes. That read must not be handed
    # over ahead of it: it waits in the buffer, behind.
    async def silent(server: UpstreamConn) -> None:
        await server.wait_closed()

    upstream.handler = silent
    conn = await connect(opened, source(upstream.url))
    ws = conn._ws  # the real protocol, fed the reads a socket would deliver
    got: list[str | bytes] = []
    assert conn.consume(got.append)
    reading = asyncio.ensure_future(conn.recv())  # the pump's recv, while frames are handed over
    if first_read == "hand-over limit":
        ws.data_received(_frames([f'{{"n":{n}}}'.encode() for n in range(HAND_OVER + 1)]))
        expected = [f'{{"n":{n}}}' for n in range(HAND_OVER + 2)]
    else:
        ws.data_received(_frames([b'{"n":'], fin=False) + _frames([b"0}"], opcode=0x0))
        expected = ['{"n":0}', '{"n":1}']
    for _ in range(100):  # loop turns, not time: until recv has taken the buffered message
        if reading.done():
            break
        await asyncio.sleep(0)
    ws.data_received(_frames([expected[-1].encode()]))  # the next read, in that very window
    got.append(await reading)
    conn.consume(None)
    while (data := conn.take()) is not None:
        got.append(data)
    assert got == expected


async def test_a_read_of_a_burst_is_left_whole_to_recv(upstream: Upstream, opened: Opened) -> None:
    # A read of BURST bytes or more hands nothing over: recv reads all of it, in order, and the
    # connection declines a consumer until a smaller read comes.
    burst = [f'{{"n":{n},"pad":"{"x" * 100}"}}'.encode() for n in range(100)]  # 12 KB
    taken: list[str | bytes] = []

    async def blast(server: UpstreamConn) -> None:
        await server.recv()
        server.ws.transport.write(b"".join(b"\x81" + bytes([len(m)]) + m for m in burst))
        await server.recv()
        await server.ws.send('{"after":true}')
        await server.wait_closed()

    upstream.handler = blast
    conn = await connect(opened, source(upstream.url))
    assert conn.consume(taken.append)
    await conn.send("go")
    got = [await conn.recv() for _ in burst]  # one loopback write of 12 KB: one read
    assert (got, taken) == ([m.decode() for m in burst], [])
    assert not conn.consume(taken.append)  # the last read was a burst
    await conn.send("go")
    assert await conn.recv() == '{"after":true}'
    assert conn.consume(taken.append)


async def test_the_upstream_socket_has_nagle_disabled(upstream: Upstream, opened: Opened) -> None:
    # Set by the event loop itself (asyncio's and uvloop's transports both do), not by us.
    conn = await connect(opened, source(upstream.url))
    sock = conn._ws.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_messages_reach_the_server_in_order(upstream: Upstream, opened: Opened) -> None:
    async def ack(server: UpstreamConn) -> None:
        request = await server.recv_json()
        await server.send_json({"type": "ack", "id": request["id"]})

    upstream.handler = ack
    conn = await connect(opened, source(upstream.url))
    for n in range(1, 4):
        await conn.send(f'{{"id":{n}}}')
    assert await conn.recv() == '{"type":"ack","id":1}'
    (server,) = upstream.connections
    assert await server.wait_received(3) == ['{"id":1}', '{"id":2}', '{"id":3}']


async def test_negotiates_a_configured_subprotocol(upstream: Upstream, opened: Opened) -> None:
    upstream.subprotocols = ["feed.v2"]
    conn = await connect(opened, source(upstream.url, subprotocols=("feed.v1", "feed.v2")))
    (server,) = await upstream.wait_connections(1)
    assert conn.subprotocol == "feed.v2"
    assert server.subprotocol == "feed.v2"


@pytest.mark.parametrize("enabled", [True, False])
async def test_offers_compression_only_when_enabled(
    upstream: Upstream, opened: list[Connection], enabled: bool
) -> None:
    await connect(opened, source(upstream.url, compression=enabled))
    (handshake,) = await upstream.wait_handshakes(1)
    offered = handshake.headers.get("Sec-WebSocket-Extensions") or ""
    assert ("permessage-deflate" in offered) is enabled


@pytest.mark.parametrize("status", [401, 403])
async def test_http_401_and_403_are_auth_rejections(upstream: Upstream, status: int) -> None:
    upstream.reject_next(status)
    with pytest.raises(AuthRejected) as caught:
        await open_connection(source(upstream.url))
    assert caught.value.source == "feed"
    assert f"HTTP {status}" in str(caught.value)


async def test_http_500_is_a_handshake_rejection_with_its_status(upstream: Upstream) -> None:
    upstream.reject_next(500)
    with pytest.raises(HandshakeRejected) as caught:
        await open_connection(source(upstream.url))
    assert caught.value.status == 500
    assert caught.value.source == "feed"


async def test_refused_port_is_a_connect_failure() -> None:
    with pytest.raises(ConnectFailed) as caught:
        await open_connection(source(f"ws://127.0.0.1:{refused_port()}/ws"))
    assert not isinstance(caught.value, HandshakeRejected)
    assert caught.value.source == "feed"


async def test_unanswered_handshake_fails_within_the_connect_timeout(upstream: Upstream) -> None:
    upstream.stall_handshake = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed, match="timed out"):
        await open_connection(source(upstream.url, connect_timeout=0.2))
    assert 0.2 <= loop.time() - started < 1.5
    assert len(upstream.handshakes) == 1


async def test_oversized_frame_is_message_too_big(upstream: Upstream, opened: Opened) -> None:
    async def flood(server: UpstreamConn) -> None:
        await server.send("x" * 2000)

    upstream.handler = flood
    conn = await connect(opened, source(upstream.url, max_message_size=1000))
    with pytest.raises(MessageTooBig) as caught:
        await conn.recv()
    assert caught.value.code == 1009
    (server,) = upstream.connections
    assert await server.wait_closed() == 1009


async def test_server_close_is_connection_lost_with_its_code(
    upstream: Upstream, opened: list[Connection]
) -> None:
    async def goodbye(server: UpstreamConn) -> None:
        await server.close(4001, "maintenance")

    upstream.handler = goodbye
    conn = await connect(opened, source(upstream.url))
    with pytest.raises(ConnectionLost) as caught:
        await conn.recv()
    assert not isinstance(caught.value, MessageTooBig)
    assert (caught.value.code, caught.value.reason) == (4001, "maintenance")
    with pytest.raises(ConnectionLost):
        await conn.send("after close")


async def test_abrupt_drop_is_connection_lost(upstream: Upstream, opened: list[Connection]) -> None:
    conn = await connect(opened, source(upstream.url))
    await upstream.wait_connections(1)
    await upstream.kill()
    with pytest.raises(ConnectionLost) as caught:
        await conn.recv()
    assert caught.value.code == 1006


async def test_server_restart_drops_the_connection_and_refuses_until_back(
    upstream: Upstream, opened: Opened
) -> None:
    conn = await connect(opened, source(upstream.url))
    await upstream.wait_connections(1)
    await upstream.stop()
    with pytest.raises(ConnectionLost):
        await conn.recv()
    with pytest.raises(ConnectFailed):
        await open_connection(source(upstream.url))
    await upstream.start()
    await connect(opened, source(upstream.url))
    await upstream.wait_connections(2)


async def test_half_open_peer_is_detected_by_keepalive(
    upstream: Upstream, opened: list[Connection]
) -> None:
    loop = asyncio.get_running_loop()
    went_silent: list[float] = []

    async def vanish(server: UpstreamConn) -> None:
        server.go_half_open()
        went_silent.append(loop.time())

    upstream.handler = vanish
    conn = await connect(opened, source(upstream.url, ping_interval=0.1, ping_timeout=0.1))
    with pytest.raises(SessionTimeout) as caught:
        await conn.recv()
    # Detection takes ping_interval + ping_timeout, plus the bounded wait for a close reply.
    assert loop.time() - went_silent[0] < 1.0
    assert caught.value.stage == "ping"


async def test_close_sends_its_code_and_never_raises(upstream: Upstream) -> None:
    conn = await open_connection(source(upstream.url))
    (server,) = await upstream.wait_connections(1)
    await conn.close(4000, "shutting down")
    assert await server.wait_closed() == 4000
    await conn.close()


async def test_close_is_bounded_when_the_peer_is_half_open(upstream: Upstream) -> None:
    async def vanish(server: UpstreamConn) -> None:
        server.go_half_open()

    upstream.handler = vanish
    conn = await open_connection(source(upstream.url, ping_interval=0.1, ping_timeout=0.2))
    await upstream.wait_connections(1)
    async with asyncio.timeout(2.0):
        await conn.close()


# --- TLS -------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(directory: Path, name: str, subject: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
             cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with a server cert for 127.0.0.1 and a client cert, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=ws-bridge test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _issue(d, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n"
           "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _issue(d, "client", "/CN=ws-bridge", "keyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=clientAuth\n")
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


async def test_wss_verifies_against_the_configured_ca(
    upstream_factory: Callable[..., Awaitable[Upstream]], pki: Pki, opened: list[Connection]
) -> None:
    secure: Upstream = await upstream_factory(ssl=pki.server_context())
    assert secure.url.startswith("wss://")
    await connect(opened, source(secure.url, tls=TLSConfig(ca_file=str(pki.ca))))
    await secure.wait_connections(1)


async def test_wss_fails_verification_without_the_ca(
    upstream_factory: Callable[..., Awaitable[Upstream]], pki: Pki
) -> None:
    secure: Upstream = await upstream_factory(ssl=pki.server_context())
    with pytest.raises(ConnectFailed, match="certificate verif"):
        await open_connection(source(secure.url), source_context(source(secure.url)))
    assert secure.connections == []


async def test_wss_with_verify_off_accepts_an_untrusted_cert(
    upstream_factory: Callable[..., Awaitable[Upstream]], pki: Pki, opened: list[Connection]
) -> None:
    secure: Upstream = await upstream_factory(ssl=pki.server_context())
    await connect(opened, source(secure.url, tls=TLSConfig(verify=False)))
    await secure.wait_connections(1)


async def test_wss_presents_the_configured_client_certificate(
    upstream_factory: Callable[..., Awaitable[Upstream]], pki: Pki, opened: list[Connection]
) -> None:
    secure: Upstream = await upstream_factory(
        ssl=pki.server_context(require_client_cert=True)
    )
    tls = TLSConfig(
        ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
    )
    await connect(opened, source(secure.url, tls=tls))
    await secure.wait_connections(1)
    with pytest.raises(ConnectFailed):
        cfg = source(secure.url, tls=TLSConfig(ca_file=str(pki.ca)))
        await open_connection(cfg, source_context(cfg))


# --- proxies ---------------------------------------------------------------------------------


@dataclass
class ConnectProxy:
    """A minimal HTTP CONNECT proxy that tunnels every request to 127.0.0.1, whatever the host."""

    port: int = 0
    requests: list[str] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n")[0].decode()
        self.requests.append(request_line)
        target_port = int(request_line.split()[1].rsplit(":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        self.writers.append(up_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))

    @staticmethod
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    yield proxy
    server.close()
    for writer in proxy.writers:
        writer.close()
    for writer in proxy.writers:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    await server.wait_closed()


PROXY_VARS = ["http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy", "socks_proxy",
              "no_proxy"]


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_uses_the_configured_http_proxy(
    upstream: Upstream, proxy: ConnectProxy, opened: list[Connection],
    clean_proxy_env: pytest.MonkeyPatch,
) -> None:
    url = f"ws://feed.example.invalid:{upstream.port}/ws"
    await connect(opened, source(url, proxy=f"http://127.0.0.1:{proxy.port}"))
    (server,) = await upstream.wait_connections(1)
    assert proxy.requests == [f"CONNECT feed.example.invalid:{upstream.port} HTTP/1.1"]
    assert server.headers["Host"] == f"feed.example.invalid:{upstream.port}"


async def test_honours_the_environment_proxy_except_for_loopback(
    upstream: Upstream, proxy: ConnectProxy, opened: list[Connection],
    clean_proxy_env: pytest.MonkeyPatch,
) -> None:
    clean_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    await connect(opened, source(f"ws://feed.example.invalid:{upstream.port}/ws"))
    await connect(opened, source(upstream.url))
    await upstream.wait_connections(2)
    assert len(proxy.requests) == 1


# --- secrets never leak into errors ----------------------------------------------------------


@pytest.mark.parametrize("failure", ["401", "500", "refused", "timeout", "closed"])
async def test_errors_never_contain_the_query_token_or_header_values(
    upstream: Upstream, failure: str
) -> None:
    base = upstream.url if failure != "refused" else f"ws://127.0.0.1:{refused_port()}/ws"
    cfg = source(f"{base}?token={SECRET_TOKEN}", headers={"Authorization": SECRET_HEADER},
                 connect_timeout=0.2)
    if failure in ("401", "500"):
        upstream.reject_next(int(failure))
    if failure == "timeout":
        upstream.stall_handshake = True
    if failure == "closed":
        upstream.handler = lambda server: server.close(4002, "bye")
    with pytest.raises((ConnectFailed, AuthRejected, ConnectionLost)) as caught:
        conn = await open_connection(cfg)
        try:
            await conn.recv()
        finally:
            await conn.close()
    text = "".join(traceback.format_exception(caught.value))
    assert SECRET_TOKEN not in text
    assert SECRET_HEADER.split()[1] not in text


def test_safe_url_drops_credentials_query_and_fragment() -> None:
    assert safe_url("wss://user:pw@example.com:8443/a/b?token=x#frag") == "wss://example.com:8443/a/b"
    assert safe_url("ws://[::1]:9/ws?k=v") == "ws://[::1]:9/ws"
    assert safe_url("ws://host:notaport/ws") == "<invalid URL>"
