"""ws-bridge's Home Assistant discovery against a real Home Assistant (not part of the test suite).

Runs, all on loopback and free ports, each process started here and stopped by its PID:
a Mosquitto, two small WebSocket upstreams (in this process), Home Assistant (``hass -c`` a
temporary config dir, onboarded through its onboarding API, the MQTT integration added through
its config-flow API) and the real ``ws-bridge run`` daemon with ``homeassistant: {controls:
true}``. It then checks what Home Assistant shows, through its REST and websocket APIs:

1. the bridge's device and one device per source, with every entity, live states and
   friendly names that read well (``ws-bridge Uptime``, ``alpha Connectivity``);
2. a source's upstream stopping turns its connectivity off;
3. Home Assistant's Resubscribe and Reconnect buttons (``button.press``) reach the upstream,
   and the bridge logs the reconnect at INFO, as an operator's action;
4. ``online`` on ``homeassistant/status`` and a restart of Home Assistant get discovery re-sent;
5. killing the bridge (its Last Will) and stopping it make the entities unavailable;
6. a reload without a source removes its device, and deletes its retained state and
   availability; a reload with ``controls: false`` removes the buttons;
7. home-assistant.log has no warning or error about the discovery payloads.

Usage (Home Assistant in its own venv, never the project's): ``make ha-verify``, or
``.venv/bin/python contrib/ha-verify/verify.py --hass /path/to/venv/bin/hass [--keep]``.
Exits 0 when every check passed, 1 otherwise; prints one line per check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import gmqtt
import httpx
import websockets
from websockets.asyncio.server import ServerConnection, serve

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
PREFIX = "ws-bridge"  # the sink's topic_prefix, and the discovery node id
BRIDGE_NAME = "ws-bridge"  # the bridge's device name: the default prefix adds nothing to it
SOURCES = ("alpha", "beta")
BRIDGE_KEYS = ("connectivity", "uptime", "sources_connected", "messages_per_second")
BUTTON_KEYS = ("reconnect", "resubscribe")
SOURCE_KEYS = ("connectivity", "state", "messages_per_second", "last_message_age", "reconnects",
               "dropped", "queue_depth", *BUTTON_KEYS)
EVERY = len(BRIDGE_KEYS) + len(SOURCES) * len(SOURCE_KEYS)
IGNORED_LOG = (  # warnings of this install, not of ws-bridge's payloads
    "Support for the running Python version",
)
T = TypeVar("T")
RESULTS: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    RESULTS.append((ok, what))
    print(f"{'PASS' if ok else 'FAIL'}  {what}", flush=True)
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Polls ``probe`` (a cheap HTTP read) until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


# -- processes ---------------------------------------------------------------------------------

class Process:
    """One child process, stopped by its PID only."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.args, self.log, self.env = name, args, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        self.send(sig)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code


# -- the upstreams -----------------------------------------------------------------------------

class Upstream:
    """A WebSocket upstream sending a tick every 0.1 s, recording connections and subscribes."""

    def __init__(self, name: str) -> None:
        self.name, self.port = name, free_port()
        self.connections: list[list[str]] = []  # what each connection received, in order
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/{self.name}"

    async def start(self) -> None:
        self._server = await serve(self._handle, HOST, self.port)

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        received: list[str] = []
        self.connections.append(received)

        async def reader() -> None:
            async for frame in ws:
                received.append(str(frame))

        task = asyncio.create_task(reader())
        n = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            while not task.done():
                n += 1
                await ws.send(json.dumps({"source": self.name, "n": n}))
                await asyncio.sleep(0.1)
        task.cancel()


# -- Home Assistant ----------------------------------------------------------------------------

HA_CONFIG = """homeassistant:
  name: ws-bridge verify
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: {host}
  server_port: {port}
api:
config:
onboarding:
websocket_api:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
"""


class HomeAssistant:
    """``hass -c DIR`` on a free port, onboarded, with an admin token."""

    def __init__(self, hass: str, root: Path) -> None:
        self.dir, self.port = root / "ha", free_port()
        self.dir.mkdir()
        (self.dir / "configuration.yaml").write_text(HA_CONFIG.format(host=HOST, port=self.port))
        self.process = Process("hass", [hass, "-c", str(self.dir)], root / "hass.out")
        self.base = f"http://{HOST}:{self.port}"
        self.token = ""

    @property
    def log(self) -> Path:
        return self.dir / "home-assistant.log"

    async def start(self) -> None:
        self.process.start()
        async with httpx.AsyncClient() as http:
            async def up() -> bool | None:
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(f"{self.base}/api/onboarding", timeout=5)
                    return True if r.status_code == 200 else None
                return None
            await until(up, 300, "Home Assistant's HTTP API")

    async def onboard(self) -> None:
        """The owner through the onboarding API, and a token for it."""
        client_id = f"{self.base}/"
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as http:
            r = await http.post("/api/onboarding/users", json={
                "client_id": client_id, "name": "Verify", "username": "verify",
                "password": "verify-password", "language": "en"})
            r.raise_for_status()
            r = await http.post("/auth/token", data={
                "grant_type": "authorization_code", "code": r.json()["auth_code"],
                "client_id": client_id})
            r.raise_for_status()
            self.token = r.json()["access_token"]

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=60,
                                 headers={"Authorization": f"Bearer {self.token}"})

    async def add_mqtt(self, port: int) -> dict[str, Any]:
        """The MQTT integration through the config-flow API, as the UI does it."""
        async with self.http() as http:
            r = await http.post("/api/config/config_entries/flow", json={"handler": "mqtt"})
            r.raise_for_status()
            flow = r.json()
            if flow.get("type") == "form":
                r = await http.post(f"/api/config/config_entries/flow/{flow['flow_id']}",
                                    json={"broker": HOST, "port": port})
                r.raise_for_status()
                flow = r.json()
            return dict(flow)

    async def states(self) -> dict[str, dict[str, Any]]:
        async with self.http() as http:
            r = await http.get("/api/states")
            r.raise_for_status()
            return {s["entity_id"]: s for s in r.json()}

    async def press(self, entity_id: str) -> None:
        async with self.http() as http:
            r = await http.post("/api/services/button/press", json={"entity_id": entity_id})
            r.raise_for_status()

    async def ws(self, *commands: str) -> list[Any]:
        """Results of websocket API commands (the registries)."""
        url = f"ws://{HOST}:{self.port}/api/websocket"
        out = []
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()  # auth_required
            await ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            assert json.loads(await ws.recv())["type"] == "auth_ok"
            for n, command in enumerate(commands, 1):
                await ws.send(json.dumps({"id": n, "type": command}))
                answer = json.loads(await ws.recv())
                assert answer["success"], answer
                out.append(answer["result"])
        return out

    async def ours(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The devices and entities the bridge's discovery made."""
        devices, entities = await self.ws("config/device_registry/list",
                                          "config/entity_registry/list")
        mine = [e for e in entities if e["platform"] == "mqtt"
                and str(e["unique_id"]).startswith(f"{PREFIX}_")]
        ids = {e["device_id"] for e in mine}
        return [d for d in devices if d["id"] in ids], mine


# -- MQTT: a watcher of discovery, and Home Assistant's status topic ---------------------------

class Watcher:
    """Counts discovery configs published live (not retained replays) after a mark."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.live: list[str] = []  # topics of configs as they were published
        self.client = gmqtt.Client(f"verify-watcher-{os.getpid()}")
        self.client.on_message = self._on_message

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int,
                    properties: Any) -> int:
        if topic.endswith("/config") and payload and not properties.get("retain"):
            self.live.append(topic)
        return 0

    async def start(self) -> None:
        await self.client.connect(HOST, self.port)
        self.client.subscribe(f"homeassistant/+/{PREFIX}/+/config", qos=1)

    async def wait(self, start: int, want: int, timeout: float, what: str) -> list[str]:
        async def enough() -> list[str] | None:
            return self.live[start:] if len(set(self.live[start:])) >= want else None
        return await until(enough, timeout, what)


# -- the checks --------------------------------------------------------------------------------

def uid(source: str | None, key: str) -> str:
    return f"{PREFIX}_{source or 'bridge'}_{key}"


def number(state: dict[str, Any] | None) -> float | None:
    with contextlib.suppress(TypeError, ValueError, KeyError):
        return float(state["state"])  # type: ignore[index]
    return None


async def check_appeared(ha: HomeAssistant) -> dict[str, str]:
    """Devices and entities; returns unique_id -> entity_id."""
    want = {uid(None, k) for k in BRIDGE_KEYS} | {uid(s, k) for s in SOURCES for k in SOURCE_KEYS}

    async def all_there() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        devices, entities = await ha.ours()
        return (devices, entities) if {e["unique_id"] for e in entities} >= want else None

    devices, entities = await until(all_there, 120, f"{len(want)} entities in the registry")
    check(len(entities) == EVERY, f"entity registry: {len(entities)} entities (want {EVERY})")
    by_name = {d["name"]: d for d in devices}
    bridge = by_name.get(BRIDGE_NAME)
    check(bridge is not None and len(devices) == 1 + len(SOURCES),
          f"device registry: {sorted(by_name)}")
    for d in devices:
        via = "bridge" if bridge and d["via_device_id"] == bridge["id"] else d["via_device_id"]
        print(f"      device {d['name']!r}: manufacturer={d['manufacturer']!r} "
              f"model={d['model']!r} sw={d['sw_version']!r} hw={d['hw_version']!r} via={via}")
    for s in SOURCES:
        check(bridge is not None and s in by_name and by_name[s]["via_device_id"] == bridge["id"],
              f"device {s!r} is connected via the bridge's device")
    ids = {e["unique_id"]: e["entity_id"] for e in entities}
    for e in sorted(entities, key=lambda e: e["entity_id"]):
        print(f"      {e['entity_id']:<52} category={e['entity_category']} "
              f"name={e['original_name']!r} has_entity_name={e['has_entity_name']}")
    wrong = [f"{i} -> {ids[i]}" for i in ids
             if ids[i] != f"{ids[i].split('.')[0]}.{i.replace('-', '_')}"]
    check(not wrong, f"entity ids follow object_id {wrong or ''}")
    categories = {e["unique_id"]: e["entity_category"] for e in entities}
    check(categories[uid(None, "connectivity")] == "diagnostic"
          and categories[uid("alpha", "reconnect")] == "config"
          and categories[uid("alpha", "messages_per_second")] is None,
          "entity categories: diagnostic health, config buttons, the rate a plain sensor")
    return ids


async def check_live(ha: HomeAssistant, ids: dict[str, str]) -> None:
    async def live() -> dict[str, dict[str, Any]] | None:
        states = await ha.states()
        ok = all(number(states.get(ids[uid(s, "messages_per_second")]) or {}) for s in SOURCES)
        return states if ok else None

    states = await until(live, 60, "messages per second in Home Assistant")
    for s in (None, *SOURCES):
        check(states[ids[uid(s, "connectivity")]]["state"] == "on",
              f"{s or 'bridge'} connectivity is on")
    for s in SOURCES:
        check(states[ids[uid(s, "state")]]["state"] == "connected", f"{s} state is connected")
        rate = number(states[ids[uid(s, "messages_per_second")]])
        check(rate is not None and rate > 0, f"{s} messages per second: {rate}")
        for key in ("last_message_age", "reconnects", "dropped", "queue_depth"):
            value = number(states[ids[uid(s, key)]])
            check(value is not None, f"{s} {key}: {states[ids[uid(s, key)]]['state']}")
        button = states[ids[uid(s, "reconnect")]]["state"]  # when it was last pressed
        check(button != "unavailable", f"{s} Reconnect button is available: {button}")
    check(number(states[ids[uid(None, "sources_connected")]]) == len(SOURCES),
          f"bridge sources connected: {states[ids[uid(None, 'sources_connected')]]['state']}")
    check(number(states[ids[uid(None, "uptime")]]) is not None,
          f"bridge uptime: {states[ids[uid(None, 'uptime')]]['state']} s")
    names = sorted(states[ids[uid(s, key)]]["attributes"]["friendly_name"]
                   for s, key in ((None, "uptime"), *((s, "connectivity") for s in SOURCES)))
    check(names == sorted([f"{BRIDGE_NAME} Uptime", *(f"{s} Connectivity" for s in SOURCES)]),
          f"friendly names (device name, then entity name): {names}")
    state = states[ids[uid("alpha", "state")]]["attributes"]  # 2024.3's MQTT sensor drops
    check(state.get("device_class") == "enum",  # options (no list shown, no state checked)
          f"alpha state: device class {state.get('device_class')}, "
          f"options {state.get('options', 'dropped')}")
    attributes = states[ids[uid(None, "connectivity")]]["attributes"]
    check("config" in attributes, f"bridge connectivity attributes: {sorted(attributes)}")
    for key in ("messages_per_second", "uptime"):
        a = states[ids[uid(None, key)]]["attributes"]
        print(f"      {ids[uid(None, key)]}: {states[ids[uid(None, key)]]['state']} "
              f"{a.get('unit_of_measurement')} ({a.get('device_class')}, {a.get('state_class')})")


async def state_of(ha: HomeAssistant, entity_id: str, want: Callable[[str], bool],
                   timeout: float, what: str) -> str:
    async def probe() -> str | None:
        state = (await ha.states()).get(entity_id, {}).get("state")
        return state if state is not None and want(state) else None
    return await until(probe, timeout, what)


async def check_buttons(ha: HomeAssistant, ids: dict[str, str], alpha: Upstream,
                        bridge_log: Path) -> None:
    conns, subs = len(alpha.connections), len(alpha.connections[-1])
    await ha.press(ids[uid("alpha", "resubscribe")])

    async def resubscribed() -> bool | None:
        return True if len(alpha.connections[-1]) > subs else None
    await until(resubscribed, 30, "a subscribe again on alpha's connection")
    check(len(alpha.connections) == conns
          and json.loads(alpha.connections[-1][-1]) == {"op": "sub"},
          f"Resubscribe pressed: alpha's live connection got {alpha.connections[-1][-1]}")

    await ha.press(ids[uid("alpha", "reconnect")])

    async def reconnected() -> bool | None:
        return True if len(alpha.connections) > conns and alpha.connections[-1] else None
    await until(reconnected, 30, "a new subscribed connection to alpha")
    check(True, f"Reconnect pressed: alpha got connection #{len(alpha.connections)}, "
          f"subscribed with {alpha.connections[-1][0]}")
    said = [line for line in bridge_log.read_text(errors="replace").splitlines()
            if "source alpha: reconnecting" in line]  # written before the new connection
    check(len(said) == 1 and "reconnecting on request" in said[0] and " INFO " in said[0],
          f"the bridge logged the reconnect as an operator's action: {said}")


async def check_upstream_down(ha: HomeAssistant, ids: dict[str, str], beta: Upstream) -> None:
    await beta.stop()
    await state_of(ha, ids[uid("beta", "connectivity")], lambda s: s == "off", 60,
                   "beta connectivity off")
    states = await ha.states()
    check(True, "beta's upstream stopped: beta connectivity off, its state "
          f"{states[ids[uid('beta', 'state')]]['state']!r}")
    check(states[ids[uid("alpha", "connectivity")]]["state"] == "on", "alpha stays on")
    await beta.start()
    await state_of(ha, ids[uid("beta", "connectivity")], lambda s: s == "on", 120,
                   "beta connectivity on again")
    check(True, "beta's upstream back: beta connectivity on again")


async def check_resent(ha: HomeAssistant, watcher: Watcher, mqtt_port: int) -> None:
    mark = len(watcher.live)
    client = gmqtt.Client(f"verify-status-{os.getpid()}")
    await client.connect(HOST, mqtt_port)
    client.publish("homeassistant/status", b"online", qos=1)
    sent = await watcher.wait(mark, EVERY, 30, "discovery after online on homeassistant/status")
    await client.disconnect()
    check(len(set(sent)) == EVERY, f"'online' on homeassistant/status: {len(set(sent))} "
          "configs sent again")

    mark = len(watcher.live)
    await ha.process.stop()
    await ha.start()
    sent = await watcher.wait(mark, EVERY, 120, "discovery after Home Assistant restarted")
    check(len(set(sent)) == EVERY, f"Home Assistant restarted (its birth message): "
          f"{len(set(sent))} configs sent again")


async def check_gone(ha: HomeAssistant, ids: dict[str, str], bridge: Process,
                     sig: int, how: str, sources: tuple[str, ...] = SOURCES,
                     keys: tuple[str, ...] = SOURCE_KEYS) -> None:
    await bridge.stop(sig)
    source_ids = [ids[uid(s, k)] for s in sources for k in keys]
    bridge_ids = [ids[uid(None, k)] for k in BRIDGE_KEYS if k != "connectivity"]

    async def unavailable() -> dict[str, dict[str, Any]] | None:
        states = await ha.states()
        return states if all(states[i]["state"] == "unavailable"
                             for i in source_ids + bridge_ids) else None
    states = await until(unavailable, 60, f"every entity unavailable after the bridge {how}")
    link = states[ids[uid(None, "connectivity")]]["state"]
    check(link == "off", f"bridge {how}: every source and health entity unavailable, "
          f"bridge connectivity {link!r}")


async def check_restarted(ha: HomeAssistant, ids: dict[str, str], bridge: Process,
                          old: float) -> None:
    """The bridge back after its Last Will: Home Assistant shows the killed process's last
    values (``old`` the uptime) as soon as the bridge is online, then the new process's."""
    uptime, link = ids[uid(None, "uptime")], ids[uid("alpha", "connectivity")]
    bridge.start()
    seen: list[tuple[str, str]] = []

    async def fresh() -> bool | None:
        states = await ha.states()
        now = (states[uptime]["state"], states[link]["state"])
        if not seen or seen[-1] != now:
            seen.append(now)
        new = number(states[uptime])
        return True if new is not None and new < old and now[1] == "on" else None
    await until(fresh, 60, "the restarted bridge's uptime and alpha connectivity on")
    check(True, f"bridge restarted (uptime was {old}): (uptime, alpha connectivity) seen {seen}")


async def check_removed(ha: HomeAssistant, bridge: Process, path: Path, mqtt_port: int,
                        upstreams: list[Upstream]) -> None:
    """A reload (SIGHUP) without beta: its device and entities leave Home Assistant."""
    bridge_config(path, mqtt_port, upstreams[:1])
    bridge.send(signal.SIGHUP)

    async def gone() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        devices, entities = await ha.ours()
        return None if any("_beta_" in e["unique_id"] for e in entities) else (devices, entities)
    devices, entities = await until(gone, 60, "beta's entities removed")
    check(sorted(d["name"] for d in devices) == ["alpha", BRIDGE_NAME]
          and len(entities) == len(BRIDGE_KEYS) + len(SOURCE_KEYS),
          f"reload without beta: devices {sorted(d['name'] for d in devices)}, "
          f"{len(entities)} entities left")
    kept = await retained(mqtt_port, f"{PREFIX}/+/state", f"{PREFIX}/+/availability")
    check(sorted(kept) == [f"{PREFIX}/{s}/{t}" for s in ("alpha", "bridge") for t in
                           ("availability", "state") if (s, t) != ("bridge", "state")],
          f"reload without beta: retained state and availability topics {sorted(kept)}")


async def check_controls_off(ha: HomeAssistant, bridge: Process, path: Path, mqtt_port: int,
                             upstreams: list[Upstream]) -> None:
    """A reload (SIGHUP) with ``controls: false``: the buttons leave Home Assistant."""
    bridge_config(path, mqtt_port, upstreams, controls=False)
    bridge.send(signal.SIGHUP)

    async def gone() -> list[dict[str, Any]] | None:
        _, entities = await ha.ours()
        return None if any(e["entity_id"].startswith("button.") for e in entities) else entities
    entities = await until(gone, 60, "the buttons removed")
    kept = await retained(mqtt_port, "homeassistant/button/#")
    check(len(entities) == len(BRIDGE_KEYS) + len(SOURCE_KEYS) - len(BUTTON_KEYS) and not kept,
          f"reload with controls: false: {len(entities)} entities left, "
          f"{len(kept)} button configs retained")


async def retained(port: int, *filters: str) -> dict[str, bytes]:
    """What the broker retains under ``filters`` (not empty): the retained messages a fresh
    client gets, all sent to it before a marker it publishes after subscribing."""
    got: dict[str, bytes] = {}
    marked = asyncio.Event()
    client = gmqtt.Client(f"verify-retained-{os.getpid()}")

    def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        if topic == "verify/marker":
            marked.set()
        elif payload and properties.get("retain"):
            got[topic] = payload
        return 0
    client.on_message = on_message
    await client.connect(HOST, port)
    try:
        for topic_filter in (*filters, "verify/marker"):
            client.subscribe(topic_filter, qos=1)
        client.publish("verify/marker", b"", qos=1)  # the broker takes a client's packets in
        # order: the retained messages of every filter are sent before the marker
        await asyncio.wait_for(marked.wait(), 30)
    finally:
        await client.disconnect()
    return got


def check_log(ha: HomeAssistant) -> None:
    logs = sorted(ha.dir.glob("home-assistant.log*"), reverse=True)  # .1: before the restart
    text = "".join(log.read_text(errors="replace") for log in logs)
    lines = [line for line in text.splitlines()
             if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    ours = [line for line in lines if not any(i in line for i in IGNORED_LOG)]
    for line in lines:
        print(f"      log: {line[:300]}")
    check(not ours, f"home-assistant.log: {len(ours)} warnings or errors "
          f"({len(lines) - len(ours)} ignored: the Python version's deprecation)")
    discovered = len(re.findall(r"Found new component: (\w+) (\S+)", text))
    print(f"      log: {discovered} 'Found new component' lines from MQTT discovery")


def bridge_config(path: Path, mqtt_port: int, upstreams: list[Upstream],
                  controls: bool = True) -> None:
    sources = "".join(f"""
  - name: {u.name}
    url: {u.url}
    subscribe: [{{send: {{op: sub}}}}]
    routes:
      - sink: ha
""" for u in upstreams)
    path.write_text(f"""version: 1
sinks:
  ha:
    type: mqtt
    url: mqtt://{HOST}:{mqtt_port}
    client_id: ws-bridge-verify
    topic_prefix: {PREFIX}
    homeassistant: {{controls: {str(controls).lower()}, interval: 2s}}
sources:{sources}""")


@contextlib.asynccontextmanager
async def mosquitto(root: Path) -> AsyncIterator[int]:
    port = free_port()
    conf = root / "mosquitto.conf"
    conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n")
    broker = Process("mosquitto", [MOSQUITTO, "-c", str(conf)], root / "mosquitto.log")
    broker.start()

    async def up() -> bool | None:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return True
        return None
    try:
        await until(up, 30, "mosquitto")
        yield port
    finally:
        await broker.stop()


async def main(hass: str, root: Path) -> int:
    upstreams = [Upstream(name) for name in SOURCES]
    for u in upstreams:
        await u.start()
    async with mosquitto(root) as mqtt_port:
        ha = HomeAssistant(hass, root)
        bridge_yaml = root / "bridge.yaml"
        bridge_config(bridge_yaml, mqtt_port, upstreams)
        bridge = Process("ws-bridge", [sys.executable, "-m", "bridge", "run", str(bridge_yaml)],
                         root / "bridge.log", env={**os.environ, "PYTHONPATH": str(REPO)})
        watcher = Watcher(mqtt_port)
        try:
            version = subprocess.run([hass, "--version"], check=False, capture_output=True,
                                     text=True)
            print(f"Home Assistant {version.stdout.strip()}, files in {root}", flush=True)
            await ha.start()
            await ha.onboard()
            flow = await ha.add_mqtt(mqtt_port)
            check(flow.get("type") == "create_entry",
                  f"MQTT integration added through the config flow: {flow.get('type')}")
            await watcher.start()
            bridge.start()
            ids = await check_appeared(ha)
            await check_live(ha, ids)
            await check_buttons(ha, ids, upstreams[0], bridge.log)
            await check_upstream_down(ha, ids, upstreams[1])
            await check_resent(ha, watcher, mqtt_port)
            await check_live(ha, ids)
            old = number((await ha.states())[ids[uid(None, "uptime")]])
            await check_gone(ha, ids, bridge, signal.SIGKILL, "killed (its Last Will)")
            await check_restarted(ha, ids, bridge, old or 0.0)
            await check_removed(ha, bridge, bridge_yaml, mqtt_port, upstreams)
            await check_controls_off(ha, bridge, bridge_yaml, mqtt_port, upstreams[:1])
            keys = tuple(k for k in SOURCE_KEYS if k not in BUTTON_KEYS)
            await check_gone(ha, ids, bridge, signal.SIGTERM, "stopped (SIGTERM)", ("alpha",),
                             keys)
            check_log(ha)
        except (TimeoutError, AssertionError, httpx.HTTPError) as e:
            check(False, f"{type(e).__name__}: {e}")
        finally:
            with contextlib.suppress(Exception):
                await watcher.client.disconnect()
            await bridge.stop()
            await ha.process.stop()
            for u in upstreams:
                await u.stop()
    failed = [what for ok, what in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hass", default=os.environ.get("HASS", "hass"),
                        help="the hass executable of a Home Assistant venv (default: $HASS)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (HA's config and log, the bridge's)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ws-bridge-ha-verify-"))
    try:
        code = asyncio.run(main(args.hass, root))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)
