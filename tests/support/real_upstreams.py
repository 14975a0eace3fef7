"""Real upstream servers that nobody here wrote, on free loopback ports (pytest plugin).

Each is the real implementation, started by the test (never a system service, whose ports
are left alone), and only the PIDs started here are ever signalled.

Fixtures
--------
``socketio_server``
    ``socketio_server(token="s3cret") -> AppServer``: python-socketio 5 (ASGI, uvicorn),
    ``tests/support/apps/sio_app.py``; started; ``url`` is its Engine.IO v4 websocket URL.
``graphql_server``
    ``graphql_server(token="s3cret") -> AppServer``: strawberry-graphql over
    graphql-transport-ws, ``tests/support/apps/gql_app.py``; started; ``url`` ends in /graphql.
``nats_server``
    ``nats_server(token="s3cret") -> NatsServer``: Debian's ``nats-server`` with a websocket
    listener (``websocket {port, no_tls: true}``) and token auth; started.
``rabbitmq_stomp``
    Session-wide :class:`RabbitStomp`: a RabbitMQ node of its own (its own node name, ports,
    Mnesia directory and Erlang cookie; never the system's node on 5672) with
    ``rabbitmq_web_stomp``; user ``guest``/``guest`` may connect over loopback. Its start
    takes 7-9 s, so one node serves the whole session.

AppServer, NatsServer
---------------------
``port``, ``url``, ``pid``, ``running``, ``log()`` (stdout and stderr so far),
``start(timeout=10)`` (returns once it serves), ``stop()`` (SIGTERM), ``kill()``,
``await wait_log(text, timeout=5.0, count=1)`` (until ``text`` is in ``count`` lines).

RabbitStomp
-----------
``url`` (``ws://127.0.0.1:PORT/ws``), ``restart_web_stomp()`` (the web-stomp listener and
every connection on it stopped and started again inside the node, ~1-2 s; a whole node
restart would take 8 s), ``log()``.

Publishers
----------
``publishing(nats_publish(server, subject))`` / ``publishing(stomp_publish(node, dest))``:
an async context manager that publishes ``{"n": 1}``, ``{"n": 2}``, ... every 20 ms while
it is open, reconnecting across a server restart (a NATS client on the server's plain port,
a STOMP client over web-stomp).
``await nats_burst(server, [(subject, payload), ...])``: all of them published at once on
the plain port, returning once the server has read them (PING answered).
``await nats_ws_frames(server, user_agent, subject, payload)``: the frames a WebSocket client
with ``user_agent`` receives for one message (nats-server frames a browser's at 4 KiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import websockets

from tests.support.mosquitto import HOST, free_port
from tests.support.process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _wait_port(port: int, alive: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:  # these servers say nothing when ready: connecting is the readiness check
        if not alive():
            raise RuntimeError(f"{what} exited before listening on {port}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not listening on {port} after {timeout}s") from exc
            time.sleep(0.02)


class _Process(ServerProcess):
    """One server process started here, its output in a file; see the module docstring."""

    what = "server"

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.port = workdir, free_port()
        self.log_file = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> None:
        assert not self.running, f"{self.what} already running"
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                          cwd=REPO)
        try:
            _wait_port(self.port, lambda: self.running, timeout, self.what)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    async def wait_log(self, text: str, timeout: float = 5.0, count: int = 1) -> str:
        """The log once ``text`` is in ``count`` of its lines; AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            log = self.log()
            if sum(text in line for line in log.splitlines()) >= count:
                return log
            assert loop.time() < deadline, f"{self.what}: no {count} x {text!r} in:\n{log}"
            await asyncio.sleep(0.02)  # a file that announces nothing: polled, bounded


class AppServer(_Process):
    """A Python ASGI app of tests/support/apps under uvicorn."""

    def __init__(self, workdir: Path, module: str, token: str, path: str) -> None:
        super().__init__(workdir)
        self.what, self._module, self.token = module, module, token
        self.url = f"ws://{HOST}:{self.port}{path}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", f"tests.support.apps.{self._module}", str(self.port),
                self.token]


class NatsServer(_Process):
    """nats-server with a websocket listener and token auth (its client port unused)."""

    what = "nats-server"

    def __init__(self, workdir: Path, token: str) -> None:
        super().__init__(workdir)
        self.client_port, self.token = free_port(), token
        self.url = f"ws://{HOST}:{self.port}"
        self.config_file = workdir / "nats.conf"
        self.config_file.write_text(
            f'listen: "{HOST}:{self.client_port}"\n'
            f'authorization {{ token: "{token}" }}\n'
            f'websocket {{ host: "{HOST}", port: {self.port}, no_tls: true }}\n'
            "trace: true\n")  # the log shows each client's SUB and UNSUB

    def command(self) -> list[str]:
        return [NATS_SERVER, "-c", str(self.config_file)]


class RabbitStomp:
    """A RabbitMQ node of its own with rabbitmq_web_stomp; see the module docstring."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.node = f"wsbridge-test-{os.getpid()}@localhost"
        amqp, self.port = free_port(), free_port()
        self.url = f"ws://{HOST}:{self.port}/ws"
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {HOST}:{amqp}\n"
            "stomp.listeners.tcp = none\n"
            f"web_stomp.tcp.ip = {HOST}\nweb_stomp.tcp.port = {self.port}\n"
            "loopback_users = none\n")
        (workdir / "enabled_plugins").write_text("[rabbitmq_web_stomp].\n")
        self.env = {
            **os.environ, "HOME": str(workdir),  # its own Erlang cookie, not the system's
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(amqp), "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"), "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(workdir / "plugins"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbit.pid"),
        }
        self.log_file = workdir / "rabbit.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def start(self, timeout: float = 30.0) -> None:
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env,
                                          stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        proc = self._proc
        try:
            _wait_port(self.port, lambda: proc.poll() is None, timeout, "rabbitmq")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    def _ctl(self, *args: str) -> None:
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                       check=True, capture_output=True, timeout=30)

    def restart_web_stomp(self) -> None:
        """The web-stomp listener and its connections go away, then come back."""
        self._ctl("eval", "application:stop(rabbitmq_web_stomp), "
                          "application:start(rabbitmq_web_stomp).")
        _wait_port(self.port, lambda: True, 10.0, "rabbitmq web-stomp")

    def stop(self) -> None:
        """The node and its Erlang processes: the group this fixture started, nothing else."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the node's own process group (start_new_session)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def socketio_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    yield from _apps(tmp_path, "sio_app", "/socket.io/?EIO=4&transport=websocket")


@pytest.fixture
def graphql_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    yield from _apps(tmp_path, "gql_app", "/graphql")


def _apps(tmp_path: Path, module: str, path: str) -> Iterator[Callable[..., AppServer]]:
    yield from _servers(lambda n, token: AppServer(tmp_path / f"{module}-{n}", module, token, path))


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    yield from _servers(lambda n, token: NatsServer(tmp_path / f"nats-{n}", token))


S = TypeVar("S", bound=_Process)


def _servers(build: Callable[[int, str], S]) -> Iterator[Callable[..., S]]:
    """A fixture's ``make(token)``: the n-th server built and started; all killed at the end."""
    started: list[S] = []

    def make(token: str = "s3cret") -> S:
        server = build(len(started), token)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def rabbitmq_stomp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitStomp]:
    node = RabbitStomp(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


Publish = Callable[[int], Awaitable[None]]


@contextlib.asynccontextmanager
async def nats_publish(server: NatsServer, subject: str) -> AsyncIterator[Publish]:
    """One connection's publish function, on the server's plain client port."""
    reader, writer = await asyncio.open_connection(HOST, server.client_port)
    await reader.readline()  # INFO
    token = json.dumps({"auth_token": server.token, "verbose": False, "pedantic": False})
    writer.write(f"CONNECT {token}\r\n".encode())

    async def publish(n: int) -> None:
        body = json.dumps({"n": n}).encode()
        writer.write(f"PUB {subject} {len(body)}\r\n".encode() + body + b"\r\n")
        await writer.drain()

    try:
        yield publish
    finally:
        writer.close()


async def nats_burst(server: NatsServer, messages: list[tuple[str, bytes]]) -> None:
    """Every message published in one write on the plain port; back once the server read them."""
    reader, writer = await asyncio.open_connection(HOST, server.client_port)
    try:
        await reader.readline()  # INFO
        token = json.dumps({"auth_token": server.token, "verbose": False, "pedantic": False})
        ops = [b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in messages]
        writer.write(f"CONNECT {token}\r\n".encode() + b"".join(ops) + b"PING\r\n")
        await writer.drain()
        assert await reader.readline() == b"PONG\r\n"
    finally:
        writer.close()


async def nats_ws_frames(server: NatsServer, user_agent: str, subject: str, payload: bytes
                         ) -> list[bytes]:
    """The frames a WebSocket client sending ``user_agent`` receives for one message."""
    async with websockets.connect(server.url, user_agent_header=user_agent) as ws:
        await ws.recv()  # INFO
        token = json.dumps({"auth_token": server.token, "verbose": False, "pedantic": False})
        await ws.send(f"CONNECT {token}\r\nSUB {subject} 1\r\nPING\r\n".encode())
        assert await ws.recv() == b"PONG\r\n"
        await nats_burst(server, [(subject, payload)])
        frames, size = [], len(b"MSG %s 1 %d\r\n\r\n" % (subject.encode(), len(payload)))
        while sum(map(len, frames)) < size + len(payload):
            frames.append(bytes(await ws.recv()))
        return frames


@contextlib.asynccontextmanager
async def stomp_publish(node: RabbitStomp, destination: str) -> AsyncIterator[Publish]:
    """One connection's publish function, over web-stomp as guest."""
    async with websockets.connect(node.url, subprotocols=[websockets.Subprotocol("v12.stomp")]
                                  ) as ws:
        await ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
        await ws.recv()  # CONNECTED

        async def publish(n: int) -> None:
            body = json.dumps({"n": n})
            await ws.send(f"SEND\ndestination:{destination}\ncontent-type:application/json\n"
                          f"\n{body}\0")

        yield publish


@contextlib.asynccontextmanager
async def publishing(connect: Callable[[], contextlib.AbstractAsyncContextManager[Publish]]
                     ) -> AsyncIterator[None]:
    """Publishes {"n": 1}, {"n": 2}, ... every 20 ms through ``connect()``'s connections,
    opening a new one after a failure (a server restart), until the block ends."""

    async def run() -> None:
        n = 0
        while True:
            try:
                async with connect() as publish:
                    while True:
                        n += 1
                        await publish(n)
                        await asyncio.sleep(0.02)  # the publisher's pace, not a wait
            except (OSError, websockets.ConnectionClosed):
                await asyncio.sleep(0.05)  # the server is restarting: try again soon

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
