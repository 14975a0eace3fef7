"""sd_notify against a real datagram socket, and the shipped units against systemd-analyze."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.systemd import Notifier

REPO = Path(__file__).resolve().parent.parent
UNITS = ("ws-bridge.service", "ws-bridge-notify.service", "ws-bridge@.service")
INSTALLED_BINARY = "/usr/local/bin/ws-bridge"


class Listener:
    """Plays systemd's side of NOTIFY_SOCKET: receives the datagrams the notifier sends."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting for more."""
        self.sock.setblocking(False)
        found = []
        try:
            while True:
                found.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return found
        finally:
            self.sock.settimeout(2.0)

    async def next_async(self) -> str:
        self.sock.setblocking(False)
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 4096), 2.0)
        return data.decode()


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    assert len(str(path)) < 108, "AF_UNIX paths are limited to 107 bytes"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    lst = Listener(str(path))
    yield lst
    lst.sock.close()


def test_ready_status_stopping_and_watchdog_send_exact_datagrams(listener: Listener) -> None:
    notifier = Notifier()
    assert notifier.enabled
    notifier.ready()
    notifier.ready("3/4 sources connected; broker: up")
    notifier.status("2/4 sources connected; broker: down")
    notifier.watchdog()
    notifier.stopping()
    assert [listener.next() for _ in range(5)] == [
        "READY=1",
        "READY=1\nSTATUS=3/4 sources connected; broker: up",
        "STATUS=2/4 sources connected; broker: down",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_status_with_newlines_cannot_inject_other_assignments(listener: Listener) -> None:
    Notifier().status("source a: down\nREADY=1")
    assert listener.next() == "STATUS=source a: down READY=1"


def test_reloading_carries_the_current_monotonic_time(listener: Listener) -> None:
    before = time.monotonic_ns() // 1000
    Notifier().reloading()
    after = time.monotonic_ns() // 1000
    lines = listener.next().split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2


def test_abstract_socket_address_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"ws-bridge-test-{uuid.uuid4().hex}"
    lst = Listener("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready()
        assert lst.next() == "READY=1"
    finally:
        lst.sock.close()


async def test_does_nothing_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("x")
    notifier.status("x")
    notifier.reloading()
    notifier.watchdog()
    notifier.stopping()
    assert notifier.watchdog_interval() is None
    # Returns at once instead of looping forever.
    await asyncio.wait_for(notifier.watchdog_loop(), 1.0)


def test_watchdog_interval_is_half_of_watchdog_usec(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Notifier().watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert Notifier().watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval() == 15.0


def test_watchdog_meant_for_another_process_is_ignored(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier().watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "garbage")
    monkeypatch.delenv("WATCHDOG_PID")
    assert Notifier().watchdog_interval() is None


async def test_watchdog_loop_pings_at_half_the_timeout(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    notifier = Notifier()
    task = asyncio.create_task(notifier.watchdog_loop())
    try:
        start = time.monotonic()
        assert [await listener.next_async() for _ in range(3)] == ["WATCHDOG=1"] * 3
        # Three pings are two intervals of 0.05 s apart.
        assert time.monotonic() - start >= 0.09
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watchdog_pings_stop_while_the_event_loop_is_blocked(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    notifier = Notifier()
    task = asyncio.create_task(notifier.watchdog_loop())
    try:
        assert await listener.next_async() == "WATCHDOG=1"
        listener.pending()
        time.sleep(0.3)  # the stuck loop under test: six intervals without yielding
        assert listener.pending() == []
        assert await listener.next_async() == "WATCHDOG=1"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_vanished_socket_is_logged_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    with caplog.at_level(logging.INFO, logger="bridge.systemd"):
        for _ in range(3):
            notifier.watchdog()
        notifier.ready()
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
            "cannot notify systemd: [Errno 2] No such file or directory"
        ]
        lst = Listener(str(path))
        try:
            notifier.status("back")
            assert lst.next() == "STATUS=back"
        finally:
            lst.sock.close()
    assert caplog.records[-1].getMessage() == "notifying systemd again"


# --- the shipped unit files -------------------------------------------------------------------


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if found is None:
        pytest.fail(
            "systemd-analyze is missing: install the Debian package 'systemd' "
            "(apt-get install systemd); the unit checks cannot run without it"
        )
    return found


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [systemd_analyze(), *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def systemd_version() -> int:
    match = re.match(r"systemd (\d+)", analyze("--version").stdout)
    assert match, "cannot read the systemd version"
    return int(match.group(1))


def directives(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every setting in a unit file, in order."""
    section, found = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        found.append((section, key, value))
    return found


@pytest.mark.parametrize("unit", UNITS)
def test_shipped_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    # verify insists that every Exec binary exists, and ws-bridge is not installed in
    # /usr/local/bin here: check a copy that points at the ws-bridge of this environment.
    binary = Path(sys.executable).with_name("ws-bridge")
    assert binary.exists(), f"{binary} missing: install the package (pip install -e .)"
    shipped = (REPO / "systemd" / unit).read_text()
    assert INSTALLED_BINARY in shipped
    copy = tmp_path / unit
    copy.write_text(shipped.replace(INSTALLED_BINARY, str(binary)))
    targets = [str(copy)]
    if unit.endswith("@.service"):
        targets.append(str(tmp_path / unit.replace("@.", "@0.")))
    result = analyze("verify", *targets)
    problems = (result.stdout + result.stderr).splitlines()
    if unit == "ws-bridge.service" and systemd_version() < 253:
        # Type=notify-reload arrived in systemd 253; older ones say exactly this and nothing else.
        # ws-bridge-notify.service, which must verify clean, proves the rest of the unit.
        expected = re.compile(
            r".*ws-bridge\.service:\d+: Failed to parse service type, ignoring: notify-reload"
        )
        problems = [line for line in problems if not expected.fullmatch(line)]
    assert problems == [], "\n".join(problems)
    assert result.returncode == 0


@pytest.mark.parametrize("unit", UNITS)
def test_shipped_unit_exposure_is_at_most_2(unit: str) -> None:
    result = analyze("security", "--offline=true", str(REPO / "systemd" / unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_units_for_old_and_new_systemd_differ_only_in_how_they_reload() -> None:
    reload_unit = directives(REPO / "systemd" / "ws-bridge.service")
    notify_unit = directives(REPO / "systemd" / "ws-bridge-notify.service")
    differs = {"Type", "ExecReload"}
    assert [d for d in reload_unit if d[1] not in differs] == [
        d for d in notify_unit if d[1] not in differs
    ]
    assert ("[Service]", "Type", "notify-reload") in reload_unit
    assert ("[Service]", "Type", "notify") in notify_unit
    check = "/usr/local/bin/ws-bridge check /etc/ws-bridge/config.yaml"
    assert [d[2] for d in notify_unit if d[1] == "ExecReload"] == [check, "/bin/kill -HUP $MAINPID"]
    assert [d[2] for d in reload_unit if d[1] == "ExecReload"] == [check]


def test_every_unit_carries_the_same_hardening() -> None:
    def hardening(unit: str) -> str:
        text = (REPO / "systemd" / unit).read_text()
        return text[text.index("# --- Hardening") : text.index("[Install]")]

    assert hardening("ws-bridge.service") == hardening("ws-bridge-notify.service")
    assert hardening("ws-bridge.service") == hardening("ws-bridge@.service")
