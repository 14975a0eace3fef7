"""The ``ws-bridge`` command line: run, check, schema, demo, replay, status, tap, call, probe."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bridge import __version__
from bridge.call import call_source
from bridge.config.load import load_config, load_schema
from bridge.config.model import Config
from bridge.config.reference import markdown
from bridge.connected import check_connect
from bridge.errors import ConfigError
from bridge.logs import setup_logging
from bridge.metrics_client import fetch_status, tap_lines
from bridge.probe import probe_source
from bridge.redaction import redact
from bridge.server.feed import FeedServer
from bridge.server.replay import serve_replay
from bridge.shard import parse_shard
from bridge.sinks.outbox_report import describe_outbox
from bridge.sinks.settings import MqttSinkConfig
from bridge.status_table import format_status_table
from bridge.supervisor import Supervisor
from bridge.tap import CUT as TAP_CUT
from bridge.upstream.urls import safe_url
from bridge.workers import EX_GAVE_UP, WORKER_ENV, Workers

EX_CONFIG = 78  # sysexits.h: configuration error; the systemd units' RestartPreventExitStatus
EX_UNAVAILABLE = 69  # sysexits.h: `status` could not reach the daemon
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ws-bridge", description="Pipe WebSocket feeds into MQTT, files and stdout."
    )
    parser.add_argument("--version", action="version", version=f"ws-bridge {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="auto", choices=["auto", "text", "json"],
                        help="auto: journald style under systemd, text otherwise")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bridge for a config file")
    run.add_argument("config", type=Path)
    run.add_argument("--shard", metavar="K/N", type=parse_shard,
                     help="run only the sources that shard K of N owns (rendezvous hashing)")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N processes, each owning a stable share of the sources")
    check = sub.add_parser("check", help="validate a config file without connecting")
    check.add_argument("config", type=Path)
    check.add_argument("--state", action="store_true",
                       help="also report each durable outbox: depth, oldest age, integrity")
    check.add_argument("--connect", action="store_true",
                       help="then connect for real: each sink (broker, file path) and each "
                       "source (HTTP steps, handshake, auth; no subscribe); exit 1 if one fails")
    schema = sub.add_parser("schema", help="print the config's JSON Schema (for editors)")
    schema.add_argument("--markdown", action="store_true",
                        help="print the config reference generated from the schema instead")
    demo = sub.add_parser("demo", help="run the built-in demo upstream and bridge it to stdout")
    demo.add_argument("--config", type=Path, default=DEMO_CONFIG)
    replay = sub.add_parser("replay", help="serve a file sink's recording (envelope format) as "
                            "an upstream, to test configs offline against real traffic")
    replay.add_argument("file", type=Path)
    replay.add_argument("--listen", default="127.0.0.1:8765", help="host:port to serve on")
    replay.add_argument("--speed", type=float, default=1.0,
                        help="1: the recorded pace; 10: ten times faster; 0: as fast as possible")
    replay.add_argument("--loop", action="store_true", help="start over at the end of the file")
    replay.add_argument("--source", help="replay only the messages of this source")
    call = sub.add_parser("call", help="connect one source, send one request, print the reply")
    call.add_argument("config", type=Path)
    call.add_argument("source", help="the name of the source")
    call.add_argument("json", help="the request: {mqtt.payload} of rpc.send (without rpc: sent "
                      "as is)")
    call.add_argument("--timeout", type=float, help="seconds to wait for the reply, connecting "
                      "included (default: rpc.timeout, else 10)")
    probe = sub.add_parser("probe", help="connect one source and show what its routes make of "
                           "its next messages, publishing nothing")
    probe.add_argument("config", type=Path)
    probe.add_argument("source", help="the name of the source")
    probe.add_argument("-n", type=int, default=1, metavar="N", help="messages to show (1)")
    probe.add_argument("--timeout", type=float, help="seconds to wait for them, connecting "
                       "included (default 10)")
    status = sub.add_parser("status", help="print the sources of a running daemon")
    status.add_argument("--url", default="http://127.0.0.1:9108",
                        help="the daemon's metrics address (metrics.listen)")
    status.add_argument("--interval", type=float, default=1.0,
                        help="seconds between the two samples that give msgs/s")
    tap = sub.add_parser("tap", help="stream a running daemon's messages live, as envelope "
                         "lines (metrics.tap)")
    tap.add_argument("source", nargs="*", help="only these sources (default: all)")
    tap.add_argument("--url", default="http://127.0.0.1:9108",
                     help="the daemon's metrics address (metrics.listen)")
    tap.add_argument("--token", help="metrics.tap_token (default: $WS_BRIDGE_TAP_TOKEN; an "
                     "option shows in the process list)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in NO_CONFIG:
        return NO_CONFIG[args.command](args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.issues)
        print(f"{args.config}: invalid config ({count} problem{'s' * (count != 1)})",
              file=sys.stderr)
        return EX_CONFIG
    if args.command == "check":
        print(redact(_summary(config), config.secrets))  # a URL path may hold a listen key
        for warning in config.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        state = _state(config) if args.state else 0
        return max(state, _connect(config, args.log_level, args.log_format)
                   if args.connect else 0)
    setup_logging(args.log_level, args.log_format, config.secrets)
    for warning in config.warnings:
        logging.getLogger("bridge.config").warning("%s", warning)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            if getattr(args, "workers", 1) > 1 and not args.shard:
                options = ["--log-level", args.log_level, "--log-format", args.log_format]
                return runner.run(Workers(args.config, args.workers, options).run())
            shard = getattr(args, "shard", None)
            main_task = (_call(config, args.source, args.json, args.timeout)
                         if args.command == "call" else
                         _probe(config, args.source, args.n, args.timeout)
                         if args.command == "probe" else
                         _demo(config) if args.command == "demo" else _run(config, shard))
            return runner.run(main_task)
    except BrokenPipeError:
        # stdout's reader went away (`ws-bridge demo | head`): exit quietly, as Python documents.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (pip install ws-bridge[fast]), else asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional, and only the daemon commands want it
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _schema(args: argparse.Namespace) -> int:
    print(markdown(load_schema()) if args.markdown else json.dumps(load_schema(), indent=2))
    return 0


async def _run(config: Config, shard: tuple[int, int] | None = None) -> int:
    supervisor = Supervisor(config, shard=shard)
    supervisor.install_signal_handlers()
    code = await supervisor.run()
    if supervisor.gave_up and os.environ.get(WORKER_ENV):
        return EX_GAVE_UP  # tells the parent not to restart this worker (see bridge.workers)
    return code


async def _demo(config: Config) -> int:
    """Start the demo upstream where the demo config points, then bridge it."""
    port = urlsplit(config.sources[0].url).port or 8765
    server = FeedServer()
    await server.start("127.0.0.1", port)
    try:
        return await _run(config)
    finally:
        await server.close()


async def _call(config: Config, name: str, text: str, wait: float | None) -> int:
    """``ws-bridge call``: the first reply on stdout and 0, or a clear error and 1."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        print(f"ws-bridge call: the request is not JSON: {exc}", file=sys.stderr)
        return 2
    sources = {s.name: s for s in config.sources}
    if name not in sources:
        print(f"ws-bridge call: no source named {name!r}; sources: {', '.join(sources)}",
              file=sys.stderr)
        return 2
    ok, reply = await call_source(sources[name], payload, wait)
    if ok:
        print(reply)
        return 0
    print(f"ws-bridge call: {reply}", file=sys.stderr)
    return 1


async def _probe(config: Config, name: str, count: int, wait: float | None) -> int:
    """``ws-bridge probe``: each message and its routes on stdout; 0, or 1 and the reason."""
    sources = {s.name: s for s in config.sources}
    if name not in sources:
        print(f"ws-bridge probe: no source named {name!r}; sources: {', '.join(sources)}",
              file=sys.stderr)
        return 2
    ok, why = await probe_source(sources[name], max(count, 1), wait,
                                 lambda line: print(redact(line, config.secrets), flush=True))
    print(f"ws-bridge probe: {redact(why, config.secrets)}", file=sys.stderr)
    return 0 if ok else 1


def _replay(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    host, _, port = args.listen.rpartition(":")
    try:
        asyncio.run(serve_replay(args.file, host.strip("[]") or "127.0.0.1", int(port),
                                 speed=args.speed, loop=args.loop, source=args.source))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"ws-bridge replay: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    return 0


async def _status(url: str, interval: float) -> int:
    try:
        first = await fetch_status(url)
        await asyncio.sleep(interval)  # two samples, so the table can show msgs/s
        second = await fetch_status(url)
    except (OSError, ValueError) as exc:
        print(f"ws-bridge status: cannot read {url}: {exc}", file=sys.stderr)
        print("Is the daemon running with `metrics: {listen: ...}` in its config?",
              file=sys.stderr)
        return EX_UNAVAILABLE
    print(format_status_table(first, second))
    return 0


def _tap(args: argparse.Namespace) -> int:
    """``ws-bridge tap``: the daemon's envelope lines until it stops or cuts this reader off."""
    token = args.token or os.environ.get("WS_BRIDGE_TAP_TOKEN", "")
    if not token:
        print("ws-bridge tap: no token: set WS_BRIDGE_TAP_TOKEN to the daemon's "
              "metrics.tap_token", file=sys.stderr)
        return 2
    last = b""
    try:
        for last in tap_lines(args.url, token, args.source):
            sys.stdout.buffer.write(last)
            sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        code = getattr(exc, "code", 0)
        hint = {401: "the token was refused", 404: "is `metrics: {tap: true}` set?"}.get(code)
        print(f"ws-bridge tap: cannot read {args.url}: {exc}" + (f"; {hint}" if hint else ""),
              file=sys.stderr)
        return EX_UNAVAILABLE
    if last == TAP_CUT:
        print("ws-bridge tap: cut off: this reader fell behind the stream", file=sys.stderr)
        return 1
    return 0


NO_CONFIG: dict[str, Callable[[argparse.Namespace], int]] = {
    "schema": _schema,
    "replay": _replay,
    "tap": _tap,
    "status": lambda args: asyncio.run(_status(args.url, args.interval)),
}


def _connect(config: Config, level: str, log_format: str) -> int:
    """``check --connect``: one line per sink and source, ok or why; 0, or 1 if one failed."""
    setup_logging("error" if level == "info" else level, log_format, config.secrets)
    print("connecting:")
    ok = asyncio.run(check_connect(config, lambda line: print(redact(line, config.secrets))))
    return 0 if ok else 1


def _state(config: Config) -> int:
    """``check --state``: each outbox's depth, age and integrity; 1 when one is not intact."""
    healthy = True
    for name, sink in config.sinks.items():
        if not isinstance(sink, MqttSinkConfig) or not sink.queue.path:
            continue
        state = describe_outbox(sink.queue.path)
        age = state["oldest_age"]
        oldest = "-" if age is None else f"{age:.0f}s"
        print(f"  outbox of sink {name}: {state['depth']} messages, {state['bytes']} bytes, "
              f"oldest {oldest}, integrity {state['integrity']} ({state['path']})")
        healthy = healthy and state["integrity"] == "ok"
    return 0 if healthy else 1


def _summary(config: Config) -> str:
    lines = [f"{config.path}: OK ({len(config.sources)} sources, {len(config.sinks)} sinks)"]
    for src in config.sources:
        sinks = ", ".join(dict.fromkeys(route.sink for route in src.routes)) or "no routes"
        pool = src.pool
        count = 0 if pool is None else -(-len(pool.items) // pool.per_connection)
        spread = "" if pool is None else f" ({len(pool.items):,} items over {count} " \
            f"connection{'s' if count > 1 else ''})"
        lines.append(f"  source {src.name}: {safe_url(src.url)}{spread} -> {sinks}")
    for name, sink in config.sinks.items():
        lines.append(f"  sink {name}: {type(sink).__name__.removesuffix('SinkConfig').lower()}")
    return "\n".join(lines)
