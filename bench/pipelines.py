"""The pipelines under test, each started as processes, and the installs they need (Node-RED)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from harness import BENCH, PYTHON, ROOT, BenchError, free_port, spawn

NODE_DIR = BENCH / ".node"
NODE_MODULES = NODE_DIR / "node_modules"
RED_JS = NODE_MODULES / "node-red" / "red.js"
WS_BRIDGE = ROOT / ".venv" / "bin" / "ws-bridge"
TOPIC = "bench/out"
SUBSCRIPTION = "bench/#"  # the templated topics of ws-bridge-features land under bench/ too
# mosquitto_pub's window of QoS 1 messages in flight: 100 is its fastest here (20, its default,
# is half as fast; 65535 is five times slower, its in-flight list is scanned linearly).
MOSQUITTO_PUB_INFLIGHT = 100


@dataclass
class Ctx:
    """Where one cell's pipeline connects, and where it may write its files."""

    workdir: Path
    ws_url: str
    broker_port: int
    qos: int
    out_file: Path
    sources: int = 1  # the idle-memory cells give ws-bridge many sources on the same upstream
    logs: list[Path] = field(default_factory=list)  # the pipeline's stdout/stderr, for errors


Starter = Callable[[Ctx], list[subprocess.Popen[bytes]]]


@dataclass
class Pipeline:
    name: str  # what --only takes
    label: str  # the table row
    kind: str  # "mqtt": counted by the MQTT subscriber; "ws": counts itself; "file"; "pub";
    # "idle": many idle sources; "fleet": many sources at a steady rate each; "pool": one
    # pooled source, many items over several connections
    start: Starter | None
    n_scale: float = 1.0  # slow peers move fewer messages per run, so the bench stays bounded
    unavailable: str = ""  # why it cannot run here (set by prepare())
    qos_matters: bool = True
    only_qos: int | None = None
    default_window: bool = False  # broker keeps Mosquitto's default Receive Maximum of 20
    fanout: int = 1  # deliveries per upstream message (a route with each)
    only_size: int | None = None
    upstream_args: tuple[str, ...] = ()  # for the blaster: --gzip


def _log(ctx: Ctx, name: str) -> Path:
    ctx.logs.append(ctx.workdir / f"{name}.log")
    return ctx.logs[-1]


def start_ws_bridge(ctx: Ctx, launcher: list[str] | None = None,
                    frames: dict[str, str] | None = None,
                    sink: dict[str, str] | None = None,
                    coalesce: float | None = None) -> list[subprocess.Popen[bytes]]:
    names = ["bench"] if ctx.sources == 1 else [f"idle-{i:04d}" for i in range(ctx.sources)]
    decoding = {"frames": frames} if frames else {}
    config = {
        "version": 1,
        **({"coalesce": coalesce} if coalesce is not None else {}),
        "sinks": {"broker": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{ctx.broker_port}",
                             "qos": ctx.qos, **(sink or {})}},
        "sources": [{"name": name, "url": ctx.ws_url, **decoding,
                     "routes": [{"sink": "broker", "topic": TOPIC}]} for name in names],
    }
    return [_run_ws_bridge(ctx, config, "ws-bridge", launcher)]


def start_ws_bridge_gzip(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """The blaster's frames gzip-compressed as binary (HTX, OKX): what decoding them costs."""
    return start_ws_bridge(ctx, frames={"binary": "gzip"})


def start_ws_bridge_c0(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """Loop turns not held while messages flow (``coalesce: 0``): the lowest latency."""
    return start_ws_bridge(ctx, coalesce=0)


def start_ws_bridge_311(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """The sink speaking MQTT 3.1.1, which has no Receive Maximum: the broker sets no window."""
    return start_ws_bridge(ctx, sink={"protocol": "3.1.1"})


# ws-bridge with the optional speed-ups (uvloop, orjson) hidden: `import uvloop` raises ImportError.
PLAIN_LAUNCHER = [PYTHON, "-c", "import sys; sys.modules.update(uvloop=None, orjson=None);"
                  " from bridge.cli import main; sys.exit(main())"]


def start_ws_bridge_plain(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    return start_ws_bridge(ctx, PLAIN_LAUNCHER)


def start_ws_bridge_base(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """ws-bridge from another copy of the code (BENCH_BASE, a directory holding ``bridge/``),
    e.g. ``git archive HEAD~3 bridge | tar -x -C /tmp/base``: before and after, in one run."""
    return start_ws_bridge(ctx, launcher_from(os.environ.get("BENCH_BASE", ""), "BENCH_BASE"))


def launcher_from(src: str, what: str) -> list[str]:
    """A command line that runs ws-bridge from ``src/bridge/`` instead of the installed code."""
    if not (Path(src) / "bridge" / "cli.py").exists():
        raise BenchError(f"{what}={src!r} holds no bridge/cli.py")
    return [PYTHON, "-c", f"import sys; sys.path.insert(0, {src!r});"
            " from bridge.cli import main; sys.exit(main())"]


def start_ws_bridge_features(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """What a real route costs: a filter, a topic from the message, MQTT 5 properties, and the
    source's dedup and sequence checks. Each run re-sends seq 0..N-1: the window (1000) has
    forgotten them by then, and the sequence check sees a restart, not a gap."""
    config = {
        "version": 1,
        "sinks": {"broker": {
            "type": "mqtt", "url": f"mqtt://127.0.0.1:{ctx.broker_port}", "qos": ctx.qos,
            "properties": {"message_expiry": "60s",
                           "user": {"source": "{source}", "received_at": "{now_ms}"}}}},
        "sources": [{
            "name": "bench", "url": ctx.ws_url,
            "dedup": {"key": "{msg.seq}", "window": 1000}, "sequence": {"key": "{msg.seq}"},
            "routes": [
                {"sink": "broker", "when": {"e": "trade"}, "topic": "bench/{source}/{msg.e}"}]}],
    }
    return [_run_ws_bridge(ctx, config, "ws-bridge-features")]


def _with_steps(name: str, steps: dict[str, object]) -> Starter:
    """ws-bridge with one route step, each measured on its own against the plain route."""
    def start(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
        config = {
            "version": 1,
            "sinks": {"broker": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{ctx.broker_port}",
                                 "qos": ctx.qos}},
            "sources": [{"name": "bench", "url": ctx.ws_url,
                         "routes": [{"sink": "broker", "topic": TOPIC, **steps}]}],
        }
        return [_run_ws_bridge(ctx, config, name)]
    return start


def start_ws_bridge_file(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    config = {
        "version": 1,
        "sinks": {"out": {"type": "file", "path": str(ctx.out_file), "format": "raw"}},
        "sources": [{"name": "bench", "url": ctx.ws_url, "routes": [{"sink": "out"}]}],
    }
    return [_run_ws_bridge(ctx, config, "ws-bridge-file")]


def _run_ws_bridge(ctx: Ctx, config: dict[str, object], name: str,
                   launcher: list[str] | None = None) -> subprocess.Popen[bytes]:
    if not WS_BRIDGE.exists():
        raise BenchError(f"{WS_BRIDGE} is missing (run `make` first)")
    path = ctx.workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if launcher is None and (src := os.environ.get("BENCH_SRC")):  # every ws-bridge row from src
        launcher = launcher_from(src, "BENCH_SRC")
    cmd = [*(launcher or [str(WS_BRIDGE)]), "run", str(path)]
    if rate := os.environ.get("BENCH_PROFILE"):  # py-spy samples ws-bridge, in raw (folded) form
        spy = ROOT / ".venv" / "bin" / "py-spy"
        # sh ignores SIGTERM for py-spy, which then writes its profile when ws-bridge exits
        cmd = ["sh", "-c", 'trap "" TERM; exec "$@"', "sh", str(spy), "record", "--nonblocking",
               "--format", "raw", "--rate", rate, "--output", str(ctx.workdir / f"{name}.spy"),
               *(["--idle"] if os.environ.get("BENCH_PROFILE_IDLE") else []), "--", *cmd]
    return spawn(cmd, _log(ctx, name), cwd=ctx.workdir)


def start_ws_bridge_fleet(ctx: Ctx, connections: int = 1, coalesce: float | None = None,
                          launcher: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
    """The fleet: ``ctx.sources`` sources, each its own connection to the same upstream."""
    config = {
        "version": 1,
        **({"coalesce": coalesce} if coalesce is not None else {}),
        "sinks": {"broker": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{ctx.broker_port}",
                             "qos": ctx.qos, "connections": connections}},
        "sources": [{"name": f"fleet-{i:03d}", "url": ctx.ws_url,
                     "routes": [{"sink": "broker", "topic": TOPIC}]}
                    for i in range(ctx.sources)],
    }
    return [_run_ws_bridge(ctx, config, "ws-bridge-fleet", launcher)]


def start_ws_bridge_pool(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """The pool: one source, ``ctx.sources`` items subscribed in batches of 100 over
    connections of 500 items each (Binance-like: 5 messages a second per connection)."""
    config = {
        "version": 1,
        "sinks": {"broker": {"type": "mqtt", "url": f"mqtt://127.0.0.1:{ctx.broker_port}",
                             "qos": ctx.qos}},
        "sources": [{
            "name": "pool", "url": ctx.ws_url,
            "subscribe": [{"each": [f"item{i:05d}@trade" for i in range(ctx.sources)],
                           "batch": 100, "expect": {"result": None},
                           "send": {"method": "SUBSCRIBE", "params": "{items}", "id": "{seq}"}}],
            "pool": {"per_connection": 500, "max_connections": 20, "connect_every": "50ms"},
            "rate_limit": {"messages": 5, "per": "1s"},
            "routes": [{"sink": "broker", "topic": TOPIC}]}],
    }
    return [_run_ws_bridge(ctx, config, "ws-bridge-pool")]


def start_ws_bridge_fleet4(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    return start_ws_bridge_fleet(ctx, connections=4)


def start_ws_bridge_fleet_c0(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    return start_ws_bridge_fleet(ctx, coalesce=0)


def start_ws_bridge_fleet_base(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """The fleet from BENCH_BASE (only when named): before and after in one pass."""
    return start_ws_bridge_fleet(ctx, launcher=launcher_from(os.environ.get("BENCH_BASE", ""),
                                                             "BENCH_BASE"))


def start_ws_idle(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    cmd = [PYTHON, str(BENCH / "peers" / "ws_idle.py"), "--ws", ctx.ws_url,
           "--count", str(ctx.sources)]
    return [spawn(cmd, _log(ctx, "ws_idle"))]


def _python_peer(script: str) -> Starter:
    def start(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
        cmd = [PYTHON, str(BENCH / "peers" / script), "--ws", ctx.ws_url,
               "--port", str(ctx.broker_port), "--topic", TOPIC, "--qos", str(ctx.qos)]
        return [spawn(cmd, _log(ctx, script))]

    return start


def start_node_red(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    """``websocket in`` → ``mqtt out``; with ``ctx.sources`` > 1 (the fleet), that many
    websocket-in nodes, each with its own client connection, all wired to the one mqtt-out."""
    user_dir = ctx.workdir / "node-red"
    user_dir.mkdir(exist_ok=True)
    ins: list[dict[str, object]] = []
    for i in range(ctx.sources):
        ins += [
            {"id": f"bench-wsc-{i}", "type": "websocket-client", "path": ctx.ws_url, "tls": "",
             "wholemsg": "false", "hb": "0", "subprotocol": "", "headers": []},
            {"id": f"bench-in-{i}", "type": "websocket in", "z": "bench-tab", "name": "",
             "server": "", "client": f"bench-wsc-{i}", "x": 100, "y": 100 + 40 * i,
             "wires": [["bench-out"]]},
        ]
    flows = [
        {"id": "bench-tab", "type": "tab", "label": "bench"},
        *ins,
        {"id": "bench-out", "type": "mqtt out", "z": "bench-tab", "name": "", "topic": TOPIC,
         "qos": str(ctx.qos), "retain": "false", "respTopic": "", "contentType": "",
         "userProps": "", "correl": "", "expiry": "", "broker": "bench-broker",
         "x": 300, "y": 100, "wires": []},
        {"id": "bench-broker", "type": "mqtt-broker", "name": "", "broker": "127.0.0.1",
         "port": str(ctx.broker_port), "clientid": "", "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "60", "cleansession": True,
         "autoUnsubscribe": True, "birthTopic": "", "closeTopic": "", "willTopic": ""},
    ]
    (user_dir / "flows.json").write_text(json.dumps(flows))
    settings = user_dir / "settings.js"
    settings.write_text(
        "module.exports = {\n"
        f"  uiHost: '127.0.0.1', uiPort: {free_port()},\n"
        "  httpAdminRoot: false, httpNodeRoot: false,\n"
        "  flowFile: 'flows.json', credentialSecret: false,\n"
        "  diagnostics: { enabled: false }, telemetry: { enabled: false },\n"
        "  logging: { console: { level: 'warn', metrics: false, audit: false } },\n"
        "  editorTheme: { tours: false },\n"
        "};\n"
    )
    cmd = [node_binary(), str(RED_JS), "--settings", str(settings), "--userDir", str(user_dir)]
    return [spawn(cmd, _log(ctx, "node-red"), cwd=user_dir)]


def start_ws_pipe(ctx: Ctx) -> list[subprocess.Popen[bytes]]:
    env = {"PATH": "/usr/bin:/bin", "NODE_PATH": str(NODE_MODULES)}
    node = spawn([node_binary(), str(BENCH / "peers" / "ws_pipe.js"), ctx.ws_url],
                 _log(ctx, "ws_pipe"), stdout=subprocess.PIPE, env=env)
    pub = spawn(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(ctx.broker_port), "-t", TOPIC,
                 "-q", str(ctx.qos), "-l", "-M", str(MOSQUITTO_PUB_INFLIGHT)],
                _log(ctx, "ws_pipe-pub"), stdin=node.stdout)
    assert node.stdout is not None
    node.stdout.close()  # mosquitto_pub holds the read end now
    return [node, pub]


PIPELINES = [
    Pipeline("ws-bridge", "**ws-bridge**", "mqtt", start_ws_bridge),
    Pipeline("ws-bridge-plain", "ws-bridge without uvloop and orjson", "mqtt",
             start_ws_bridge_plain),
    Pipeline("ws-bridge-features",
             "ws-bridge with `when`, a templated topic, MQTT 5 properties, dedup, sequence check",
             "mqtt", start_ws_bridge_features),
    Pipeline("ws-bridge-gzip", "ws-bridge, frames gzip-compressed as binary (`frames: {binary: "
             "gzip}`)", "mqtt", start_ws_bridge_gzip, only_qos=0, only_size=1024,
             upstream_args=("--gzip",)),
    Pipeline("node-red", "Node-RED 4 (websocket-in → mqtt-out)", "mqtt", start_node_red),
    Pipeline("ws-pipe", "node ws client piped to `mosquitto_pub -l` (C)", "mqtt", start_ws_pipe),
    Pipeline("naive", "naive Python: websockets + aiomqtt, await per publish", "mqtt",
             _python_peer("naive.py"), n_scale=0.2),
    Pipeline("minimal", "minimal Python: websockets + gmqtt, fire-and-forget", "mqtt",
             _python_peer("minimal.py")),
    Pipeline("mosquitto-pub", "ceiling: `mosquitto_pub -l` alone", "pub", None),
    Pipeline("ws-discard", "ceiling: websockets client receiving and discarding", "ws",
             None, qos_matters=False),
]
# The same pipelines against a broker at Mosquitto's defaults: `max_inflight_messages 20`, which
# Mosquitto sends to MQTT 5 clients as the Receive Maximum in its CONNACK (3.1.1 has no window).
DEFAULT_BROKER_PIPELINES = [
    Pipeline("ws-bridge-rm20", "**ws-bridge**", "mqtt", start_ws_bridge, default_window=True),
    Pipeline("ws-bridge-311-rm20", "ws-bridge, `protocol: 3.1.1`", "mqtt", start_ws_bridge_311,
             default_window=True),
    Pipeline("node-red-rm20", "Node-RED 4 (MQTT 3.1.1)", "mqtt", start_node_red,
             default_window=True),
    Pipeline("minimal-rm20", "minimal Python: websockets + gmqtt (MQTT 5)", "mqtt",
             _python_peer("minimal.py"), default_window=True),
    Pipeline("mosquitto-pub-rm20", "`mosquitto_pub -l` alone (MQTT 3.1.1)", "pub", None,
             default_window=True),
]
# Before/after: ws-bridge from BENCH_BASE, with either broker; run only when named in --only.
AB_PIPELINES = [
    Pipeline("ws-bridge-base", "ws-bridge from BENCH_BASE", "mqtt", start_ws_bridge_base),
    Pipeline("ws-bridge-base-rm20", "ws-bridge from BENCH_BASE", "mqtt", start_ws_bridge_base,
             default_window=True),
]
# The fleet: many sources at a steady rate each, into a broker at its defaults (see run.py).
FLEET_PIPELINES = [
    Pipeline("ws-bridge-fleet", "**ws-bridge** (100 sources)", "fleet", start_ws_bridge_fleet),
    Pipeline("ws-bridge-fleet-c4", "ws-bridge, `connections: 4`", "fleet", start_ws_bridge_fleet4),
    Pipeline("ws-bridge-fleet-c0", "ws-bridge, `coalesce: 0`", "fleet",
             start_ws_bridge_fleet_c0),
    Pipeline("ws-bridge-fleet-base", "ws-bridge from BENCH_BASE", "fleet",
             start_ws_bridge_fleet_base),
    Pipeline("node-red-fleet", "Node-RED 4 (100 websocket-in → 1 mqtt-out)", "fleet",
             start_node_red),
]
# Route steps (issue 17), on the 1 KiB QoS 0 cell only, each against the plain ws-bridge row. Every
# message is delivered: the throttle's key and the on_change value differ for each message.
EACH = 10
STEP_PIPELINES = [
    Pipeline("ws-bridge-ops", "`when` with `$in` and `$gt`", "mqtt", _with_steps(
        "ws-bridge-ops", {"when": {"e": {"$in": ["trade", "quote"]}, "seq": {"$gt": -2}}})),
    Pipeline("ws-bridge-each", f"`each` over a {EACH}-element list (per delivered element)",
             "mqtt", _with_steps("ws-bridge-each", {"each": "{msg.l}", "payload": "{item}"}),
             n_scale=1 / EACH, fanout=EACH),
    Pipeline("ws-bridge-throttle", "`throttle` keyed by `{msg.seq}`, every 1s", "mqtt",
             _with_steps("ws-bridge-throttle", {"throttle": {"key": "{msg.seq}", "every": "1s"}})),
    Pipeline("ws-bridge-on-change", "`on_change` of `{msg.seq}` by `{msg.e}`", "mqtt",
             _with_steps("ws-bridge-on-change",
                         {"on_change": {"key": "{msg.e}", "value": "{msg.seq}"}})),
]
STEP_CELL = (1024, 0)
# The pool: one source, 10,000 items over 20 connections, each item 1 msg/s (see run.py).
POOL_PIPELINE = Pipeline("ws-bridge-pool", "**ws-bridge** (one pooled source)", "pool",
                         start_ws_bridge_pool, only_qos=0)
# What each of them is run as, for the installs
BASE_OF = {"node-red-rm20": "node-red", "mosquitto-pub-rm20": "mosquitto-pub",
           "node-red-fleet": "node-red"}
FILE_PIPELINE = Pipeline("ws-bridge-file", "ws-bridge → file sink", "file", start_ws_bridge_file)
IDLE_PIPELINES = [
    Pipeline("ws-bridge-idle", "ws-bridge, idle sources", "idle", start_ws_bridge),
    Pipeline("ws-idle-floor", "floor: a Python process holding idle websockets connections",
             "idle", start_ws_idle),
]
# Latency only: ws-bridge without its turns held while messages flow (the default holds 0.4 ms)
LATENCY_ONLY = [Pipeline("ws-bridge-c0", "ws-bridge, `coalesce: 0`", "mqtt", start_ws_bridge_c0)]
BY_NAME = {p.name: p for p in [*PIPELINES, *DEFAULT_BROKER_PIPELINES, *AB_PIPELINES,
                               FILE_PIPELINE, *IDLE_PIPELINES, *FLEET_PIPELINES,
                               *STEP_PIPELINES, POOL_PIPELINE, *LATENCY_ONLY]}


def node_binary() -> str:
    return shutil.which("node") or "node"


def prepare(pipelines: list[Pipeline], log: Path) -> None:
    """Install what the chosen peers need; a peer whose install fails is marked unavailable."""
    names = {BASE_OF.get(p.name, p.name) for p in pipelines}
    if names & {"node-red", "ws-pipe"}:
        reason = ensure_node_red(log)
        for p in pipelines:
            if BASE_OF.get(p.name, p.name) in {"node-red", "ws-pipe"}:
                p.unavailable = reason
    if "naive" in names:
        reason = ensure_pip("aiomqtt", "aiomqtt>=2,<3", log)
        BY_NAME["naive"].unavailable = reason
    if "ws-bridge-plain" in names:
        # Only worth a row when the speed-ups are there to hide (`make bench` installs them).
        fast = [m for m in ("uvloop", "orjson") if importable(m)]
        BY_NAME["ws-bridge-plain"].unavailable = (
            "" if fast else "uvloop and orjson are not installed (pip install -e '.[fast]')")
    if names & {"mosquitto-pub", "ws-pipe"} and not shutil.which("mosquitto_pub"):
        for p in pipelines:
            if BASE_OF.get(p.name, p.name) in {"mosquitto-pub", "ws-pipe"}:
                p.unavailable = "mosquitto_pub is not installed (mosquitto-clients)"


def ensure_node_red(log: Path) -> str:
    if RED_JS.exists() and (NODE_MODULES / "ws").exists():
        return ""
    if shutil.which("npm") is None or shutil.which("node") is None:
        install_node(log)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "node/npm not installed"
    print("installing Node-RED 4 into bench/.node (npm) ...", flush=True)
    NODE_DIR.mkdir(exist_ok=True)
    with log.open("ab") as out:
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                 "--loglevel=error", "node-red@4"],
                stdout=out, stderr=out, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return "npm install node-red@4 timed out"
    if done.returncode != 0 or not RED_JS.exists():
        return f"npm install node-red@4 failed (see {log})"
    return ""


def importable(module: str) -> bool:
    probe = subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


def install_node(log: Path) -> None:
    """On a fresh Debian-like machine, as root, get node and npm from the OS packages."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    print("node/npm missing: installing them with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("ab") as out:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "nodejs", "npm"]):
            try:
                if subprocess.run(cmd, stdout=out, stderr=out, env=env, timeout=300,
                                  check=False).returncode != 0:
                    return
            except subprocess.TimeoutExpired:
                return


def ensure_pip(module: str, requirement: str, log: Path) -> str:
    if importable(module):
        return ""
    print(f"installing {requirement} into the venv (bench only) ...", flush=True)
    with log.open("ab") as out:
        try:
            done = subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", requirement],
                                  stdout=out, stderr=out, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return f"pip install {requirement} timed out"
    return "" if done.returncode == 0 else f"pip install {requirement} failed (see {log})"
