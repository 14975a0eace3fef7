"""``ws-bridge check --connect``: each sink and source tried for real, one line each, exit 1
when one fails; a real Mosquitto with users, the real demo upstream, real paths on disk."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.mosquitto import Broker, free_port
from tests.test_probe import demo  # noqa: F401 - the demo upstream fixture

CONFIG = """
version: 1
sinks:
  broker:
    type: mqtt
    url: mqtt://127.0.0.1:{mqtt}
    username: bridge
    password: {password}
  recording: {{type: file, path: "{path}"}}
sources:
  - name: demo
    url: ws://127.0.0.1:{ws}/ws
    auth:
      send: {{type: auth, data: {{token: demo-token}}}}
      expect: {{type: auth_ok}}
      reject: {{type: auth_failed}}
    subscribe:
      - send: {{type: subscribe, id: "{{seq}}", data: {{channel: ticks.btc}}}}
        expect: {{type: subscribed}}
    routes: [{{sink: broker, topic: t}}, {{sink: recording}}]
"""


async def check(tmp_path: Path, **values: object) -> tuple[int, str, str]:
    config = tmp_path / "bridge.yaml"
    config.write_text(CONFIG.format(**values))
    config.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "check", "--connect", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lines(out: str) -> dict[str, str]:
    """``sink broker`` -> its result, from the lines after ``connecting:``."""
    after = out.split("connecting:\n", 1)[1].splitlines()
    return {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in after}


async def test_everything_reachable_is_ok(
    mosquitto: Callable[..., Broker], demo: int, tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    broker = mosquitto(users={"bridge": "s3cret"})
    path = tmp_path / "out" / "{source}.log"
    code, out, err = await check(tmp_path, mqtt=broker.port, password="s3cret", path=path,
                                 ws=demo)
    assert code == 0, out + err
    got = lines(out)
    assert got == {"sink broker": f"mqtt 127.0.0.1:{broker.port}: ok",
                   "sink recording": f"file {path}: ok", "source demo": "ok"}
    assert not (tmp_path / "out").exists()  # nothing written, no directory made


async def test_each_failure_is_named_and_the_exit_is_1(
    mosquitto: Callable[..., Broker], tmp_path: Path
) -> None:
    broker = mosquitto(users={"bridge": "s3cret"})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    code, out, err = await check(tmp_path, mqtt=broker.port, password="wrong-password",
                                 path=blocker / "sub" / "out.log", ws=free_port())
    assert code == 1, out + err
    got = lines(out)
    assert "username/password" in got["sink broker"]
    assert got["sink recording"] == f"file {blocker}/sub/out.log: {blocker} is not a directory"
    assert got["source demo"].startswith("source 'demo': ws://127.0.0.1:") and \
        "connect call failed" in got["source demo"].lower()
    assert "wrong-password" not in out + err  # secrets never reach output


async def test_an_invalid_config_stays_78(tmp_path: Path) -> None:
    code, _, err = await check(tmp_path, mqtt="x", password="p", path="/tmp/x", ws=1)
    assert code == 78 and "invalid config" in err
