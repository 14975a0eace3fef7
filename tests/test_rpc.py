"""RPC: a request sent upstream with a fresh id, its reply matched by id, errors never silent."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bridge.config.outbound import RpcSpec
from bridge.routing.context import mqtt_value
from bridge.routing.pattern import Pattern
from bridge.routing.template import Template
from bridge.server.feed import FeedServer
from bridge.upstream.client import SourceClient
from tests.support.mosquitto import free_port
from tests.support.upstream import Upstream, UpstreamConn
from tests.test_publish import _ignore, cfg, start

RPC = RpcSpec(None, Template({"type": "rpc", "id": "{seq}", "data": "{mqtt.payload}"}),
              match=Pattern({"type": "rpc_result"}), error=Pattern({"type": "rpc_error"}),
              timeout=0.5)


class Answers:
    def __init__(self) -> None:
        self.got: list[Any] = []
        self.changed = asyncio.Event()

    def __call__(self, payload: str | bytes) -> None:
        self.got.append(json.loads(payload))
        self.changed.set()

    async def wait(self, n: int) -> list[Any]:
        async with asyncio.timeout(5):
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.got


async def rpc_server(conn: UpstreamConn) -> None:
    """Answers by method: echo, fail (rpc_error), ignore (never), drop (closes)."""
    while True:
        req = json.loads(await conn.recv(timeout=30))
        method = req["data"]["method"]
        if method == "echo":
            await conn.send_json({"type": "ack", "id": req["id"]})  # shares the id: not the answer
            await conn.send_json({"type": "rpc_result", "id": req["id"], "data": req["data"]})
        elif method == "fail":
            await conn.send_json({"type": "rpc_error", "id": req["id"], "reason": "nope"})
        elif method == "drop":
            await conn.close()
            return


async def test_rpc_replies_errors_timeouts_and_disconnects_each_answer_once(
    upstream: Upstream,
) -> None:
    upstream.handler = rpc_server
    client = SourceClient(cfg(upstream.url, rpc=RPC), _ignore)
    task = await start(client)
    answers = Answers()
    for method in ("echo", "fail", "ignore"):
        client.call(mqtt_value("t", json.dumps({"method": method})), answers)
    got = await answers.wait(3)
    assert got[0] == {"type": "rpc_result", "id": 1, "data": {"method": "echo"}}
    assert got[1] == {"error": "upstream error",
                      "reply": {"type": "rpc_error", "id": 2, "reason": "nope"}}
    assert got[2] == {"error": "no reply within 0.5s"}
    client.call(mqtt_value("t", json.dumps({"method": "drop"})), answers)
    assert (await answers.wait(4))[3] == {"error": "upstream disconnected before replying"}
    client.stop()
    await task
    assert len(answers.got) == 4  # a late reply or timer never answers twice


async def run_call(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "call", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ws_bridge_call_prints_the_reply_of_the_demo_server(tmp_path: Path) -> None:
    server, port = FeedServer(), free_port()
    await server.start("127.0.0.1", port)
    config = tmp_path / "call.yaml"
    config.write_text(f"""
version: 1
sinks: {{out: {{type: stdout}}}}
sources:
  - name: demo
    url: ws://127.0.0.1:{port}/ws
    auth: {{send: {{type: auth, data: {{token: demo-token}}}}, expect: {{type: auth_ok}}}}
    rpc:
      send: {{type: rpc, id: "{{seq}}", data: "{{mqtt.payload}}"}}
      match: {{type: rpc_result}}
      error: {{type: rpc_error}}
      timeout: 2s
""")
    config.chmod(0o600)  # it holds a token: anything else is warned about
    try:
        code, out, err = await run_call(config, "demo", '{"method": "echo", "x": 1}')
        assert code == 0, err
        assert json.loads(out) == {"type": "rpc_result", "id": 1, "data": {"x": 1}}
        code, out, err = await run_call(config, "demo", '{"method": "nope"}')
        assert code == 1 and "upstream error" in out + err
    finally:
        await server.close()
    code, out, err = await run_call(config, "demo", '{"method": "echo"}', "--timeout", "0.5")
    assert code == 1 and "ws-bridge call: source demo:" in err  # the server is gone
