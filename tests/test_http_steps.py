"""HTTP steps, signatures and JWTs against real loopback servers: a scripted HTTP server (token,
keepalive and snapshot endpoints) beside the scriptable WebSocket upstream. The servers check
what they receive with the standard library (and the JWT with the public key); the oracle is
what the upstreams saw and what the source delivered."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import ssl
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridge.config.load import load_config
from bridge.config.model import SourceConfig
from bridge.config.specs import HeartbeatSpec, TLSConfig
from bridge.config.stateful import RenewSpec
from bridge.errors import ConfigError
from bridge.logs import RedactSecrets
from bridge.logs import _redactor as redactor
from bridge.redaction import MASK
from bridge.routing.template import Template
from bridge.supervisor import Supervisor
from bridge.upstream.backoff import BackoffPolicy
from bridge.upstream.state import ConnState
from tests.support.http_upstream import HttpRequestSeen, HttpUpstream, Reply
from tests.support.mosquitto import Broker, Subscriber, TestCA
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_client import Running

FAST = BackoffPolicy(initial_delay=0.02, max_delay=0.2, multiplier=2.0, jitter=0.0)


def source(tmp_path: Path, yaml: str, env: dict[str, str] | None = None) -> SourceConfig:
    """One source from YAML, through the loader (schema, checks, build) like a user's file."""
    text = "version: 1\nsinks: {out: {type: stdout}}\nsources:\n" + textwrap.indent(
        textwrap.dedent(yaml), "  ")
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return replace(load_config(path, env=env or {}).sources[0], reconnect=FAST)


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def example(name: str, tmp_path: Path, hosts: dict[str, str], env: dict[str, str] | None = None
            ) -> SourceConfig:
    """The example config ``name`` with its service's hosts replaced by loopback imitations."""
    text = (CONFIGS / name).read_text()
    for real, loopback in hosts.items():
        assert real in text, real
        text = text.replace(real, loopback)
    path = tmp_path / name
    path.write_text(text)
    # Named "src" for tests.test_client.Running
    return replace(load_config(path, env=env or {}).sources[0], name="src", reconnect=FAST)


def issues(tmp_path: Path, yaml: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        source(tmp_path, yaml, env)
    return [f"{i.path}: {i.message}" for i in caught.value.issues]


# --- KuCoin: a token and the endpoint from a POST before every connect --------------------------

def kucoin_bullet(ws: Upstream) -> Any:
    tokens = itertools.count(1)

    def bullet(request: HttpRequestSeen) -> Reply:
        servers = [{"endpoint": ws.url, "pingInterval": 50, "pingTimeout": 1000}]
        token = f"tok-{next(tokens)}-secret"
        return Reply(200, {"code": "200000", "data": {"token": token, "instanceServers": servers}})
    return bullet


def kucoin(tmp_path: Path, http: HttpUpstream, more: dict[str, str] | None = None
           ) -> SourceConfig:
    return example("kucoin.yaml", tmp_path, {"https://api.kucoin.com": http.url, **(more or {})})


async def kucoin_server(conn: UpstreamConn) -> None:
    await conn.send_json({"type": "welcome", "id": conn.query["connectId"]})
    while True:
        msg = await conn.recv_json()
        if msg.get("type") in ("ping", "subscribe"):
            answer = "pong" if msg["type"] == "ping" else "ack"
            await conn.send_json({"id": msg["id"], "type": answer})


async def test_kucoin_bullet_token_and_endpoint_are_fetched_before_every_connect(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream) -> None:
    http_upstream.route("POST", "/api/v1/bullet-public", kucoin_bullet(upstream))
    upstream.handler = kucoin_server
    async with Running(kucoin(tmp_path, http_upstream)) as run:
        conns = await upstream.wait_connections(1)
        assert conns[0].query["token"] == "tok-1-secret"
        await conns[0].wait_received(3)  # the heartbeat at the interval the bullet announced
        assert [json.loads(m)["type"] for m in conns[0].received[:3]] == \
            ["subscribe", "ping", "ping"]
        assert http_upstream.requests[0].json() == {}
        await upstream.restart()  # the upstream goes away: a new bullet, a new token
        conns = await upstream.wait_connections(2)
        assert conns[1].query["token"] == "tok-2-secret"
        await http_upstream.stop()  # the token endpoint goes away: attempts fail, with backoff
        await upstream.kill()
        await run.until(lambda: "http step 'bullet' (POST) failed" in str(
            run.client.stats.last_error))
        await http_upstream.start()
        conns = await upstream.wait_connections(3)
        assert conns[2].query["token"] == "tok-3-secret"
        await run.until(lambda: run.states[-1] is ConnState.CONNECTED)
    assert redactor.redact("tok-1-secret") == MASK  # a token from a response is a secret


async def test_a_failing_connect_step_is_a_failed_attempt_and_401_a_rejection(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    http_upstream.route("POST", "/api/v1/bullet-public", kucoin_bullet(upstream))
    upstream.handler = kucoin_server
    http_upstream.fail_next(401)
    http_upstream.fail_next(500)
    cfg = kucoin(tmp_path, http_upstream)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Running(cfg) as run:
            await upstream.wait_connections(1)
            await run.until(lambda: ConnState.CONNECTED in run.states)
    assert run.client.stats.reconnects["auth_rejected"] == 1
    assert run.client.stats.reconnects["network"] == 1
    assert "http step 'bullet' (POST) failed: HTTP 401" in caplog.text
    assert "http step 'bullet' (POST) failed: HTTP 500" in caplog.text
    assert len(http_upstream.requests) == 3


async def test_a_slow_token_endpoint_times_out_and_a_non_json_answer_is_a_clear_error(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([Reply(200, "<html>maintenance</html>")])

    def bullet(request: HttpRequestSeen) -> Reply:
        return next(answers, None) or kucoin_bullet(upstream)(request)

    http_upstream.route("POST", "/api/v1/bullet-public", bullet)
    upstream.handler = kucoin_server
    cfg = kucoin(tmp_path, http_upstream, {"timeout: 10s\n    url": "timeout: 200ms\n    url"})
    http_upstream.delay = 1.0
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with Running(cfg) as run:
            await run.until(lambda: run.client.stats.reconnects["network"] >= 1)
            http_upstream.delay = 0.0
            await upstream.wait_connections(1)
    assert "timed out after 0.2s" in caplog.text
    assert "the response of HTTP step 'bullet' is not JSON" in caplog.text


# --- Binance user data: listenKey, keepalive every N, a snapshot after every subscribe ----------

SNAPSHOT = '{"lastUpdateId":42,"bids":[["1.0","2"]],"asks":[]}'


async def binance_server(conn: UpstreamConn) -> None:
    await conn.send_json({"e": "executionReport", "u": 43})


def binance_endpoints(http_upstream: HttpUpstream, upstream: Upstream) -> None:
    """A fresh listenKey per POST (listen-key-1-abcdef, -2-...), keepalives, the snapshot."""
    keys = itertools.count(1)
    http_upstream.route("POST", "/api/v3/userDataStream",
                        lambda r: Reply(200, {"listenKey": f"listen-key-{next(keys)}-abcdef"}))
    http_upstream.route("PUT", "/api/v3/userDataStream", lambda r: Reply(200, {}))
    http_upstream.route("GET", "/api/v3/depth", lambda r: Reply(200, SNAPSHOT))  # as is
    upstream.handler = binance_server


async def test_binance_listen_key_keepalive_and_a_snapshot_delivered_after_each_subscribe(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream) -> None:
    binance_endpoints(http_upstream, upstream)
    hosts = {"https://api.binance.com": http_upstream.url, "every 30m": "every 100ms",
             "wss://stream.binance.com:9443/ws": upstream.url}
    cfg = example("binance-user.yaml", tmp_path, hosts, env={"BINANCE_API_KEY": "api-key-1234"})
    async with Running(cfg) as run:
        conns = await upstream.wait_connections(1)
        assert conns[0].path.endswith("/listen-key-1-abcdef")
        puts = await http_upstream.wait_requests(2, "/api/v3/userDataStream")
        put = next(r for r in puts if r.method == "PUT")
        assert put.query == {"listenKey": "listen-key-1-abcdef"}
        assert put.headers["x-mbx-apikey"] == "api-key-1234"
        await run.until(lambda: [m.data for m in run.messages].count(SNAPSHOT) == 1)
        await upstream.kill()  # reconnect: a fresh key, subscribe again, a snapshot again
        conns = await upstream.wait_connections(2)
        assert conns[1].path.endswith("/listen-key-2-abcdef")
        await run.until(lambda: [m.data for m in run.messages].count(SNAPSHOT) == 2)
    assert {m.data for m in run.messages} >= {SNAPSHOT, '{"e":"executionReport","u":43}'}


async def test_a_slow_keepalive_gets_one_request_at_a_time(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream) -> None:
    beats, enough = 0, asyncio.Event()

    async def server(conn: UpstreamConn) -> None:
        nonlocal beats
        await conn.send_json({"e": "executionReport", "u": 43})
        while await conn.recv_json():  # the heartbeats, every 20 ms
            beats += 1
            if beats >= 10:
                enough.set()

    puts = lambda: sum(r.method == "PUT" for r in http_upstream.requests)  # noqa: E731
    at_answer: list[int] = []

    async def slow_keepalive(request: HttpRequestSeen) -> Reply:
        if not at_answer:  # the first keepalive answers after ten of its 20 ms turns
            await enough.wait()
        at_answer.append(puts())
        return Reply(200, {})

    http_upstream.route("POST", "/api/v3/userDataStream", lambda r: Reply(200, {"listenKey": "k"}))
    http_upstream.route("PUT", "/api/v3/userDataStream", slow_keepalive)
    http_upstream.route("GET", "/api/v3/depth", lambda r: Reply(200, SNAPSHOT))
    upstream.handler = server
    hosts = {"https://api.binance.com": http_upstream.url, "every 30m": "every 20ms",
             "wss://stream.binance.com:9443/ws": upstream.url}
    cfg = example("binance-user.yaml", tmp_path, hosts, env={"BINANCE_API_KEY": "api-key-1234"})
    cfg = replace(cfg, heartbeat=HeartbeatSpec(Template({"ping": 1}), 0.02))
    async with Running(cfg):
        await http_upstream.wait_requests(3, "/api/v3/userDataStream")  # POST, PUT, PUT again
    assert at_answer[0] == 1  # no second keepalive while the first was out
    assert len(at_answer) >= 2  # and the next one went once it had answered


async def test_a_rollover_fetches_a_fresh_key_before_the_successor_opens_and_a_snapshot_after(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream) -> None:
    binance_endpoints(http_upstream, upstream)
    hosts = {"https://api.binance.com": http_upstream.url,
             "wss://stream.binance.com:9443/ws": upstream.url}
    cfg = example("binance-user.yaml", tmp_path, hosts, env={"BINANCE_API_KEY": "api-key-1234"})
    cfg = replace(cfg, renew=RenewSpec(max_age=0.3, rollover="overlap"))
    async with Running(cfg) as run:
        await run.until(lambda: [m.data for m in run.messages].count(SNAPSHOT) == 2)
        first, second = (await upstream.wait_connections(2))[:2]
        assert await first.wait_closed() == 1000  # closed by the bridge once the second took over
    assert first.path.endswith("/listen-key-1-abcdef")
    assert second.path.endswith("/listen-key-2-abcdef")  # fetched before the successor opened
    assert run.client.stats.rollovers >= 1
    assert run.client.stats.reconnects == {}  # rolled over, never reconnected


# --- Signatures checked by the server with the standard library ------------------------------

COINBASE_SECRET = base64.b64encode(b"coinbase-exchange-secret").decode()


async def test_coinbase_exchange_subscribe_carries_a_base64_hmac_the_server_verifies(
        tmp_path: Path, upstream: Upstream) -> None:
    verdicts: list[bool] = []

    async def coinbase(conn: UpstreamConn) -> None:
        sub = await conn.recv_json()
        what = f"{sub['timestamp']}GET/users/self/verify"  # an integer: one placeholder
        good = base64.b64encode(hmac.new(base64.b64decode(COINBASE_SECRET), what.encode(),
                                         hashlib.sha256).digest()).decode()
        verdicts.append(sub["signature"] == good and abs(int(sub["timestamp"]) - time.time()) < 60)
        await conn.send_json({"type": "subscriptions" if verdicts[-1] else "error"})

    upstream.handler = coinbase
    hosts = {"wss://ws-feed.exchange.coinbase.com": upstream.url}
    cfg = example("coinbase.yaml", tmp_path, hosts,
                  env={"CB_SECRET": COINBASE_SECRET, "CB_KEY": "cb-key", "CB_PASSPHRASE": "pass"})
    async with Running(cfg) as run:
        await run.until(lambda: ConnState.CONNECTED in run.states)
    assert verdicts == [True]


async def test_bybit_auth_carries_a_hex_hmac_over_expires_ten_seconds_ahead(
        tmp_path: Path, upstream: Upstream) -> None:
    verdicts: list[bool] = []

    async def bybit(conn: UpstreamConn) -> None:
        auth = await conn.recv_json()
        key, expires, signature = auth["args"]
        good = hmac.new(b"bybit-secret", f"GET/realtime{expires}".encode(),
                        hashlib.sha256).hexdigest()
        ahead = expires - time.time() * 1000
        verdicts.append(key == "bybit-key" and signature == good and 5000 < ahead <= 10000)
        await conn.send_json({"op": "auth", "success": verdicts[-1]})
        await conn.recv_json()
        await conn.send_json({"op": "subscribe", "success": True})

    upstream.handler = bybit
    cfg = example("bybit.yaml", tmp_path, {"wss://stream.bybit.com/v5/private": upstream.url},
                  env={"BYBIT_SECRET": "bybit-secret", "BYBIT_KEY": "bybit-key"})
    async with Running(cfg) as run:
        await run.until(lambda: ConnState.CONNECTED in run.states)
    assert verdicts == [True]


# --- A JWT verified by the server with the public key ------------------------------------------

def ec_key() -> tuple[str, Any]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem, private.public_key()


async def test_coinbase_advanced_subscribe_carries_a_fresh_es256_jwt(
        tmp_path: Path, upstream: Upstream) -> None:
    pem, public = ec_key()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def cdp(conn: UpstreamConn) -> None:
        for _ in range(2):
            token = (await conn.recv_json())["jwt"]
            claims = jwt.decode(token, public, algorithms=["ES256"])  # checks nbf and exp too
            seen.append((jwt.get_unverified_header(token), claims))

    upstream.handler = cdp
    hosts = {"wss://advanced-trade-ws.coinbase.com": upstream.url}
    cfg = example("coinbase-advanced.yaml", tmp_path, hosts,
                  env={"CDP_PRIVATE_KEY": pem, "CDP_KEY_NAME": "organizations/x/apiKeys/y"})
    async with Running(cfg) as run:
        await run.until(lambda: ConnState.CONNECTED in run.states)
    (h1, c1), (h2, _) = seen
    assert h1["kid"] == "organizations/x/apiKeys/y" and h1["alg"] == "ES256"
    assert len(h1["nonce"]) == 32 and h1["nonce"] != h2["nonce"]  # fresh at every render
    assert c1["iss"] == "cdp" and c1["sub"] == "organizations/x/apiKeys/y"
    assert c1["exp"] - c1["nbf"] == 120


# --- check ---------------------------------------------------------------------------------------

def test_check_reports_reads_of_missing_or_later_steps_and_bad_keys(tmp_path: Path) -> None:
    found = issues(tmp_path, """\
    - name: src
      http:
        - {name: first, url: "http://127.0.0.1:1/a?k={http.second.json.k}"}
        - {name: second, url: "http://127.0.0.1:1/b"}
        - {name: ka, on: every 1m, url: "http://127.0.0.1:1/c"}
        - {name: early, url: "http://127.0.0.1:1/d", deliver: true}
      url: "ws://127.0.0.1:1/{http.nope.text}/{http.ka.text}"
      sign:
        s: {hmac: sha256, key: "not base64!", key_encoding: base64, message: "{now_s}"}
      jwt:
        j: {algorithm: ES256, key: "${env:JWT_KEY}"}
      routes: [{sink: out}]
    """, env={"JWT_KEY": "-----BEGIN PRIVATE KEY-----\nsecretstuff\n-----END PRIVATE KEY-----"})
    text = "\n".join(found)
    assert "sources[0].http[0].url: {http.second...} reads a step that runs later" in text
    assert "sources[0].url: {http.nope...} reads an HTTP step that does not exist" in text
    assert "{http.ka...} reads a step that runs only once connected" in text
    assert "sources[0].sign.s.key: the key is not valid base64" in text
    assert "sources[0].http[3].deliver: a step that runs before connecting has no routes" in text
    assert "sources[0].jwt.j.key: the key cannot sign ES256" in text
    assert "secretstuff" not in text and "not base64!" not in text


def test_the_redactor_masks_what_a_response_held() -> None:
    mask = RedactSecrets()
    mask.add(["listen-key-xyz-123"])
    assert mask.redact("connecting to wss://h/ws/listen-key-xyz-123") == f"connecting to wss://h/ws/{MASK}"


# --- TLS, and the whole daemon with a real MQTT subscriber as the oracle ------------------------

async def test_http_steps_go_through_the_sources_tls_settings(
        tmp_path: Path, upstream: Upstream, mosquitto_ca: TestCA,
        http_upstream_factory: Callable[..., Awaitable[HttpUpstream]]) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(mosquitto_ca.cert_file, mosquitto_ca.key_file)
    https = await http_upstream_factory(ssl=server_tls)
    https.route("POST", "/api/v1/bullet-public", kucoin_bullet(upstream))
    upstream.handler = kucoin_server
    trusted = replace(kucoin(tmp_path, https), tls=TLSConfig(ca_file=mosquitto_ca.ca_file))
    async with Running(trusted):
        assert (await upstream.wait_connections(1))[0].query["token"] == "tok-1-secret"
    async with Running(kucoin(tmp_path, https)) as run:  # the system store: not trusted
        await run.until(lambda: "TLS certificate verification failed" in str(
            run.client.stats.last_error))
    assert len(upstream.connections) == 1


async def test_the_daemon_delivers_the_binance_snapshot_to_a_real_mqtt_subscriber(
        tmp_path: Path, upstream: Upstream, http_upstream: HttpUpstream,
        mosquitto: Callable[..., Broker],
        mqtt_subscriber: Callable[..., Awaitable[Subscriber]]) -> None:
    http_upstream.route("POST", "/api/v3/userDataStream",
                        lambda r: Reply(200, {"listenKey": "listen-key-for-mqtt-1"}))
    http_upstream.route("GET", "/api/v3/depth", lambda r: Reply(200, SNAPSHOT))
    upstream.handler = binance_server
    broker = mosquitto()
    subscriber = await mqtt_subscriber(broker, "user/#")
    text = (CONFIGS / "binance-user.yaml").read_text()
    for real, loopback in {
        "https://api.binance.com": http_upstream.url,
        "wss://stream.binance.com:9443/ws": upstream.url,
        "console: {type: stdout, format: raw}":
            f"console: {{type: mqtt, url: mqtt://127.0.0.1:{broker.port}}}",
        "- sink: console": "- {sink: console, topic: user/binance}",
    }.items():
        text = text.replace(real, loopback)
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    supervisor = Supervisor(load_config(path, env={"BINANCE_API_KEY": "k"}))
    running = asyncio.create_task(supervisor.run())
    try:
        got = await subscriber.wait_for(2, topic="user/binance")
        assert {m.payload for m in got} == {SNAPSHOT.encode(), b'{"e":"executionReport","u":43}'}
        assert upstream.connections[0].path == "/ws/listen-key-for-mqtt-1"
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(running, 20) == 0


async def test_http_steps_go_through_the_sources_proxy(
        tmp_path: Path, http_upstream: HttpUpstream) -> None:
    http_upstream.route("POST", "/api/v1/bullet-public", lambda r: Reply(401, "no"))
    cfg = replace(kucoin(tmp_path, http_upstream, {"https://api.kucoin.com": "http://kucoin.invalid"}),
                  proxy=http_upstream.url)  # the loopback server plays the proxy
    async with Running(cfg) as run:
        await run.until(lambda: run.client.stats.reconnects["auth_rejected"] >= 1)
    assert http_upstream.requests[0].target == "http://kucoin.invalid/api/v1/bullet-public"
