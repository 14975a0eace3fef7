"""The leak check run after every daemon test (tests/support/leaks.py) finds a shown secret."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from tests.support.daemon import Daemon
from tests.support.leaks import leaks, secrets_of

CONFIG = """\
version: 1
sinks:
  out: {type: mqtt, url: "mqtt://127.0.0.1:${env:PORT}", password: "${env:PW}"}
sources:
  - name: feed
    url: "ws://127.0.0.1:${env:PORT}/ws"
    headers: {Authorization: "Bearer ${file:token}"}
    routes: [{sink: out}]
"""


def fake(tmp_path: Path, stderr: list[str], **env: str) -> Daemon:
    (tmp_path / "bridge.yaml").write_text(CONFIG)
    (tmp_path / "token").write_text("file-s3cret\n")
    daemon: Any = SimpleNamespace(args=("run", str(tmp_path / "bridge.yaml")), env=env,
                                  cwd=tmp_path, stdout=[], stderr=stderr)
    return cast(Daemon, daemon)


def test_the_secrets_of_a_daemons_config_are_its_credentials_not_its_ports(
    tmp_path: Path
) -> None:
    daemon = fake(tmp_path, [], PORT="1883", PW="env-s3cret")
    assert {"env-s3cret", "file-s3cret"} <= secrets_of(daemon)
    assert "1883" not in secrets_of(daemon)


def test_a_line_holding_a_secret_is_a_leak_and_a_port_is_not(tmp_path: Path) -> None:
    shown = ["connect failed ('127.0.0.1', 1883)", "auth with file-s3cret", "ok"]
    daemon = fake(tmp_path, shown, PORT="1883", PW="env-s3cret")
    assert leaks([daemon], ["label=\"env-s3cret\""], secrets_of(daemon)) == [
        "auth with file-s3cret", "label=\"env-s3cret\""]


def test_an_invalid_config_has_no_secrets_to_look_for(tmp_path: Path) -> None:
    assert secrets_of(fake(tmp_path, [], PW="env-s3cret")) == set()  # PORT is not set
