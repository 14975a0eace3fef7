"""Process plumbing for the bench: children that talk JSON lines, a private broker, CPU and RSS."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
SETPRIV = shutil.which("setpriv")


class BenchError(Exception):
    """A pipeline or a helper did not do what the bench needs; the cell is reported as failed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def orphan_proof(cmd: list[str]) -> list[str]:
    """``cmd`` made to get SIGTERM when the bench dies, even by SIGKILL (util-linux setpriv)."""
    return [SETPRIV, "--pdeathsig", "TERM", "--", *cmd] if SETPRIV else cmd


def spawn(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a child in its own process group, output to ``log``, so it can be stopped whole."""
    with log.open("ab") as err:
        kwargs.setdefault("stdout", err)
        return subprocess.Popen(orphan_proof(cmd), stderr=err, start_new_session=True, **kwargs)


def stop(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it has not exited after ``grace``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def tail(log: Path, lines: int = 3) -> str:
    """The last error line of a log if it has one (a traceback's last line), else its last lines."""
    try:
        text = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    text = [line for line in text if line]
    errors = [line for line in text if "Error" in line or "error" in line]
    return (errors[-1] if errors else " | ".join(text[-lines:]))[-400:]


class Child:
    """A helper process that takes commands on stdin and prints one JSON event per line."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self.proc = spawn(cmd, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise BenchError(f"{self.name} is gone ({tail(self.log)})") from exc

    def expect(self, ev: str, timeout: float) -> dict[str, Any]:
        """The next event named ``ev``, skipping others; BenchError on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: no {ev!r} within {timeout:.0f} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise BenchError(f"{self.name} exited ({tail(self.log)})")
            if event.get("ev") == ev:
                return event
            if event.get("ev") == "error":
                raise BenchError(f"{self.name}: {event.get('reason')}")

    def poll_event(self, ev: str, timeout: float) -> bool:
        try:
            self.expect(ev, timeout)
        except BenchError:
            if self.proc.poll() is not None:
                raise
            return False
        return True

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            stop(self.proc)


class Broker:
    """A private Mosquitto on a free loopback port; never the system broker."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.port = free_port()
        conf = workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # The default (1000) drops QoS 1 messages for a subscriber that falls behind a burst;
            # the bench must see every message, so the broker queues without limit.
            "max_queued_messages 0\n"
            # Run as whoever runs the bench: dropping to the `mosquitto` user would clear the
            # parent-death signal, and a killed bench would leave the broker behind.
            f"user {getpass.getuser()}\n"
            + extra
        )
        self.log = workdir / f"mosquitto-{self.port}.log"
        self.proc = spawn([mosquitto_binary(), "-c", str(conf)], self.log,
                          stdout=subprocess.DEVNULL)
        try:
            wait_port(self.port, 10)
        except BenchError:
            stop(self.proc)
            raise BenchError(f"mosquitto did not start ({tail(self.log)})") from None

    def close(self) -> None:
        stop(self.proc)


def mosquitto_binary() -> str:
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    return "mosquitto"


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of the processes, their live descendants and reaped children."""
    total = 0
    for root in pids:
        for pid in _descendants(root):
            with contextlib.suppress(OSError, IndexError):
                fields = _stat(pid)
                total += int(fields[11]) + int(fields[12])
                if pid == root:
                    total += int(fields[13]) + int(fields[14])
    return total / TICK


def tree_peak_rss(pids: list[int]) -> int:
    """Bytes: the sum of each process's peak resident set (VmHWM) over the process trees."""
    return _tree_status(pids, "VmHWM:")


def tree_rss(pids: list[int]) -> int:
    """Bytes: the resident set (VmRSS) now, summed over the process trees."""
    return _tree_status(pids, "VmRSS:")


def _tree_status(pids: list[int], key: str) -> int:
    total = 0
    for root in pids:
        for pid in _descendants(root):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key):
                        total += int(line.split()[1]) * 1024
    return total
