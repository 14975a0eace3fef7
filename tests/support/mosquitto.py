"""Real Mosquitto brokers on free loopback ports, and a recording MQTT subscriber (pytest plugin).

Each broker is its own ``mosquitto`` process (never the system one on 1883) with a config
written into the test's tmp_path; only the PID a fixture started is ever signalled.

Fixtures
--------
``mosquitto``
    ``mosquitto(users=None, tls=False, deny=(), start=True) -> Broker``. ``users`` is
    ``{name: password}``: anonymous clients are refused and a password file is made with
    ``mosquitto_passwd``. ``tls=True`` serves TLS with a certificate from the session's test
    CA (``broker.ca_file``) for ``127.0.0.1`` and ``localhost``. ``deny`` lists topic filters
    nobody may publish or read; every other topic is open. ``start=False`` allocates the port
    and writes the config without starting (an unreachable broker that can come up later).
    ``netns="NAME", host=ADDR`` runs it inside that network namespace (``ip netns exec``),
    listening on all of its addresses; ``host`` is where the test and its subscribers reach it
    (see tests/support/netns.py). Every broker is killed at teardown.
    ``Broker(workdir, ..., options=[...])`` adds mosquitto.conf lines (the chaos soak's).
``mqtt_subscriber``
    ``await mqtt_subscriber(broker, *topics, persistent=False, username=None, password=None,
    client_id=None) -> Subscriber``: a connected gmqtt subscriber (default topic ``#``),
    closed at teardown.
``mosquitto_ca``
    Session-wide :class:`TestCA` made with the openssl CLI.

Broker
------
``host`` (127.0.0.1 unless given), ``port`` (kept across restarts), ``tls``, ``ca_file``, ``users``,
``pid``, ``running``, ``log()`` (the broker's log text).
``start(timeout=10)``
    Start and return once the port accepts connections (bounded wait).
``stop(timeout=10)``
    SIGTERM: Mosquitto saves its persistence file, so persistent sessions, their queued
    messages and retained messages survive a later ``start()``.
``kill()``
    SIGKILL, like a crash: nothing since the last clean stop is persisted.

Subscriber
----------
``messages``: every :class:`Received` ``(topic, payload: bytes, qos, retain, properties)``
in arrival order; ``retain`` is the flag as published (subscribed with Retain As Published),
``properties`` the MQTT 5 properties as gmqtt parses them (values are lists, e.g.
``{"content_type": ["application/json"], "user_property": [("k", "v")]}``).
``listeners``: callables each message is handed to as it arrives (for oracles that keep
their own running account rather than rescanning ``messages``).
``on(topic)`` / ``payloads(topic)``: the messages (payloads) on one topic.
``await wait_for(want, timeout=5.0, topic=None)``: until ``want`` messages arrived (on
``topic`` if given) or ``want(messages)`` is true; returns the messages; fails the test with
a summary on timeout. ``await reconnect()`` after a broker restart (a persistent session
resumes and gets what was queued for it). ``await close()``.

``await retained_now(broker, client, *filters, subscribe=mqtt_subscriber)``: what the broker
retains under ``filters`` now (non-empty payloads), read by a fresh subscriber up to a marker
published after it subscribed (by ``client``, else by a client of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gmqtt
import pytest
import pytest_asyncio

from tests.support.process import ServerProcess

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
_NEVER = -2  # gmqtt reconnect_retries below its "unlimited" (-1): tests reconnect explicitly


@dataclass(frozen=True)
class TestCA:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""

    __test__ = False  # not a test class, despite the name
    ca_file: str
    cert_file: str
    key_file: str


def make_test_ca(directory: Path) -> TestCA:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ws-bridge test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return TestCA(*(str(directory / n) for n in ("ca.pem", "server.pem", "server.key")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Broker(ServerProcess):
    """One mosquitto process and its config; see the module docstring."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None,
                 ca: TestCA | None = None, deny: Sequence[str] = (), host: str = HOST,
                 netns: str | None = None, options: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.host = host
        self.netns = netns  # run inside this network namespace, listening on all its addresses
        workdir.mkdir(parents=True)
        self.port = free_port()
        self.users = dict(users or {})
        self.tls = ca is not None
        self.ca_file = ca.ca_file if ca else None
        self.deny = tuple(deny)
        self.options = tuple(options)  # more mosquitto.conf lines
        self.config_file = workdir / "mosquitto.conf"
        self.log_file = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config(ca)

    def _write_config(self, ca: TestCA | None) -> None:
        lines = [
            "per_listener_settings false",
            f"listener {self.port}" + ("" if self.netns else f" {HOST}"),
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 0",  # saved on clean shutdown only: kill() loses what is new
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_file}",
            *(f"log_type {t}" for t in ("error", "warning", "notice", "information")),
            f"user {getpass.getuser()}",  # as root, do not switch to a 'mosquitto' user
            *self.options,
        ]
        if ca is not None:
            lines += [f"cafile {ca.ca_file}", f"certfile {ca.cert_file}", f"keyfile {ca.key_file}"]
        if self.users:
            passwd = self.workdir / "passwd"
            for i, (name, password) in enumerate(self.users.items()):
                subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []),
                                str(passwd), name, password], check=True, capture_output=True)
            lines.append(f"password_file {passwd}")
        if self.deny:
            rules = ["topic readwrite #", *(f"topic deny {t}" for t in self.deny)]
            acl = list(rules)  # lines before any "user" line apply to anonymous clients
            for name in self.users:
                acl += [f"user {name}", *rules]
            (self.workdir / "acl").write_text("\n".join(acl) + "\n")
            lines.append(f"acl_file {self.workdir / 'acl'}")
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        assert not self.running, "broker already running"
        with (self.workdir / "mosquitto.out").open("ab") as out:
            inside = ["ip", "netns", "exec", self.netns] if self.netns else []
            self._proc = subprocess.Popen([*inside, MOSQUITTO, "-c", str(self.config_file)],
                                          stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:  # mosquitto signals nothing when ready: connecting is the readiness check
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto not listening after {timeout}s:\n{self.log()}"
                                       ) from exc
                time.sleep(0.01)

    def client_ssl(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_file) if self.tls else False


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any]


class Subscriber:
    """A gmqtt subscriber that records every message; see the module docstring."""

    def __init__(self, broker: Broker, topics: Sequence[str], *, persistent: bool = False,
                 username: str | None = None, password: str | None = None,
                 client_id: str | None = None) -> None:
        self.broker = broker
        self.topics = tuple(topics)
        self.persistent = persistent
        self.client_id = client_id or f"test-sub-{id(self):x}"
        self.credentials = (username, password)
        self.messages: list[Received] = []
        self.listeners: list[Callable[[Received], None]] = []  # called with each message
        self._changed = asyncio.Event()
        self._subacked = asyncio.Event()
        self._session_present = False
        self._client: Any = None

    async def connect(self, timeout: float = 5.0) -> None:
        extra = {"session_expiry_interval": 3600} if self.persistent else {}
        client = gmqtt.Client(self.client_id, clean_session=not self.persistent, **extra)
        client.reconnect_retries = _NEVER
        if self.credentials[0] is not None:
            client.set_auth_credentials(*self.credentials)
        client.on_message = self._on_message
        client.on_connect = lambda c, flags, rc, props: setattr(self, "_session_present", flags)
        client.on_subscribe = lambda *_: self._subacked.set()
        self._client = client
        async with asyncio.timeout(timeout):
            await client.connect(self.broker.host, self.broker.port, ssl=self.broker.client_ssl())
            if not self._session_present:
                self._subacked.clear()
                client.subscribe([gmqtt.Subscription(t, qos=2, retain_as_published=True)
                                  for t in self.topics])
                await self._subacked.wait()

    async def reconnect(self, timeout: float = 5.0) -> None:
        await self.close()
        await self.connect(timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.is_connected:
                await asyncio.wait_for(client.disconnect(), 2.0)
        transport = getattr(getattr(client, "_connection", None), "_transport", None)
        if transport is not None and not transport.is_closing():
            transport.abort()

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int,
                    properties: dict[str, Any]) -> int:
        props = dict(properties)
        retain = bool(props.pop("retain", 0))
        props.pop("dup", None)
        received = Received(topic, payload, qos, retain, props)
        self.messages.append(received)
        for listener in self.listeners:
            listener(received)
        self._changed.set()
        return 0

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic == topic]

    async def wait_for(self, want: int | Callable[[list[Received]], bool], timeout: float = 5.0,
                       topic: str | None = None) -> list[Received]:
        def seen() -> list[Received]:
            return self.on(topic) if topic is not None else self.messages

        def done() -> bool:
            return want(seen()) if callable(want) else len(seen()) >= want

        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            last = [(m.topic, m.payload[:40]) for m in self.messages[-5:]]
            pytest.fail(f"subscriber waited {timeout}s for {want!r} on {topic or 'any topic'}; "
                        f"got {len(seen())} (of {len(self.messages)} in all), last: {last}")
        return seen()


async def retained_now(broker: Broker, ha: gmqtt.Client | None, *filters: str,
                       subscribe: Callable[..., Awaitable[Subscriber]]) -> dict[str, bytes]:
    """What the broker retains under ``filters`` now: a fresh subscriber's retained messages,
    all of them sent to it before the marker published after it subscribed (by ``ha``, else
    by a client of its own)."""
    fresh = await subscribe(broker, *filters, "marker/ha-test")
    if ha is None:
        marker = gmqtt.Client("marker")
        await marker.connect(broker.host, broker.port)
        marker.publish("marker/ha-test", b"", qos=1)
        await fresh.wait_for(1, topic="marker/ha-test")
        await marker.disconnect()
    else:
        ha.publish("marker/ha-test", b"", qos=1)
        await fresh.wait_for(1, topic="marker/ha-test")
    return {m.topic: m.payload for m in fresh.messages if m.retain and m.payload}


@pytest.fixture(scope="session")
def mosquitto_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("mosquitto-ca"))


@pytest.fixture
def mosquitto(tmp_path: Path, mosquitto_ca: TestCA) -> Iterator[Callable[..., Broker]]:
    if not Path(MOSQUITTO).exists():
        pytest.fail(f"{MOSQUITTO} is missing: run tests/support/ensure-tools.sh (make test does)")
    brokers: list[Broker] = []

    def make(*, users: dict[str, str] | None = None, tls: bool = False,
             deny: Sequence[str] = (), start: bool = True, host: str = HOST,
             netns: str | None = None, options: Sequence[str] = ()) -> Broker:
        broker = Broker(tmp_path / f"mosquitto-{len(brokers)}", users=users,
                        ca=mosquitto_ca if tls else None, deny=deny, host=host, netns=netns,
                        options=options)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest_asyncio.fixture
async def mqtt_subscriber(
    mosquitto: Callable[..., Broker],
) -> AsyncIterator[Callable[..., Awaitable[Subscriber]]]:
    subscribers: list[Subscriber] = []

    async def make(broker: Broker, *topics: str, **options: Any) -> Subscriber:
        sub = Subscriber(broker, topics or ("#",), **options)
        subscribers.append(sub)
        await sub.connect()
        return sub

    yield make
    for sub in subscribers:
        await sub.close()
