"""``ws-bridge probe``: a source's whole session against the real demo upstream, each message
with what every route makes of it, and exit 1 with the reason when it cannot show them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.server.feed import FeedServer
from tests.support.mosquitto import free_port

CONFIG = """
version: 1
sinks: {{out: {{type: stdout}}}}
sources:
  - name: demo
    url: ws://127.0.0.1:{port}/ws
    auth:
      send: {{type: auth, data: {{token: {token}}}}}
      expect: {{type: auth_ok}}
      reject: {{type: auth_failed}}
{subscribe}
    routes:
      - when: {{type: tick}}
        sink: out
        topic: "t/{{msg.data.channel}}"
        payload: "{{msg.data.seq}}"
      - {{when: {{type: nope}}, sink: out}}
      - {{sink: out, topic: "x/{{msg.missing.key}}"}}
"""
SUBSCRIBE = """    subscribe:
      - send: {type: subscribe, id: "{seq}", data: {channel: ticks.btc}}
        expect: {type: subscribed}"""


@pytest.fixture
async def demo() -> AsyncIterator[int]:
    server, port = FeedServer(), free_port()
    await server.start("127.0.0.1", port)
    yield port
    await server.close()


def write(tmp_path: Path, port: int, token: str = "demo-token", subscribe: bool = True) -> Path:
    config = tmp_path / "probe.yaml"
    config.write_text(CONFIG.format(port=port, token=token,
                                    subscribe=SUBSCRIBE if subscribe else ""))
    config.chmod(0o600)
    return config


async def probe(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "probe", str(config), "demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_probe_shows_each_message_and_every_route(demo: int, tmp_path: Path) -> None:
    code, out, err = await probe(write(tmp_path, demo), "-n", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("message")] == \
        ["message 1", "message 2"]
    assert len(lines) == 8  # two messages, three routes each
    first = lines[1:4]
    assert first[0].startswith("  route 0 (sink out): topic t/ticks.btc payload ")
    assert first[0].split("payload ")[1].isdigit()  # {msg.data.seq} rendered
    assert first[1] == "  route 1 (sink out): not matched: its when did not match"
    assert first[2].startswith("  route 2 (sink out): not matched: ") and "missing" in first[2]
    assert "ws-bridge probe: 2 messages from source demo" in err


async def test_probe_says_auth_was_rejected(demo: int, tmp_path: Path) -> None:
    code, out, err = await probe(write(tmp_path, demo, token="wrong"), "--timeout", "20")
    assert code == 1
    assert out == ""
    assert "ws-bridge probe: source 'demo': " in err and "auth" in err.lower(), err


async def test_probe_times_out_without_a_message(demo: int, tmp_path: Path) -> None:
    code, out, err = await probe(write(tmp_path, demo, subscribe=False), "--timeout", "0.5")
    assert code == 1
    assert out == ""
    assert "ws-bridge probe: no message within 0.5s (source demo connected)" in err


async def test_probe_of_an_unreachable_upstream_says_why(tmp_path: Path) -> None:
    code, _, err = await probe(write(tmp_path, free_port()), "--timeout", "20")
    assert code == 1 and "ws-bridge probe: source 'demo': " in err
    last = err.lower().splitlines()[-1]  # the reason, as asyncio or uvloop words it
    assert "connect call failed" in last or "connection refused" in last
